"""The bundled prompt set (scripts/make_prompts.py): enough stable-correct evidence, spread over families."""

from collections import Counter

import pytest

from harness.data.sets import load_prompts


def family(pid: str) -> str:
    """A prompt's family: its id up to the last "-" (the harness resamples prompts by family)."""
    return pid.rsplit("-", 1)[0]


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
