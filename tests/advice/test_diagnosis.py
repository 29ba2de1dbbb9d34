"""Diagnosis families from hand-built results."""

import pytest

from harness.methods import parse_spec


def _result(gates, **metrics):
    from harness.gates.records import ConfigResult

    return ConfigResult(
        "x",
        "rtn",
        4,
        None,
        "4",
        {},
        verdict="fail",
        gates=[{"metric": m, "outcome": o, "passed": o == "pass"} for m, o in gates.items()],
        metrics=metrics,
    )


def test_diagnosis_families_from_hand_built_evidence():
    from harness.advice.diagnosis import diagnose, sink_onset

    q = parse_spec("rtn-w4")
    assert sink_onset([1.0, 1.0, 0.6, 0.55]) == (2, pytest.approx(0.4 / 0.45))
    assert sink_onset([0.9, 0.8, 0.7])[0] is None  # damaged from the first layer: no intact prefix
    gen = diagnose(q, _result({"kld_mean": "pass", "sink_hidden_cos": "pass", "flip_rate": "fail"}))
    assert gen["family"] == "generation-only" and "flip_rate" in gen["evidence"][0]
    long = diagnose(q, _result({"kld_mean": "pass", "long_degenerate_rate": "fail"}))
    assert long["family"] == "long-only"
    kv = diagnose(parse_spec("kv-quanto-w2"), _result({"sink_kv_relerr": "fail"}))
    assert kv["family"] == "kv-cache"
    r = _result({"kld_mean": "fail"})
    r.nonfinite_layer = 1
    assert diagnose(q, r)["family"] == "non-finite" and diagnose(q, r)["layer"] == 1
    sink = diagnose(q, _result({"sink_hidden_cos": "fail"}, sink_hidden_cos=[1.0, 0.99999, 0.5, 0.45]))
    assert (sink["family"], sink["layer"]) == ("sink damage", 2)
    diffuse = diagnose(q, _result({"kld_mean": "fail"}, sink_hidden_cos=[0.9, 0.8, 0.7]))
    assert diffuse["family"] == "diffuse damage"
