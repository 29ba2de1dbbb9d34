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


def test_the_verdict_block_names_the_comparison_and_each_regression_that_did_not_pass():
    from harness.report.summary import verdict_lines

    fell_back = "no comparable earlier run: no regression gates (1 earlier run(s) with other inputs of m; ...)"
    regressed = {"metric": "kld_mean", "outcome": "fail", "passed": False, "detail": "0.1 -> 0.3, worse by 200%"}
    unchanged = {"metric": "ppl_ratio", "outcome": "pass", "passed": True, "detail": "1.01 -> 1.01"}
    config = {"spec": "rtn-w4", "verdict": "fail", "gates": [], "regressions": [regressed, unchanged]}
    results = {"verdict": "fail", "verdict_reason": "failed: kld_mean", "configs": [config]}
    lines = verdict_lines({**results, "compare": {"target": "latest", "note": fell_back}})
    assert f"  compare: {fell_back}" in lines
    assert "      regression kld_mean fail: 0.1 -> 0.3, worse by 200%" in lines
    assert not [ln for ln in lines if "ppl_ratio" in ln]  # a passing check is not listed


def test_one_passing_configuration_reads_the_configuration_passed():
    from types import SimpleNamespace as NS

    from harness.gates.decide import run_verdict

    def rec(specs):
        configs = [
            NS(spec=s, recommended_for=None, verdict="pass", regressions=[], custom_rules=[], skip_reason=None)
            for s in specs
        ]
        for c in configs:
            c.measured, c.error = True, None
        return NS(configs=configs, spec=NS(quant=[NS(spec=s) for s in specs], signoff=False))

    assert run_verdict(rec(["rtn-w8"])) == ("pass", "the configuration passed")
    assert run_verdict(rec(["rtn-w8", "rtn-w4"])) == ("pass", "all 2 configurations passed")


def test_layer_axes_have_whole_layer_ticks():
    from harness.report.plots import _per_layer_plot

    page = _per_layer_plot([("rtn-w4", [0.1, 0.2], {}), ("rtn-w8", [0.15, 0.18], {})], "sink mass")
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", page)
    assert texts[: texts.index("layer")] == ["0", "1"], texts  # two layers: no 0.5 tick
