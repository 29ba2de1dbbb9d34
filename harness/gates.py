"""Gates: one limit applied to one metric's scalar view, with a message a person can act on."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .policy import Limit


@dataclass(frozen=True)
class GateView:
    """The scalar a gate judges, its bootstrap interval and where it is worst (if per layer/head)."""

    value: float
    ci: tuple[float, float] | None = None
    where: str = ""


def evaluate_gate(spec: str, metric: str, limit: Limit, view: GateView, nonfinite_note: str = "") -> dict:
    v = view.value
    finite = v is not None and math.isfinite(v)
    passed = bool(finite and limit.holds(v))
    if not finite:
        detail = f"{spec}: {metric} is {v} (non-finite): fails {metric} {limit}" + (
            f"; {nonfinite_note}" if nonfinite_note else "")
    else:
        ci = f" [95% CI {view.ci[0]:.4g}, {view.ci[1]:.4g}]" if view.ci and all(
            math.isfinite(c) for c in view.ci) else ""
        verdict = "within" if passed else "violates"
        detail = f"{spec}: {metric} = {v:.4g}{ci} {verdict} limit {limit}" + (
            f" (worst at {view.where})" if view.where else "")
    return {"metric": metric, "value": v if finite else None, "limit": limit.bound, "op": limit.op,
            "passed": passed, "detail": detail,
            "ci_low": view.ci[0] if view.ci else None, "ci_high": view.ci[1] if view.ci else None}
