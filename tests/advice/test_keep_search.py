"""The keep-set search aims at the gates that failed, and its outcome reads as what it is (issue 23 item 8): a set
that leaves the outputs equal to the baseline's works (no 'quantizer that changed nothing'), a set that keeps every
quantized module and still fails points away from the weights, and a budget that was not the limit is not blamed."""

import pytest

from harness.advice.diagnosis import recommended
from harness.advice.recommend import greedy, statement, targets
from harness.gates.policy import Limit
from harness.methods import parse_spec

LIMITS = {
    "logit_delta_max": Limit("min", 1e-6),
    "kld_mean": Limit("max", 0.05),
    "ppl_ratio": Limit("max", 1.05),
    "sink_hidden_cos": Limit("min", 0.95),
    "attn_js": Limit("max", 0.02),
    "flip_rate": Limit("max", 0.05),
}


def _gate(metric, outcome, value=None, decides=None):
    return {"metric": metric, "outcome": outcome, "passed": outcome == "pass", "value": value, "decides": decides}


def _result(spec, gates, verdict):
    from harness.gates.records import ConfigResult

    return ConfigResult(spec, "rtn", 2, None, "2", {}, verdict=verdict, gates=gates, metrics={}, info={})


def _score(kl, js):
    return {"kld_mean": kl, "kld_p99": 4 * kl, "ppl_ratio": 1 + kl, "sink_cos": [1.0] * 2, "attn_js": [[js] * 2] * 2}


def test_keep_search_aims_at_the_gates_that_failed():
    """rtn-w2 fails attn_js only: the search's distance is attention JS, so it keeps the layer that restores the
    attention rather than the one that closes the most KL; a failing gate the calibration cannot estimate
    (flip_rate) leaves every estimable gate as the proxy."""
    assert targets(LIMITS, False, ["attn_js"]) == {"attn_js": pytest.approx(0.6 * 0.02)}
    assert set(targets(LIMITS, False, ["flip_rate"])) == {"kld_mean", "ppl_ratio", "attn_js"}
    plain = _score(0.01, 0.05)
    kept = {"layers.0": _score(0.0, 0.05), "layers.1": _score(0.009, 0.002)}  # KL fixer vs attention fixer
    sens = {"plain": plain, "layers": [{"name": n, "score": s} for n, s in kept.items()], "modules": []}
    tg = targets(LIMITS, False, ["attn_js"])
    rec = greedy(sens, tg, {"layers.0": 10, "layers.1": 10}, 20, 1.0, lambda names: kept[names[-1]], print, "q")
    assert rec["keep"] == ["layers.1"] and rec["estimate_passes"] and rec["stopped"] == "within", rec
    assert rec["estimate"]["attn_js"] == pytest.approx(0.002)


def test_a_full_keep_set_that_still_fails_points_away_from_the_weights():
    """--keep-budget 1: keeping every quantized module and still failing attn_js is not 'no keep set within the
    budget passes'; a search that ran out of candidates under a budget it never reached says the budget was not
    the limit."""
    keep_q = parse_spec("rtn-w2-keep:layers.0,layers.1")
    r = _result(keep_q.spec, [_gate("kld_mean", "fail", 0.3), _gate("attn_js", "fail", 0.04)], "fail")
    everything = {"keep": ["layers.0", "layers.1"], "share": 1.0, "budget": 1.0, "stopped": "candidates"}
    d = recommended(keep_q, r, "rtn-w2", 0.5, everything)
    assert d["family"] == "diffuse damage" and "within the budget" not in d["summary"], d
    assert "keeping every quantized module still fails kld_mean, attn_js" in d["next_step"]
    assert "not in the quantized weights" in d["next_step"]
    part = everything | {"share": 0.4, "targets": {"attn_js": 0.012}}
    d = recommended(keep_q, r, "rtn-w2", 0.5, part)
    assert "the budget, 100%, was not the limit" in d["next_step"] and "on attn_js" in d["next_step"], d
    measured = {"verdict": "fail", "gates": r.gates, "metrics": {}}
    assert "was not the limit" in statement(part | {"estimate_passes": False}, measured, "fp32")
    small = part | {"budget": 0.1, "stopped": "budget"}
    assert (
        "within the budget (10% of the quantized parameters)" in recommended(keep_q, r, "rtn-w2", 0.5, small)["summary"]
    )


def test_recommendation_equal_to_the_baseline_is_not_a_quantizer_that_changed_nothing():
    """A planted single-module fault: keeping exactly the damaged module leaves the outputs equal to the baseline's.
    logit_delta_max is left out for the recommendation (said why), thin gates read as thin, and the diagnosis says
    it works instead of 'diffuse damage: no keep set within the budget passes'."""
    from harness.advice.advise import unchanged_outputs

    keep_q = parse_spec("rtn-w2-keep:layers.1.mlp.down_proj")
    decides = "about 60 prompts would decide it: --n-prompts 60"
    gates = [_gate("logit_delta_max", "fail", 0.0), _gate("kld_mean", "pass", 0.0)]
    gates.append(_gate("flip_rate", "inconclusive", 0.0, decides))
    rr = _result(keep_q.spec, gates, "fail")
    unchanged_outputs(rr, keep_q, "path:/tmp/fault")
    assert [g["metric"] for g in rr.gates] == ["kld_mean", "flip_rate"] and rr.verdict == "inconclusive"
    assert "leaves the outputs equal to the baseline's" in rr.info["unchanged"]
    rec = {"keep": ["layers.1.mlp.down_proj"], "share": 0.01, "budget": 0.1, "stopped": "within"}
    d = recommended(keep_q, rr, "path:/tmp/fault", 0.2, rec)
    assert d["family"] == "no damage" and rr.info["unchanged"] in d["evidence"], d
    assert d["summary"] == (
        f"no damage found with layers.1.mlp.down_proj kept (no gate fails); evidence thin for flip_rate: {decides}"
    )
    # a non-finite logit_delta_max is no 'unchanged' model: it stays and fails
    bad = _result(keep_q.spec, [_gate("logit_delta_max", "fail", None)], "fail")
    unchanged_outputs(bad, keep_q, "q")
    assert bad.verdict == "fail" and "unchanged" not in bad.info


def test_no_keep_needed_reads_as_such():
    rec = {"keep": [], "targets": {"kld_mean": 0.03}, "estimate": {"distance_plain": 0.01}}
    assert statement(rec, None, "fp32") == (
        "the calibration estimate of kld_mean is already within the limits: nothing to keep"
    )
