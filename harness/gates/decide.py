"""Gates: one limit applied to one metric's scalar view, with a message a person can act on.

A gate is a non-inferiority decision on the metric's 95% interval (BCa over resampled corpus
documents or prompt families): `pass` when the whole interval lies on the good side of the limit,
`fail` when it lies wholly on the bad side (a non-finite value always fails), `inconclusive` when
it straddles the limit (with an estimate of the items that would decide it), `insufficient` with
fewer items than the metric's minimum, and `not_applicable` when the gate's premise is absent in
the baseline (no stable-correct answer to flip, no sink to shift). A gate without an interval
(logit_delta_max) is decided on its value. Only `pass` counts as passed; the others are shown,
never silently passed.
"""

from __future__ import annotations

import math

from harness.gates.policy import Limit
from harness.metrics.catalogue import BY_NAME
from harness.metrics.stats import needed_n
from harness.metrics.views import GateView

OUTCOMES = ("pass", "fail", "inconclusive", "insufficient", "not_applicable")


def gate_all(spec: str, limits: dict, views: dict, nonfinite_layer: int | None = None) -> list[dict]:
    """Every gate of limits ({metric: Limit}) decided on the stored views ({metric: GateView.as_dict()})."""

    note = (
        f"NaN/Inf first appeared in the output of decoder layer {nonfinite_layer}"
        if nonfinite_layer is not None
        else ""
    )
    return [
        evaluate_gate(spec, m, lim, GateView.from_dict(views[m]), note, BY_NAME[m].min_n) for m, lim in limits.items()
    ]


def evaluate_gate(
    spec: str, metric: str, limit: Limit, view: GateView, nonfinite_note: str = "", min_n: int = 1
) -> dict:
    v = view.value
    finite = v is not None and math.isfinite(v)
    ci = (
        f" [95% CI {view.ci[0]:.4g}, {view.ci[1]:.4g}]"
        if view.ci and all(c is not None and math.isfinite(c) for c in view.ci)
        else ""
    )
    n_txt = f", n={view.n}" if view.n is not None else ""
    if view.absent:
        outcome = "not_applicable"
        detail = f"{spec}: {metric} not applicable: {view.absent}"
    elif view.n is not None and view.n < min_n:
        outcome = "insufficient"
        detail = f"{spec}: {metric} insufficient evidence: {view.n} items, at least {min_n} needed (limit {limit})"
    elif not finite:
        outcome = "fail"
        detail = f"{spec}: {metric} is {v} (non-finite): fails {metric} {limit}" + (
            f"; {nonfinite_note}" if nonfinite_note else ""
        )
    elif view.ci is not None and not ci:
        outcome = "inconclusive"
        detail = (
            f"{spec}: {metric} = {v:.4g} has no interval (too few items in the resamples){n_txt}: "
            f"cannot be decided against limit {limit}"
        )
    else:
        outcome = decide(limit, v, view.ci if ci else None)
        word = {"pass": "within", "fail": "violates", "inconclusive": "straddles"}[outcome]
        detail = f"{spec}: {metric} = {v:.4g}{ci} {word} limit {limit}{n_txt}" + (
            f" (worst at {view.where})" if view.where else ""
        )
    need = needed_n(view.n or 0, v, view.ci, limit.bound) if outcome == "inconclusive" else None
    if need is not None:
        detail += f"; about {need} items would decide it"
    return {
        "metric": metric,
        "value": v if finite else None,
        "limit": limit.bound,
        "op": limit.op,
        "outcome": outcome,
        "passed": outcome == "pass",
        "detail": detail,
        "n": view.n,
        "n_needed": need,
        "ci_low": view.ci[0] if view.ci else None,
        "ci_high": view.ci[1] if view.ci else None,
    }


def decide(limit: Limit, value: float, ci: tuple[float, float] | None) -> str:
    """pass / fail / inconclusive from where the interval lies against the limit (the value alone
    when there is no interval)."""
    if ci is None:
        return "pass" if limit.holds(value) else "fail"
    lo, hi = ci
    good, bad = (hi, lo) if limit.op == "max" else (lo, hi)
    if limit.holds(good):
        return "pass"
    return "fail" if not limit.holds(bad) else "inconclusive"


def config_verdict(gates: list[dict], regressions: list[dict] | None = None) -> str:
    """A configuration's verdict: fail if any gate or regression check failed; inconclusive if any other gate
    did not pass; else pass. The one rule every entry point applies (run_verdict builds on it)."""
    outcomes = {g.get("outcome", "pass" if g["passed"] else "fail") for g in gates}
    if "fail" in outcomes or any(not r["passed"] for r in regressions or ()):
        return "fail"
    return "pass" if outcomes <= {"pass"} else "inconclusive"


def run_verdict(rec) -> tuple[str, str]:
    """(verdict, reason): pass only when every configuration was measured and passed.

    fail: a configuration or regression check failed, nothing at all was measured, or (strict)
    anything short of a pass; inconclusive: some configuration was skipped or not decided.
    """
    configs = [c for c in rec.configs if not c.recommended_for]  # recommendations advise; they do not decide
    failed = [c.spec for c in configs if c.verdict == "fail"]
    regressed = [c.spec for c in configs if any(not r["passed"] for r in (c.regressions or []))]
    skipped = [f"{c.spec} ({c.skip_reason})" for c in configs if c.verdict == "skipped"]
    undecided = [c.spec for c in configs if c.verdict == "inconclusive"]
    missing = [q.spec for q in rec.spec.quant if q.spec not in {c.spec for c in configs}]
    if not any(c.measured for c in configs):
        why = "; ".join(skipped + [f"{c.spec}: {c.error}" for c in configs if c.error]) or "no configuration ran"
        return "fail", f"nothing was measured: {why}"
    if failed or regressed:
        return "fail", "failed: " + ", ".join(dict.fromkeys(failed + regressed))
    short = (
        ([f"skipped: {', '.join(skipped)}"] if skipped else [])
        + ([f"inconclusive: {', '.join(undecided)}"] if undecided else [])
        + ([f"not measured: {', '.join(missing)}"] if missing else [])
    )
    if short:
        return ("fail" if rec.spec.signoff else "inconclusive"), "; ".join(short) + (
            " (strict: only a pass passes)" if rec.spec.signoff else ""
        )
    return "pass", f"all {len(configs)} configurations passed"
