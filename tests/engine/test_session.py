"""A session's preparation: quantization specs checked against the model, shorthand resolved, the baseline's
generations cached."""

import pytest

from harness.config.build import build_spec
from harness.engine.session import Session
from harness.errors import UsageError
from harness.system.files import cache_get


def test_rtn_group_not_dividing_names_the_layer():

    with pytest.raises(UsageError, match="does not divide the input width 64 of layers.0"):
        Session(build_spec({"model": "tiny-llama", "quant": "rtn-w4g48"})).prepare()


def test_shorthand_picks_a_group_that_fits_the_model():
    s = Session(build_spec({"model": "tiny-llama", "bits": "8,4", "methods": "rtn,bnb"})).prepare()
    assert [q.spec for q in s.spec.quant] == ["rtn-w8", "rtn-w4g64", "bnb-int8", "bnb-nf4", "bnb-fp4"]
    assert "group size 64" in s.inputs.notes[0] and "64, 128" in s.inputs.notes[0]


def test_baseline_generation_cache_is_used_and_rebuilt_when_corrupt(tiny_run, isolated_cache):
    spec = tiny_run.options(quant="rtn-w8", n_prompts=6)
    first = Session(build_spec(spec)).prepare().baseline.generations
    (entry,) = (isolated_cache / "baseline-gen").glob("*.json")
    msgs = []
    again = Session(build_spec(spec), progress=msgs.append).prepare().baseline.generations
    assert list(again[0]) == list(first[0]) and any("cached" in m for m in msgs)
    entry.write_text(entry.read_text().replace('"texts"', '"textz"', 1))
    with pytest.warns(UserWarning, match="corrupt"):
        rebuilt = Session(build_spec(spec)).prepare().baseline.generations
    assert list(rebuilt[0]) == list(first[0]) and cache_get(entry) is not None


def test_the_first_configurations_phases_hold_none_of_the_baselines_work(tiny_run, isolated_cache, monkeypatch):
    # A cold nightly run charged the baseline's prompt, stability and open generations and its deciding tokens
    # to the first configuration's "generation: prompts" and "answer margins" phases (bnb-int8: 611 s of
    # prompts, about 480 s of it the baseline's). Each configuration's phase now starts with the baseline's
    # side already computed.
    from harness.engine import continuations

    seen = []
    records, answers = continuations.records, continuations.answer_evidence

    def spy_records(base, *a, **k):
        seen.append(("records", {"generations", "variant_correctness", "open_generations"} <= set(vars(base))))
        return records(base, *a, **k)

    def spy_answers(base, *a, **k):
        seen.append(("answers", "answer_items" in vars(base)))
        return answers(base, *a, **k)

    monkeypatch.setattr(continuations, "records", spy_records)
    monkeypatch.setattr(continuations, "answer_evidence", spy_answers)
    res = tiny_run(quant="rtn-w8,rtn-w4g32", n_prompts=6, n_open_prompts=4, no_cache=True)
    assert seen and all(ok for _, ok in seen), seen
    assert {"records", "answers"} <= {k for k, _ in seen}
    base_phases = res["phases"]["baseline"]
    assert "generation: prompts" in base_phases and "generation: stable" in base_phases
