"""report.html: one self-contained page per run (inline SVG plots, no scripts, no network).

Every string that came from a model, a prompt or a user goes through `esc`; the page
carries a Content-Security-Policy that forbids scripts and any request for a resource.
"""

from __future__ import annotations

import os

from harness.metrics.catalogue import family, shown
from harness.metrics.text import prompt_scores
from harness.report import advice as advice_report
from harness.report.kit import esc, num
from harness.report.plots import heatmaps, hidden_cos_plot, kl_histogram, kv_relerr_plot, measured, sink_mass_plot
from harness.report.scenarios import html_section as scenario_section
from harness.report.summary import failed_rules, gate_order, gate_status, not_passed, phase_owners
from harness.report.tasks import html_section as task_section
from harness.system.clock import slowest

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _status_class(status: str) -> str:
    return status if status in ("pass", "fail") else "undecided"


def _interval(g: dict) -> str:
    lo, hi = g.get("ci_low"), g.get("ci_high")
    return f"[{num(lo)}, {num(hi)}]" if lo is not None and hi is not None else ""


def _reason(c: dict, g: dict) -> str:
    """One failing (or not passing) gate in a verdict row: metric, value, 95% interval, limit, where."""
    st = gate_status(g)
    op = "&le;" if g.get("op") == "max" else "&ge;"
    ci = _interval(g)
    where = ((c.get("gate_views") or {}).get(g["metric"]) or {}).get("where")
    return (
        f'<li class="{_status_class(st)}" data-metric="{esc(g["metric"])}" title="{esc(g.get("detail"))}">'
        f"<b>{esc(g['metric'])}</b> {num(g.get('value'))}"
        + (f" <small>95% CI</small> {ci}" if ci else "")
        + f", limit {op} {num(g.get('limit'))}"
        + (f" <small>({esc(where)})</small>" if where else "")
        + ("" if st == "fail" else f" <b>{esc(st.replace('_', ' '))}</b>")
        + (f"<br><span class=decides>what would decide it: {esc(g['decides'])}</span>" if g.get("decides") else "")
        + "</li>"
    )


def _verdict_table(results) -> str:
    """One row per configuration: verdict, every failing gate with value, interval and limit (or why
    it did not run);
    then every gate as a row (sink and attention gates first), configurations as columns, so the
    table stays narrow however many gates a policy sets."""
    configs = results["configs"]
    rows = []
    for c in configs:
        bad = sorted(not_passed(c.get("gates")), key=lambda g: gate_status(g) != "fail")  # failures first
        n = len(c.get("gates") or [])
        rules = "".join(
            f'<li class=fail data-rule="{esc(r["test"])}"><b>custom rule failed</b> {esc(r["test"])}: '
            f"{esc(r.get('message'))}</li>"
            for r in failed_rules(c)
        )
        reasons = (
            ("<ul class=reasons>" + rules + "".join(_reason(c, g) for g in bad) + "</ul>")
            if bad or rules
            else (f"all {n} {'gate passes' if n == 1 else 'gates pass'}" if n else "")
        )
        note = c.get("skip_reason") or c.get("error")
        if note:
            reasons += f"<p class=note>{esc(note)}</p>"
        measured_as = f" <small>(measured as {esc(c['measured_as'])})</small>" if c.get("measured_as") else ""
        if c.get("cache"):
            measured_as += f" <small>(reused from run {esc(c['cache']['run_id'])}: results cache)</small>"
        if (c.get("info") or {}).get("simulated"):
            measured_as += " <small>(simulated: no float8 kernel on this device)</small>"
        rows.append(
            f'<tr data-config="{esc(c["spec"])}"><th class=spec>{esc(c["spec"])}{measured_as}</th>'
            f'<td class="{esc(c["verdict"])}">{esc(c["verdict"])}</td>'
            f"<td class=reasons>{reasons or '-'}</td></tr>"
        )
    verdict = (
        "<table class=verdict><tr><th>config</th><th>verdict</th>"
        "<th>gates not passed, failures first (value, 95% CI, limit, what would decide it) or note</th></tr>"
        + "".join(rows)
        + "</table>"
    )

    metrics = sorted({g["metric"] for c in configs for g in c.get("gates", [])}, key=gate_order)
    if not metrics:
        return verdict
    head = "".join(f"<th class=spec>{esc(c['spec'])}</th>" for c in configs)
    grid = []
    for m in metrics:
        cells = []
        for c in configs:
            g = next((g for g in c.get("gates", []) if g["metric"] == m), None)
            if g is None:
                cells.append("<td class=na>-</td>")
                continue
            st = gate_status(g)
            mark = {"pass": "&#10003;", "fail": "&#10007;"}.get(st, f"? {esc(st)}")
            op = "&le;" if g.get("op") == "max" else "&ge;"
            ci = _interval(g)
            cells.append(
                f'<td class="{_status_class(st)}" data-metric="{esc(m)}" title="{esc(g.get("detail"))}">'
                f"{mark} {num(g.get('value'))}<br><small>{ci + ' ' if ci else ''}{op} {num(g.get('limit'))}"
                "</small></td>"
            )
        grid.append(f'<tr data-metric="{esc(m)}"><th>{esc(m)}</th><td>{esc(family(m))}</td>{"".join(cells)}</tr>')
    return (
        verdict + "<h3 id=gates>Every gate (sink and attention first)</h3>"
        f"<table class=gates><tr><th>gate</th><th>family</th>{head}</tr>{''.join(grid)}</table>"
    )


def _regression_table(results) -> str:
    regs = [(c["spec"], r) for c in results["configs"] for r in c.get("regressions", [])]
    if not regs:
        return ""
    rows = "".join(
        f"<tr class={_status_class(gate_status(r))}><td>{esc(s)}</td><td>{esc(r['metric'])}</td>"
        f"<td>{num(r['earlier'])}</td><td>{num(r['value'])}</td><td>{esc(r['tolerance'])}</td>"
        f"<td>{ {'pass': 'pass', 'fail': 'REGRESSION'}.get(gate_status(r), esc(gate_status(r))) }</td></tr>"
        for s, r in regs
    )
    cmp = results.get("compare") or {}
    return (
        f"<h2 id=regression>Regression against {esc(cmp.get('run_id'))}</h2>"
        "<table><tr><th>config</th><th>metric</th>"
        f"<th>earlier</th><th>now</th><th>tolerance</th><th>result</th></tr>{rows}</table>"
    )


def _loss_table(results) -> str:
    cols = shown("loss_table")
    head = "".join(f"<th>{m.name}</th>" for m in cols)
    base = results.get("baseline") or {}

    def baseline_cell(m):
        v = base.get(m.name, m.identity)
        return f"<td>{num(float(v)) if isinstance(v, (int, float)) else '-'}</td>"

    rows = ["<tr><th>baseline</th>" + "".join(baseline_cell(m) for m in cols) + "</tr>"]
    for c in results["configs"]:
        m = c.get("metrics") or {}
        rows.append(
            f"<tr><th>{esc(c['spec'])}</th>" + "".join(f"<td>{num(m.get(k.name))}</td>" for k in cols) + "</tr>"
        )
    return f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"


def _diagnosis_table(results) -> str:
    """Behaviour probes per configuration: stability, readability, long generations, over-mixing."""
    keys = [m.name for m in shown("probe_table")]
    head = "".join(f"<th>{k}</th>" for k in keys)
    rows = []
    for c in results["configs"]:
        m = c.get("metrics") or {}
        if not m:
            continue
        rows.append(f"<tr><th>{esc(c['spec'])}</th>" + "".join(f"<td>{num(m.get(k))}</td>" for k in keys) + "</tr>")
    return f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>" if rows else "<p>No configuration measured.</p>"


def _recovery_table(results) -> str:
    """--protect-sink: how much of each gap the sink-protected variant recovers."""
    rows = []
    for c in results["configs"]:
        r = (c.get("metrics") or {}).get("sink_recovery")
        if not r:
            continue
        if r.get("error"):
            rows.append(f"<tr><th>{esc(c['spec'])}</th><td colspan=9>{esc(r['error'])}</td></tr>")
            continue
        cells = "".join(
            f"<td>{num(r.get(f'{k}_plain'))}</td><td>{num(r.get(f'{k}_protected'))}</td><td>{num(r.get(k), 2)}</td>"
            for k in ("loss_delta", "kld_mean", "misgeneration_rate")
        )
        rows.append(f"<tr><th>{esc(c['spec'])}</th>{cells}</tr>")
    if not rows:
        return ""
    head = "".join(
        f"<th>{k}</th><th>protected</th><th>recovered</th>" for k in ("loss_delta", "kld_mean", "misgeneration_rate")
    )
    return (
        "<h2>Sink protection (--protect-sink)</h2><p>Recovered = 1 - protected / plain: the share of the gap "
        "that keeping the sink prefix at full precision closes.</p>"
        f"<table><tr><th></th>{head}</tr>{''.join(rows)}</table>"
    )


def _detected_sinks(results) -> str:
    """Extra sinks (Sun et al. 2024): tokens besides the sink positions that many heads attend to."""
    rows = []
    for name, block in [("baseline", results.get("baseline") or {})] + [
        (c["spec"], c.get("metrics") or {}) for c in results["configs"]
    ]:
        for d in block.get("detected_sinks") or []:
            rows.append(
                f"<tr><td>{esc(name)}</td><td><code>{esc(repr(d.get('token')))}</code></td>"
                f"<td>{esc(d.get('count'))}</td><td>{num(d.get('share_of_heads'), 3)}</td>"
                f"<td>{esc(', '.join(map(str, d.get('positions') or [])))}</td></tr>"
            )
    if not rows:
        return (
            "<p>No key position besides the sink positions draws more than 0.3 of attention in a quarter of "
            "the heads.</p>"
        )
    return (
        "<table><tr><th>model</th><th>token</th><th>occurrences</th><th>share of heads</th><th>positions</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _marked(text: str, at: int) -> str:
    """Escape text, marking everything from character `at` on (the first divergence)."""
    text = text or ""
    if at >= len(text):
        return esc(text)
    return f"{esc(text[:at])}<mark>{esc(text[at:])}</mark>"


def _flips(c) -> int:
    """Flips as the gate counts them: stable-correct prompts answered wrongly."""
    return sum(1 for g in c.get("generations") or [] if prompt_scores(g)["flip"] > 0)


# per-prompt status from the paired scores the gates average (summarize.prompt_scores)
_STATUS = [
    ("flip", 1, "flip", "flip"),
    ("degen", 1, "degen", "degenerate"),
    ("fix", 1, "", "unflip"),
    ("degen", -1, "", "recovered"),
]


def _generations(results) -> str:
    out = []
    worst = max(results["configs"], key=_flips, default=None)
    for c in results["configs"]:
        gens = c.get("generations") or []
        if not gens:
            continue
        rows = []
        for g in gens:
            b, q = g.get("baseline") or "", g.get("quantized") or ""
            at = len(os.path.commonprefix([b, q]))
            sc = prompt_scores(g)
            cls, status = next(
                ((k, w) for key, v, k, w in _STATUS if sc[key] == v), ("", "same" if b == q else "differs")
            )
            rows.append(
                f"<tr class='{cls}'><td><pre>{esc(g.get('prompt'))}</pre></td><td>{esc(g.get('reference'))}"
                f"</td><td><pre>{esc(b)}</pre></td><td><pre>{_marked(q, at)}</pre></td>"
                f"<td>{esc(status)}<br><small>token {esc(g.get('first_divergence'))}</small></td></tr>"
            )
        out.append(
            f"<details{' open' if c is worst else ''}><summary>{esc(c['spec'])}: {len(gens)} prompts, "
            f"{_flips(c)} flips of stable-correct prompts (highlighted)</summary><table class=gens><tr>"
            f"<th>prompt</th><th>reference</th><th>baseline</th>"
            f"<th>quantized (first divergence marked)</th><th></th></tr>{''.join(rows)}</table></details>"
        )
    return "".join(out)


def _inputs(results) -> str:
    r = results
    env = r.get("environment") or {}
    items = [
        ("run", r.get("run_id")),
        ("created", r.get("created")),
        ("harness", r.get("harness_version")),
        ("model", r["model"].get("id")),
        ("revision", r["model"].get("revision")),
        ("model sha256", (r["model"].get("source") or {}).get("sha256")),
        ("baseline dtype", r["model"].get("baseline_dtype")),
        (
            "corpus",
            f"{r['corpus'].get('name')} ({r['corpus'].get('n_sequences')} x {r['corpus'].get('seq_len')} tokens)",
        ),
        ("corpus sha256", r["corpus"].get("sha256")),
        ("prompts", f"{r['prompts'].get('name')} ({r['prompts'].get('n')})"),
        ("prompts sha256", r["prompts"].get("sha256")),
        ("profile", (r.get("settings") or {}).get("profile")),
        ("compared with", (r.get("compare") or {}).get("run_id") or "none"),
    ]
    items += [(k, v) for k, v in env.items()]
    return "<table class=kv>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in items) + "</table>"


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1400px}
h1 .pass{color:#17702a} h1 .fail{color:#b00020}
table{border-collapse:collapse;margin:8px 0 20px} td,th{border:1px solid #ccc;padding:3px 6px;text-align:left;
vertical-align:top} td.pass,tr.pass td:last-child{background:#e3f5e6} td.fail,tr.fail td:last-child{background:#fbe0e3}
td.skipped{background:#eee} td.undecided,li.undecided,tr.undecided td:last-child{background:#fff7e0}
table.verdict,table.gates{max-width:100%} td.reasons,th.spec{overflow-wrap:anywhere}
table:not(.verdict):not(.gates){display:block;max-width:100%;overflow-x:auto} /* wide tables scroll */
ul.reasons{margin:0;padding-left:1.2em} p.note{margin:0} li.fail b:first-child{color:#b00020}
tr.flip td{background:#fff0f0} tr.degen td{background:#fff7e0}
pre{white-space:pre-wrap;margin:0;font:12px ui-monospace,monospace;max-width:420px} mark{background:#ffd54f}
.plot svg{max-width:100%;height:auto} small{color:#555}
"""


def _time_table(results) -> str:
    """The ten slowest phases of the run and each part's sum."""
    owners = phase_owners(results)
    top = slowest(owners, 10)
    if not top:
        return "<p>No phase timings recorded.</p>"
    ph = results.get("phases") or {}
    rows = "".join(f"<tr><td>{esc(o)}</td><td>{esc(n)}</td><td>{s:.1f}</td></tr>" for o, n, s in top)
    parts = ", ".join(f"{esc(o)} {sum(v.values()):.1f} s" for o, v in owners.items() if v)
    return (
        f"<p id=time>Total {num(ph.get('total'))} s (reports {num(ph.get('reports'))} s); per part: {parts}.</p>"
        f"<table><tr><th>part</th><th>phase</th><th>seconds</th></tr>{rows}</table>"
    )


def render(results: dict) -> str:
    verdict = results.get("verdict", "fail")
    sections = [
        f"<h1>quantsink: <span class={esc(verdict)}>{esc(verdict.upper())}</span></h1>",
        f"<p>Model <code>{esc(results['model'].get('id'))}</code>, profile "
        f"{esc((results.get('settings') or {}).get('profile'))}, run {esc(results.get('run_id'))}</p>",
        "<h2>Verdict</h2>",
        _verdict_table(results),
        _regression_table(results),
        advice_report.html_section(results),
        "<h2>Loss and perplexity</h2>",
        _loss_table(results),
    ]
    if measured(results):
        sections += [
            "<h2>Sink mass per layer</h2><div class='plot' id='sink-mass'>",
            sink_mass_plot(results),
            "</div>",
            "<h2>Head heatmaps</h2><div class='plot' id='heatmaps'>",
            heatmaps(results),
            "</div>",
            "<h2>Next-token KL distribution</h2><div class='plot' id='kl'>",
            kl_histogram(results),
            "</div>",
            "<h2>Sink hidden-state cosine per layer</h2><div class='plot' id='hidden-cos'>",
            hidden_cos_plot(results),
            "</div>",
            "<h2>Sink key/value error per layer</h2><div class='plot' id='kv-relerr'>",
            kv_relerr_plot(results),
            "</div>",
            "<h2>Behaviour probes</h2>",
            _diagnosis_table(results),
            _recovery_table(results),
            scenario_section(results),
        ]
    sections += [
        "<h2>Detected sinks</h2>",
        _detected_sinks(results),
        task_section(results),
        "<h2>Generations</h2>",
        _generations(results),
        "<h2>Where the time went</h2>",
        _time_table(results),
        "<h2>Environment and inputs</h2>",
        _inputs(results),
    ]
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>quantsink {esc(results.get('run_id'))}: {esc(verdict)}</title><style>{STYLE}</style></head><body>"
        + "\n".join(sections)
        + "</body></html>\n"
    )
