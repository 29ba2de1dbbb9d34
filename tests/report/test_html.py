"""report.html: content, escaping of hostile model/prompt text, and a real headless-browser check.

The browser test needs Debian's chromium (CI installs it; set QS_REQUIRE_BROWSER=1 to make its
absence a failure instead of a skip).
"""

import re

from harness.metrics.catalogue import BY_NAME
from harness.report.html import render


def test_model_output_is_escaped_and_divergence_marked():
    results = {
        "run_id": "r",
        "verdict": "pass",
        "model": {"id": "<b>m</b>"},
        "corpus": {},
        "prompts": {},
        "configs": [
            {
                "spec": "rtn-w4",
                "verdict": "pass",
                "gates": [],
                "metrics": {},
                "generations": [
                    {
                        "prompt": "p",
                        "reference": None,
                        "baseline": "same <i>x",
                        "quantized": "same <script>y",
                        "first_divergence": 1,
                    }
                ],
            }
        ],
    }
    page = render(results)
    assert "same &lt;<mark>script&gt;y</mark>" in page  # common prefix "same <", the rest marked
    assert "&lt;b&gt;m&lt;/b&gt;" in page and "<script>" not in page


def _gate(metric, value, limit, passed=True, lo=None, hi=None, **extra):
    op = "min" if BY_NAME[metric].higher_is_better else "max"
    return {
        "metric": metric,
        "value": value,
        "limit": limit,
        "op": op,
        "passed": passed,
        "detail": f"{metric} = {value:.4g} <b>detail</b>",
        "ci_low": lo,
        "ci_high": hi,
        **extra,
    }


# The rtn-w4g32 case: gates in the policy's order (sink and attention last), five of them failing.
W4G32 = [
    _gate("logit_delta_max", 0.12, 1e-6),
    _gate("ppl_ratio", 1.02, 1.3, lo=1.01, hi=1.03),
    _gate("kld_mean", 0.52, 0.4, False, 0.47, 0.58),
    _gate("top1_agreement", 0.55, 0.62, False, 0.5, 0.6),
    _gate("flip_rate", 0.4, 0.3, False, 0.25, 0.55),
    _gate("degenerate_rate", 0.0, 0.1, lo=0.0, hi=0.0),
    _gate("misgeneration_rate", 0.1, 0.3, lo=0.0, hi=0.2),
    _gate("sink_rate_delta", 0.0, 0.05, lo=0.0, hi=0.0),
    _gate("sink_mass_shift", 0.01, 0.25, lo=0.005, hi=0.02),
    _gate("sink_hidden_cos", 0.8812, 0.93, False, 0.8613, 0.9021),
    _gate("attn_js", 0.1234, 0.09, False, 0.1101, 0.1377),
]


def _results(configs):
    return {"run_id": "r", "verdict": "fail", "model": {"id": "m"}, "corpus": {}, "prompts": {}, "configs": configs}


def _config(spec, gates, **extra):
    return {
        "spec": spec,
        "verdict": "fail" if any(not g["passed"] for g in gates) else "pass",
        "gates": gates,
        "metrics": {},
        "gate_views": {"sink_hidden_cos": {"value": 0.8812, "where": "layer <3>"}},
        **extra,
    }


def _verdict_section(page: str) -> str:
    return page[page.index("<h2>Verdict</h2>") : page.index("<h2>Loss and perplexity</h2>")]


def _verdict_row(page: str, spec: str) -> str:
    """The configuration's row of the verdict table: the <tr> whose header cell names it."""
    rows = re.findall(r"<tr[^>]*><th[^>]*>" + re.escape(spec) + r"\b.*?</tr>", _verdict_section(page), re.S)
    assert rows, spec
    return rows[0]


def test_html_verdict_row_lists_every_failing_gate():
    page = render(_results([_config("rtn-w4g32", W4G32), _config("rtn-w8", [_gate("kld_mean", 0.01, 0.4)])]))
    row = _verdict_row(page, "rtn-w4g32")
    for g in W4G32:
        if g["passed"]:
            assert f">{g['metric']}<" not in row, g["metric"]
        else:  # metric, value, interval and limit, in the configuration's own row
            assert f">{g['metric']}<" in row, g["metric"]
            assert f"{g['value']:.4g}" in row and f"[{g['ci_low']:.4g}, {g['ci_high']:.4g}]" in row, g["metric"]
            assert f"{g['limit']:.4g}" in row
    assert row.index("sink_hidden_cos") < row.index("attn_js") < row.index("kld_mean")  # sink failures first
    assert "layer &lt;3&gt;" in row and "<b>detail</b>" not in page  # where and detail escaped
    assert "sink_hidden_cos" not in _verdict_row(page, "rtn-w8")


def test_html_gate_grid_shows_sink_gates_before_loss_gates():
    page = render(_results([_config("rtn-w4g32", W4G32), _config("rtn-w8", W4G32[:3])]))
    section = _verdict_section(page)
    names = [g["metric"] for g in W4G32]
    # The table that names every gate (one header cell each): sink and attention gates come first.
    tables = [t for t in re.findall(r"<table.*?</table>", section, re.S) if all(f"<th>{m}</th>" in t for m in names)]
    assert len(tables) == 1
    pos = {m: tables[0].index(f"<th>{m}</th>") for m in names}
    sink = [m for m in names if BY_NAME[m].family in ("sink", "attention")]
    others = [m for m in names if m not in sink]
    assert max(pos[m] for m in sink) < min(pos[m] for m in others), sorted(pos, key=pos.get)
    assert "[0.8613, 0.9021]" in tables[0]  # intervals in the grid too


def test_html_never_shows_a_non_pass_outcome_as_pass():
    gates = [
        _gate("sink_hidden_cos", 0.95, 0.93, True, 0.9, 0.99, outcome="insufficient"),
        _gate("attn_js", 0.2, 0.09, False, 0.01, 0.3, outcome="inconclusive"),
        _gate("kld_mean", 0.1, 0.4, True, outcome="pass"),
    ]
    page = render(_results([_config("rtn-w4", gates)]))
    row = _verdict_row(page, "rtn-w4")
    assert ">sink_hidden_cos<" in row and "insufficient" in row
    assert ">attn_js<" in row and "inconclusive" in row
    assert ">kld_mean<" not in row
    cells = re.findall(r'<td class="(\w+)" data-metric="(\w+)"', _verdict_section(page))
    assert {m: c for c, m in cells} == {
        "sink_hidden_cos": "undecided",
        "attn_js": "undecided",
        "kld_mean": "pass",
    }
