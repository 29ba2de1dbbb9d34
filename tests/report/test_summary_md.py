"""summary.md: every failed gate is listed, regression checks are ordered and collapsed, report.html is linked.

Results dicts are built by hand (docs/results.md describes the schema); no model runs here.
"""

import re

from harness.report.summary import summary_markdown, verdict_lines


def gate(metric, value, limit, op="max", passed=True, lo=None, hi=None, **extra):
    return {
        "metric": metric,
        "value": value,
        "limit": limit,
        "op": op,
        "passed": passed,
        "detail": f"{metric} = {value}",
        "ci_low": lo,
        "ci_high": hi,
        **extra,
    }


def results(configs, compare=None, verdict="fail"):
    r = {
        "verdict": verdict,
        "run_id": "20260101T000000-abcdef12",
        "model": {"id": "tiny-llama", "revision": "main"},
        "settings": {"profile": "smoke"},
        "corpus": {"name": "bundled", "n_sequences": 4, "seq_len": 48, "sha256": "0" * 64},
        "prompts": {"n": 8, "sha256": "1" * 64},
        "baseline": {"loss": 5.6, "sink_rate": 0.5, "sink_rate_08": 0.1},
        "configs": configs,
    }
    if compare is not None:
        r["compare"] = compare
    return r


def config(spec, gates, verdict=None, **extra):
    verdict = verdict or ("fail" if any(not g["passed"] for g in gates) else "pass")
    return {"spec": spec, "verdict": verdict, "gates": gates, "gate_views": {}, "metrics": {}, **extra}


# The rtn-w4g32 case: five failures in the policy's gate order, the sink gates last.
W4G32_GATES = [
    gate("ppl_ratio", 1.02, 1.3, lo=1.01, hi=1.03),
    gate("kld_mean", 0.52, 0.4, passed=False, lo=0.47, hi=0.58),
    gate("top1_agreement", 0.55, 0.62, op="min", passed=False, lo=0.5, hi=0.6),
    gate("flip_rate", 0.4, 0.3, passed=False, lo=0.25, hi=0.55),
    gate("misgeneration_rate", 0.1, 0.3, lo=0.0, hi=0.2),
    gate("sink_rate_delta", 0.0, 0.05, lo=0.0, hi=0.0),
    gate("sink_hidden_cos", 0.8812, 0.93, op="min", passed=False, lo=0.8613, hi=0.9021),
    gate("attn_js", 0.1234, 0.09, passed=False, lo=0.1101, hi=0.1377),
]


def _row(md: str, spec: str) -> str:
    rows = [ln for ln in md.splitlines() if ln.startswith(f"| `{spec}` |")]
    assert len(rows) == 1, rows
    return rows[0]


def test_summary_lists_every_failed_gate():
    md = summary_markdown(results([config("rtn-w4g32", W4G32_GATES)]))
    row = _row(md, "rtn-w4g32")
    failed = [g for g in W4G32_GATES if not g["passed"]]
    for g in failed:  # every one, with its value, interval and limit: none cut off
        assert g["metric"] in row, g["metric"]
        assert f"{g['metric']} {g['value']:.4g} [{g['ci_low']:.4g}, {g['ci_high']:.4g}]" in row
    for g in W4G32_GATES:
        if g["passed"]:
            assert g["metric"] not in row.split("|")[-2], g["metric"]  # passing gates are not listed
    # More than three: grouped by catalogue family, the sink family first.
    cell = row.split("|")[-2]
    assert "**sink**" in cell and "**corpus**" in cell and "**attention**" in cell
    assert cell.index("sink_hidden_cos") < cell.index("attn_js") < cell.index("kld_mean")
    # The terminal verdict block names them all too.
    line = next(ln for ln in verdict_lines(results([config("rtn-w4g32", W4G32_GATES)])) if "rtn-w4g32" in ln)
    assert all(g["metric"] in line for g in failed)


def test_summary_lists_few_failures_plainly_and_escapes_markup():
    gates = [gate("kld_mean", 0.5, 0.4, passed=False, lo=0.45, hi=0.55), gate("attn_js", 0.01, 0.09)]
    md = summary_markdown(results([config("<b>x|y</b>", gates)]))
    row = _row(md, "&lt;b&gt;x\\|y&lt;/b&gt;")
    assert "kld_mean 0.5 [0.45, 0.55] (limit &lt;= 0.4)" in row and "**" not in row
    assert "<b>" not in md


def test_summary_never_shows_a_non_pass_outcome_as_pass():
    gates = [
        gate("sink_hidden_cos", 0.95, 0.93, op="min", passed=True, lo=0.9, hi=0.99, outcome="insufficient"),
        gate("attn_js", 0.2, 0.09, passed=False, lo=0.01, hi=0.3, outcome="inconclusive"),
        gate("kld_mean", 0.1, 0.4, passed=True, outcome="pass"),
    ]
    md = summary_markdown(results([config("rtn-w4", gates, verdict="fail")]))
    row = _row(md, "rtn-w4")
    assert "sink_hidden_cos" in row and "insufficient" in row
    assert "attn_js" in row and "inconclusive" in row
    assert "kld_mean" not in row.split("|")[-2]


def _regressions(n, fail=()):
    """n checks of growing size (check i changed by (i + 1) %); the ones named in `fail` regressed."""
    metrics = [
        "ppl_ratio",
        "kld_mean",
        "kld_p99",
        "top1_agreement",
        "sink_rate_delta",
        "sink_mass_shift",
        "sink_hidden_cos",
        "attn_js",
        "flip_rate",
    ][:n]
    out = []
    for i, m in enumerate(metrics):
        earlier = 0.5
        value = earlier * (1 + (i + 1) / 100)
        out.append(
            {
                "metric": m,
                "earlier": earlier,
                "value": value,
                "earlier_run": "old",
                "tolerance": "0.1 relative",
                "worse_by": value - earlier,
                "ci_low": value - 0.001,
                "ci_high": value + 0.001,
                "passed": m not in fail,
                "detail": m,
            }
        )
    return out


def test_summary_collapses_the_smallest_passing_regression_checks():
    cmp = {"target": "latest", "run_id": "20251231T000000-00000000", "note": "comparing", "regressed": True}
    a = config("rtn-w4g16", [gate("kld_mean", 0.1, 0.4)], regressions=_regressions(9, fail=("kld_mean",)))
    b = config("rtn-w8", [gate("kld_mean", 0.01, 0.4)], regressions=_regressions(9))
    b["regressions"][0]["value"] = 0.9  # the largest change of all (+80 %), within tolerance
    md = summary_markdown(results([a, b], compare=cmp))
    assert "## Change from run `20251231T000000-00000000`: 1 regression(s)" in md
    rows = [ln for ln in md.splitlines() if re.match(r"\| `rtn-(w4g16|w8)` \| \w+ \| [\d.]", ln)]
    assert len(rows) == 18  # every check is still there ...
    head, sep, tail = md.partition("<details><summary>12 more checks within tolerance</summary>")
    assert sep and "</details>" in tail  # ... but the 12 smallest changes are collapsed
    shown = [ln for ln in head.splitlines() if ln in rows]
    assert len(shown) == 6
    assert shown[0].startswith("| `rtn-w4g16` | kld_mean |") and "**regression**" in shown[0]  # failure first
    assert shown[1].startswith("| `rtn-w8` | ppl_ratio |")  # then the largest change
    assert "+80.0%" in shown[1]
    for ln in shown[2:]:
        assert "| flip_rate |" in ln or "| attn_js |" in ln  # the next largest: +9 %, +8 %
    assert "| ppl_ratio | 0.5 | 0.505 |" in tail  # the smallest change is collapsed
    assert "[report.html](report.html" in head
    assert md.rstrip("\n").splitlines()[-1].endswith("[report.html](report.html)")


def test_summary_few_regression_checks_are_not_collapsed():
    cmp = {"target": "latest", "run_id": "r0", "note": "comparing", "regressed": False}
    md = summary_markdown(results([config("rtn-w8", [], regressions=_regressions(3))], compare=cmp, verdict="pass"))
    assert "no regression" in md and "<details>" not in md
    assert len([ln for ln in md.splitlines() if ln.startswith("| `rtn-w8` |") and "relative" in ln]) == 3


def test_summary_collapses_every_unchanged_check():
    cmp = {"target": "latest", "run_id": "r0", "note": "comparing", "regressed": False}
    checks = _regressions(9)
    for g in checks:
        g["value"], g["worse_by"] = g["earlier"], 0.0  # a rerun with the same numbers
    md = summary_markdown(results([config("rtn-w8", [], regressions=checks)], compare=cmp, verdict="pass"))
    head, sep, tail = md.partition("<details><summary>9 checks within tolerance</summary>")
    assert sep and "| `rtn-w8` |" not in head.split("## Change")[1]
    assert len([ln for ln in tail.splitlines() if ln.startswith("| `rtn-w8` |")]) == 9


def test_summary_links_report_html_without_compare():
    for cmp in (None, {"target": "none", "run_id": None, "note": "no comparison", "regressed": False}):
        md = summary_markdown(results([config("rtn-w8", [gate("kld_mean", 0.01, 0.4)])], compare=cmp, verdict="pass"))
        last = md.rstrip("\n").splitlines()[-1]
        assert "[report.html](report.html)" in last, last


def test_reports_label_simulated_configurations():
    from harness.report.html import _verdict_table

    r = results([config("fp8-e4m3", [], info={"simulated": True}), config("rtn-w8", [], info={})])
    (line,) = [ln for ln in summary_markdown(r).splitlines() if ln.startswith("Simulated")]
    assert line.startswith("Simulated, not run on a kernel: `fp8-e4m3` (") and "rtn-w8" not in line
    html = _verdict_table(r)
    assert html.count("(simulated: no float8 kernel on this device)") == 1
