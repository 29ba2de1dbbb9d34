"""Decisions from intervals: pass, fail, inconclusive, insufficient; NaN fails; a failed regression check fails
its configuration."""

import math

from harness.gates.decide import config_verdict, decide, evaluate_gate
from harness.gates.policy import Limit
from harness.metrics.views import GateView


def test_decision_uses_the_whole_interval():
    lim = Limit("max", 0.15)
    # bnb-int8 in the old smoke run: flip_rate 3/35 = 0.086, interval [0, 0.19]: not a pass
    g = evaluate_gate("bnb-int8", "flip_rate", lim, GateView(0.086, (0.0, 0.19), n=35))
    assert g["outcome"] == "inconclusive" and not g["passed"] and g["n"] == 35
    assert evaluate_gate("x", "flip_rate", lim, GateView(0.05, (0.01, 0.1), n=300))["outcome"] == "pass"
    assert evaluate_gate("x", "flip_rate", lim, GateView(0.3, (0.2, 0.4), n=300))["outcome"] == "fail"
    low = Limit("min", 0.93)
    assert decide(low, 0.95, (0.94, 0.96)) == "pass" and decide(low, 0.9, (0.85, 0.92)) == "fail"
    assert decide(low, 0.93, (0.92, 0.95)) == "inconclusive"
    assert (
        evaluate_gate("x", "ppl_ratio", Limit("max", 1.3), GateView(1.1, (1.0, 1.2), n=3, clusters=3))["outcome"]
        == "insufficient"
    )
    assert (
        config_verdict([{"outcome": "pass", "passed": True}, {"outcome": "inconclusive", "passed": False}])
        == "inconclusive"
    )
    assert (
        config_verdict([{"outcome": "fail", "passed": False}, {"outcome": "inconclusive", "passed": False}]) == "fail"
    )


def test_a_gate_without_a_computable_interval_is_undecided_not_judged_on_its_value():
    g = evaluate_gate("x", "flip_rate", Limit("max", 0.05), GateView(0.0, (math.nan, math.nan), n=40))
    assert g["outcome"] == "inconclusive" and "no interval" in g["detail"]


def test_a_nan_value_fails_its_gate_without_a_crash():
    g = evaluate_gate("x", "ppl_ratio", Limit("max", 1.1), GateView(math.nan, n=4))
    assert g["outcome"] == "fail" and g["value"] is None


def test_a_failed_regression_check_fails_its_configuration():
    from harness.gates.records import ConfigResult

    r = ConfigResult("rtn-w8", "rtn", 8, None, "8", {}, verdict="pass")
    r.regressions = [{"metric": "kld_mean", "outcome": "fail", "passed": False}]
    from types import SimpleNamespace

    from harness.gates.decide import run_verdict

    rec = SimpleNamespace(configs=[r], spec=SimpleNamespace(quant=[SimpleNamespace(spec="rtn-w8")], signoff=False))
    r.measured = True
    assert run_verdict(rec)[0] == "fail"
