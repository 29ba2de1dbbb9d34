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
