"""REPORT_DIR/history.html: every run of a report directory on one self-contained page (no scripts, no requests).

On top, what changed since the pinned anchor (drift with its paired interval, steps, outcomes that changed) and the
steps found; then one panel per configuration and gated metric over the runs (value, interval band, limit line,
outcome marks, pinned runs, a vertical break where runs stop being comparable, steps), each point linking to its
run's report.html; last, the runs newest first. Hand-written SVG: a page over hundreds of runs draws in milliseconds.
"""

from __future__ import annotations

import math
from pathlib import Path

from harness.history.trend import History, step_line, what_differs
from harness.report.html import CSP
from harness.report.kit import esc, num
from harness.system.files import atomic_write

PAGE = "history.html"
PAGE_RUNS = 200  # the page shows the newest runs and every pinned one (python -m harness history lists them all)
W, H, L, R, T, B = 420, 210, 58, 12, 20, 36  # panel size and margins (px)
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1352px}
table{border-collapse:collapse;margin:8px 0 20px;max-width:100%} td,th{border:1px solid #ccc;padding:3px 6px;
text-align:left;vertical-align:top;overflow-wrap:anywhere} td.pass{background:#e3f5e6} td.fail{background:#fbe0e3}
td.undecided{background:#fff7e0} .panels{display:grid;grid-template-columns:repeat(3,minmax(0,1fr));gap:10px}
.panel{border:1px solid #ddd;padding:4px;min-width:0} .panel h3{font-size:13px;margin:2px 4px;overflow-wrap:anywhere}
.panel svg{width:100%;height:auto;display:block} small{color:#555} li.step b{color:#b00020}
svg text{font:10px system-ui,sans-serif;fill:#444} .pass{fill:#17702a} .fail{fill:#b00020} .undecided{fill:#d99a00}
.none{fill:#777} .incomparable{fill:#fff;stroke:#555;stroke-width:1.5}
"""
OUTCOME_CLASS = {"pass": "pass", "fail": "fail", "inconclusive": "undecided", "insufficient": "undecided"}


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _link(run) -> str:
    return f"{esc(run.run_id)}/report.html"


def panel(h: History, spec: str, metric: str) -> str:
    """One panel's SVG: the series of `metric` for `spec` over the runs."""
    pts = h.series(spec, metric)
    ys = [v for p in pts for v in (p["value"], p["ci_low"], p["ci_high"], p["limit"]) if _finite(v)]
    lo, hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    pad = (hi - lo) * 0.08 or (abs(hi) * 0.05 or 1.0)
    lo, hi = lo - pad, hi + pad
    n = len(pts)

    def x(i: int) -> float:
        return L + (W - L - R) * (i / (n - 1) if n > 1 else 0.5)

    def y(v: float) -> float:
        return T + (H - T - B) * (hi - v) / (hi - lo)

    parts = [f'<rect x="{L}" y="{T}" width="{W - L - R}" height="{H - T - B}" fill="#fafafa" stroke="#ccc"/>']
    for v in (hi - pad, (hi + lo) / 2, lo + pad):
        parts.append(f'<text x="{L - 4}" y="{y(v) + 3:.1f}" text-anchor="end">{num(v)}</text>')
    segments, cur = [], []  # runs of comparable points (a break starts a new one)
    for i, p in enumerate(pts):
        if p["break"] and cur:
            segments.append(cur)
            cur = []
        cur.append(i)
    segments += [cur] if cur else []
    for seg in segments:
        band = [i for i in seg if _finite(pts[i]["ci_low"]) and _finite(pts[i]["ci_high"])]
        if len(band) > 1:
            up = [f"{x(i):.1f},{y(pts[i]['ci_high']):.1f}" for i in band]
            down = [f"{x(i):.1f},{y(pts[i]['ci_low']):.1f}" for i in reversed(band)]
            parts.append(f'<polygon class="band" points="{" ".join(up + down)}" fill="#1f77b4" fill-opacity="0.15"/>')
        for i in band:
            parts.append(
                f'<line x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{y(pts[i]["ci_low"]):.1f}" '
                f'y2="{y(pts[i]["ci_high"]):.1f}" stroke="#1f77b4" stroke-opacity="0.5"/>'
            )
        for key, style in (
            ("value", 'stroke="#1f77b4"'),
            ("limit", 'class="limit" stroke="#b00020" stroke-dasharray="5 3"'),
        ):
            line = [f"{x(i):.1f},{y(pts[i][key]):.1f}" for i in seg if _finite(pts[i][key])]
            if len(line) == 1 and key == "limit":  # a lone run: its limit as a short stroke
                line = [f"{float(line[0].split(',')[0]) - 8:.1f},{line[0].split(',')[1]}", line[0]]
            if len(line) > 1:
                parts.append(f'<polyline points="{" ".join(line)}" fill="none" {style}/>')
    for i, p in enumerate(pts):
        r, xi = p["run"], x(i)
        if p["break"]:
            xb = (x(i - 1) + xi) / 2
            parts.append(
                f'<line class="break" x1="{xb:.1f}" x2="{xb:.1f}" y1="{T}" y2="{H - B}" stroke="#555" '
                f'stroke-dasharray="2 2"><title>not comparable with the run before: '
                f"{esc(what_differs(p['break']))}</title></line>"
            )
        if p["step"] and p["step"]["kind"] != "none":
            parts.append(
                f'<line class="step" x1="{xi:.1f}" x2="{xi:.1f}" y1="{T}" y2="{H - B}" stroke="#ff7f0e" '
                f'stroke-width="2"><title>{esc(step_line(spec, metric, p))}</title></line>'
                f'<text x="{xi:.1f}" y="{T - 6}" text-anchor="middle" style="fill:#c05000">step #{r.n}</text>'
            )
        if r.pinned:
            parts.append(
                f'<circle class="pin" cx="{xi:.1f}" cy="{y(p["value"]) if _finite(p["value"]) else T:.1f}" r="8" '
                f'fill="none" stroke="#1f3fb4" stroke-width="2"/><text x="{xi:.1f}" y="{H - B + 26}" '
                f'text-anchor="middle" style="fill:#1f3fb4">pin</text>'
            )
        cls = "incomparable" if r.differs else OUTCOME_CLASS.get(p["outcome"], "none")
        title = (
            f"{r.label} {r.results.get('created', '')}: {num(p['value'])}"
            + (f" [{num(p['ci_low'])}, {num(p['ci_high'])}]" if _finite(p["ci_low"]) else "")
            + f", {p['outcome'] or 'not gated'}"
            + (", pinned" if r.pinned else "")
            + (f"; not comparable with the newest run: {what_differs(r.differs)}" if r.differs else "")
            + (f"; drift {p['drift']['outcome']} from {p['drift']['earlier_run']}" if p["drift"] else "")
        )
        yv = y(p["value"]) if _finite(p["value"]) else T + 4
        parts.append(
            f'<a href="{_link(r)}"><circle class="{cls}" data-run="{esc(r.run_id)}" cx="{xi:.1f}" cy="{yv:.1f}" '
            f'r="4.5"><title>{esc(title)}</title></circle></a>'
        )
        if n <= 16 or i % math.ceil(n / 16) == 0 or i == n - 1:
            parts.append(f'<text x="{xi:.1f}" y="{H - B + 13}" text-anchor="middle">#{r.n}</text>')
    return (
        f'<svg viewBox="0 0 {W} {H}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="{esc(spec)} {esc(metric)} over runs">' + "".join(parts) + "</svg>"
    )


def _summary(h: History) -> str:
    """What changed since the pinned anchor: per configuration and gated metric, the value at the pin and now, the
    drift (paired change, interval, outcome), the steps since the pin and the gate outcome then and now."""
    anchor = h.anchor()
    if anchor is None:
        return (
            "<h2>Since the last pin</h2><p>No pinned run is comparable with the newest run: pin one with "
            "<code>--pin RUN_ID</code> to see the drift from it here.</p>"
        )
    rows = []
    for spec in h.specs():
        for metric in h.gated(spec):
            pts = h.series(spec, metric)
            at = next((p for p in pts if p["run"] is anchor), None)
            now = pts[-1] if pts else None
            if at is None or now is None or now["run"] is anchor:
                continue
            steps = [p for p in pts if p["run"].n > anchor.n and p["step"] and p["step"]["kind"] != "none"]
            d = now["drift"]
            if d is None and not steps and at["outcome"] == now["outcome"]:
                continue
            paired = (d or {}).get("paired") or {}
            ci = paired.get("ci")
            drift = (
                f"{num(paired['change'])} [{num(ci[0])}, {num(ci[1])}]"
                if ci
                else num((d or {}).get("worse_by"))
                if d
                else "no tolerance"
            )
            step_cells = ", ".join(
                f'<a href="{_link(p["run"])}">#{p["run"].n}</a> ({esc(p["step"]["kind"])})' for p in steps
            )
            outcome = (d or {}).get("outcome")
            rows.append(
                f"<tr><td>{esc(spec)}</td><td>{esc(metric)}</td><td>{num(at['value'])}</td><td>{num(now['value'])}</td>"
                f"<td>{drift}</td><td class={OUTCOME_CLASS.get(outcome, 'none')}>{esc(outcome or '-')}</td>"
                f"<td>{step_cells or '-'}</td><td class={OUTCOME_CLASS.get(at['outcome'], 'none')}>"
                f"{esc(at['outcome'])}</td><td class={OUTCOME_CLASS.get(now['outcome'], 'none')}>"
                f"{esc(now['outcome'])}</td></tr>"
            )
    head = (
        f'<h2>Since the last pin: <a href="{_link(anchor)}">{esc(anchor.label)}</a></h2><p><small>Drift: the newest '
        "run's paired change from the pinned run (worse +, 95% interval) against the regression tolerance, the "
        "check a run makes against its anchor.</small></p>"
    )
    if not rows:
        return head + "<p>Nothing changed since the pin.</p>"
    return (
        head + "<table class=summary><tr><th>configuration</th><th>metric</th><th>at the pin</th><th>newest</th>"
        "<th>drift (worse +)</th><th>drift check</th><th>steps since the pin</th><th>gate at the pin</th>"
        "<th>gate now</th></tr>" + "".join(rows) + "</table>"
    )


def _runs_table(h: History) -> str:
    rows = []
    for r in reversed(h.runs):
        if r.results is None:
            rows.append(f"<tr><td>{esc(r.label)}</td><td colspan=6>unreadable</td></tr>")
            continue
        res = r.results
        configs = ", ".join(f"{esc(c.get('spec'))} {esc(c.get('verdict'))}" for c in res.get("configs", []))
        comp = f"not comparable with the newest run: {esc(what_differs(r.differs))}" if r.differs else ""
        rows.append(
            f'<tr class=run data-run="{esc(r.run_id)}"><td><a href="{_link(r)}">{esc(r.label)}</a></td>'
            f"<td>{esc(res.get('created'))}</td><td>{esc((res.get('model') or {}).get('id'))}</td>"
            f"<td>{esc((res.get('settings') or {}).get('profile'))}</td>"
            f"<td class={OUTCOME_CLASS.get(res.get('verdict'), 'none')}>{esc(res.get('verdict'))}</td>"
            f"<td>{'pinned' if r.pinned else ''}</td><td>{configs}</td><td>{comp}</td></tr>"
        )
    return (
        "<h2>Runs, newest first</h2><table class=runs><tr><th>run</th><th>date</th><th>model</th><th>profile</th>"
        "<th>verdict</th><th>pin</th><th>configurations</th><th>comparability</th></tr>" + "".join(rows) + "</table>"
    )


def render_history(h: History) -> str:
    steps = h.steps()
    step_items = "".join(f"<li class=step><b>step</b> {esc(step_line(s, m, p))}</li>" for s, m, p in steps)
    tol = {m: f" <small>(tolerance {esc(t)})</small>" for m, t in h.policy.regression.items()}
    panels = "".join(
        f'<div class=panel data-spec="{esc(spec)}" data-metric="{esc(metric)}"><h3>{esc(spec)} · {esc(metric)}'
        f"{tol.get(metric, '')}</h3>{panel(h, spec, metric)}</div>"
        for spec in h.specs()
        for metric in h.gated(spec)
    )
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>quantsink history: {esc(h.report_dir.name)}</title><style>{STYLE}</style></head><body>"
        f"<h1>quantsink history <small>{esc(h.report_dir)}: {len(h.runs)} run(s), {len(h.pins)} pinned"
        + (f"; {h.left_out} older run(s) not shown (python -m harness history lists them)" if h.left_out else "")
        + "</small></h1>"
        + _summary(h)
        + "<h2>Steps</h2>"
        + (
            f"<ul class=steps>{step_items}</ul>"
            if steps
            else "<p>No run changed beyond the regression tolerance from the comparable run before it.</p>"
        )
        + "<h2>Gated metrics over runs</h2><p><small>Blue: value and its 95% interval; red dashes: the limit; dots: "
        "the gate's outcome (green pass, red fail, amber undecided, hollow: not comparable with the newest run); blue "
        "ring: pinned; grey dashes: inputs changed (runs on either side are not comparable); orange: a step. Each dot "
        "opens its run's report.</small></p>"
        + f"<div class=panels>{panels}</div>"
        + _runs_table(h)
        + "".join(f"<p class=note>{esc(n)}</p>" for n in h.notes)
        + "</body></html>\n"
    )


def write_history(report_dir: str | Path) -> Path | None:
    """Rewrite REPORT_DIR/history.html atomically from the index (after every run, pin and prune, and by
    `history --html`); None where the directory has no index yet (nothing to show)."""
    path = Path(report_dir) / PAGE
    if not (Path(report_dir) / "index.jsonl").is_file():
        return None
    atomic_write(path, render_history(History(report_dir, last=PAGE_RUNS)))
    return path
