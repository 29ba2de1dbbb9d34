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
from dataclasses import dataclass

from .policy import Limit
from .stats import needed_n

OUTCOMES = ("pass", "fail", "inconclusive", "insufficient", "not_applicable")


@dataclass(frozen=True)
class GateView:
    """The scalar a gate judges, its bootstrap interval, where it is worst (if per layer/head),
    how many items it rests on and, when its premise is absent in the baseline, why."""

    value: float
    ci: tuple[float, float] | None = None
    where: str = ""
    n: int | None = None
    absent: str | None = None

    def as_dict(self) -> dict:
        return {"value": self.value, "ci_low": self.ci[0] if self.ci else None,
                "ci_high": self.ci[1] if self.ci else None, "where": self.where, "n": self.n,
                **({"absent": self.absent} if self.absent else {})}

    @classmethod
    def from_dict(cls, d: dict) -> "GateView":
        ci = (d["ci_low"], d["ci_high"]) if d.get("ci_low") is not None else None
        return cls(d.get("value"), ci, d.get("where") or "", d.get("n"), d.get("absent"))


def gate_all(spec: str, limits: dict, views: dict, nonfinite_layer: int | None = None) -> list[dict]:
    """Every gate of limits ({metric: Limit}) decided on the stored views ({metric: GateView.as_dict()})."""
    from .catalogue import BY_NAME

    note = (f"NaN/Inf first appeared in the output of decoder layer {nonfinite_layer}"
            if nonfinite_layer is not None else "")
    return [evaluate_gate(spec, m, lim, GateView.from_dict(views[m]), note, BY_NAME[m].min_n)
            for m, lim in limits.items()]


def evaluate_gate(spec: str, metric: str, limit: Limit, view: GateView, nonfinite_note: str = "",
                  min_n: int = 1) -> dict:
    v = view.value
    finite = v is not None and math.isfinite(v)
    ci = f" [95% CI {view.ci[0]:.4g}, {view.ci[1]:.4g}]" if view.ci and all(
        c is not None and math.isfinite(c) for c in view.ci) else ""
    n_txt = f", n={view.n}" if view.n is not None else ""
    if view.absent:
        outcome = "not_applicable"
        detail = f"{spec}: {metric} not applicable: {view.absent}"
    elif view.n is not None and view.n < min_n:
        outcome = "insufficient"
        detail = (f"{spec}: {metric} insufficient evidence: {view.n} items, at least {min_n} needed "
                  f"(limit {limit})")
    elif not finite:
        outcome = "fail"
        detail = f"{spec}: {metric} is {v} (non-finite): fails {metric} {limit}" + (
            f"; {nonfinite_note}" if nonfinite_note else "")
    elif view.ci is not None and not ci:
        outcome = "inconclusive"
        detail = (f"{spec}: {metric} = {v:.4g} has no interval (too few items in the resamples){n_txt}: "
                  f"cannot be decided against limit {limit}")
    else:
        outcome = decide(limit, v, view.ci if ci else None)
        word = {"pass": "within", "fail": "violates", "inconclusive": "straddles"}[outcome]
        detail = (f"{spec}: {metric} = {v:.4g}{ci} {word} limit {limit}{n_txt}"
                  + (f" (worst at {view.where})" if view.where else ""))
    need = needed_n(view.n or 0, v, view.ci, limit.bound) if outcome == "inconclusive" else None
    if need is not None:
        detail += f"; about {need} items would decide it"
    return {"metric": metric, "value": v if finite else None, "limit": limit.bound, "op": limit.op,
            "outcome": outcome, "passed": outcome == "pass", "detail": detail, "n": view.n, "n_needed": need,
            "ci_low": view.ci[0] if view.ci else None, "ci_high": view.ci[1] if view.ci else None}


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


def config_verdict(gates: list[dict]) -> str:
    """fail if any gate failed; inconclusive if any other gate did not pass; else pass."""
    outcomes = {g.get("outcome", "pass" if g["passed"] else "fail") for g in gates}
    if "fail" in outcomes:
        return "fail"
    return "pass" if outcomes <= {"pass"} else "inconclusive"
