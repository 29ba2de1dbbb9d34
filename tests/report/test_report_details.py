"""Report details a new user reads first: the verdict row puts a failing gate before the undecided ones, a
regression check with no earlier value is never counted as a pass."""

import re

from harness.gates.regression import RegressionCheck, Tolerance
from harness.metrics.catalogue import BY_NAME
from harness.report.html import render


def _gate(metric, value, limit, outcome):
    return {
        "metric": metric,
        "value": value,
        "limit": limit,
        "op": "min" if BY_NAME[metric].higher_is_better else "max",
        "passed": outcome == "pass",
        "outcome": outcome,
        "detail": f"{metric} = {value:.4g}",
        "ci_low": value * 0.9,
        "ci_high": value * 1.1,
    }


def test_the_one_failing_gate_comes_first_among_undecided_ones_in_report_html():
    undecided = ["sink_rate_delta", "sink_mass_shift", "sink_hidden_cos", "sink_kv_relerr", "attn_js", "ppl_ratio"]
    gates = [_gate(m, 0.5, 1.0, "inconclusive") for m in undecided] + [_gate("kld_mean", 0.5, 0.05, "fail")]
    results = {
        "run_id": "r",
        "verdict": "fail",
        "model": {"id": "m"},
        "corpus": {},
        "prompts": {},
        "configs": [{"spec": "rtn-w3g32", "verdict": "fail", "gates": gates, "metrics": {}, "gate_views": {}}],
    }
    page = render(results)
    section = page[page.index("<h2>Verdict</h2>") : page.index("<h2>Loss and perplexity</h2>")]
    (row,) = re.findall(r"<tr[^>]*><th[^>]*>rtn-w3g32\b.*?</tr>", section, re.S)
    first = min(row.index(f">{m}<") for m in undecided)
    assert row.index(">kld_mean<") < first, row


def test_a_regression_check_without_an_earlier_value_is_not_a_pass():
    for earlier, now in ((None, None), (None, 0.1), (float("nan"), 0.1)):
        got = RegressionCheck("rtn-w4", "kld_mean", Tolerance(rel=0.1)).evaluate(earlier, now, None, "r1")
        assert got["outcome"] == "not_applicable" and got["passed"] is False, got
