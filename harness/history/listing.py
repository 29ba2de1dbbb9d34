"""What `python -m harness history` prints: the runs newest first, the steps and the drift from the pinned anchor, or
one configuration's metric as a series with its intervals."""

from __future__ import annotations

import math

from harness.errors import UsageError, did_you_mean
from harness.history.trend import History, drift_line, step_line, what_differs


def num(v) -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.4g}"


def interval(p: dict) -> str:
    return f"[{num(p['ci_low'])}, {num(p['ci_high'])}]" if p.get("ci_low") is not None else "(no interval)"


def limit_text(p: dict) -> str:
    if p.get("limit") is None:
        return "no limit"
    return f"{'>=' if p.get('op') == 'min' else '<='} {num(p['limit'])}"


def run_lines(h: History) -> list[str]:
    """One block per run, newest first: id, date, model, profile, verdict, pin, configurations with verdicts, and
    what differs from the newest run of its model when it is not comparable with it."""
    out = [
        f"quantsink history of {h.report_dir}: {len(h.runs)} run(s), {len(h.pins)} pinned; newest first "
        f"(#N: the run's position in index.jsonl)"
    ]
    for r in reversed(h.runs):
        if r.results is None:
            out.append(f"{r.label}  unreadable ({r.row.get('path')})")
            continue
        res = r.results
        configs = ", ".join(f"{c.get('spec')} {c.get('verdict')}" for c in res.get("configs", []))
        out.append(
            f"{r.label}  {res.get('created', '?')}  {(res.get('model') or {}).get('id')}  "
            f"{(res.get('settings') or {}).get('profile')}  {str(res.get('verdict')).upper()}"
            + ("  PINNED" if r.pinned else "")
            + f"  [{configs}]"
        )
        if r.differs:
            out.append(f"    not comparable with the newest run: {what_differs(r.differs)}")
    steps = h.steps()
    out.append(
        "steps (a run whose paired change from the comparable run before it is beyond the regression tolerance):"
        if steps
        else "steps: none (no run changed beyond the regression tolerance from the comparable run before it)"
    )
    out += [f"  {step_line(spec, metric, p)}" for spec, metric, p in steps]
    anchor = h.anchor()
    if anchor is None:
        out.append("drift: no pinned run comparable with the newest run (pin one with --pin RUN_ID)")
    else:
        drifts = [
            (spec, metric, s[-1])
            for spec in h.specs()
            for metric in h.gated(spec)
            for s in [h.series(spec, metric)]
            if s and s[-1]["drift"] is not None
        ]
        out.append(f"drift of the newest run from the pinned anchor {anchor.label}:")
        out += [f"  {drift_line(spec, metric, p)}" for spec, metric, p in drifts] or ["  (nothing to compare)"]
    return out + [f"note: {n}" for n in h.notes]


def series_lines(h: History, metric: str, spec: str) -> list[str]:
    """`history --metric NAME --config SPEC`: that series newest first, with intervals, limits, outcomes, pins,
    breaks, steps and drift."""
    specs = h.specs()
    if spec not in specs:
        raise UsageError(
            f"history --config {spec}: no run in {h.report_dir} measured it{did_you_mean(spec, specs)}; "
            f"valid: {', '.join(specs) or 'none'}"
        )
    gated = h.gated(spec)
    if metric not in gated:
        raise UsageError(
            f"history --metric {metric}: not a gated metric of {spec}{did_you_mean(metric, gated)}; "
            f"valid: {', '.join(gated)}"
        )
    tol = h.policy.regression.get(metric)
    out = [
        f"{spec} {metric}, newest first (value, 95% interval, limit, outcome; regression tolerance "
        f"{tol if tol is not None else 'none'}):"
    ]
    for p in reversed(h.series(spec, metric)):
        r = p["run"]
        line = (
            f"{r.label}  {r.results.get('created', '?')}  {num(p['value'])}  {interval(p)}  {limit_text(p)}  "
            f"{p['outcome'] or '-'}" + ("  PINNED" if r.pinned else "")
        )
        if p["step"] and p["step"]["kind"] != "none":
            line += f"  STEP ({p['step']['kind']} than {p['step']['earlier_run']})"
        if p["drift"]:
            line += f"  drift {p['drift']['outcome']}"
        out.append(line)
        if p["break"]:
            out.append(f"    --- break: not comparable with the run before ({what_differs(p['break'])}) ---")
    return out + [f"note: {n}" for n in h.notes]
