"""Gates: one limit applied to one metric's scalar view, with a message a person can act on.

Outcomes: `pass`, `fail`, `insufficient` (fewer items than the metric's minimum) and
`not_applicable` (the gate's premise is absent in the baseline: no correct answer to flip, no
sink to shift). Only `pass` counts as passed; the others are shown, never silently passed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .policy import Limit

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
    else:
        outcome = "pass" if limit.holds(v) else "fail"
        detail = (f"{spec}: {metric} = {v:.4g}{ci} {'within' if outcome == 'pass' else 'violates'} limit {limit}"
                  f"{n_txt}" + (f" (worst at {view.where})" if view.where else ""))
    return {"metric": metric, "value": v if finite else None, "limit": limit.bound, "op": limit.op,
            "outcome": outcome, "passed": outcome == "pass", "detail": detail, "n": view.n,
            "ci_low": view.ci[0] if view.ci else None, "ci_high": view.ci[1] if view.ci else None}


def config_verdict(gates: list[dict]) -> str:
    """fail if any gate failed; inconclusive if any other gate did not pass; else pass."""
    outcomes = {g.get("outcome", "pass" if g["passed"] else "fail") for g in gates}
    if "fail" in outcomes:
        return "fail"
    return "pass" if outcomes <= {"pass"} else "inconclusive"
