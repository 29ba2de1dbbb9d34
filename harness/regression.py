"""Regression checks: today's metric against an earlier run's, direction-aware, with a tolerance.

A check fails only when the metric got worse by more than its tolerance *and* the
earlier value lies outside today's bootstrap interval (so resampling noise alone
never fails a nightly run). A non-finite value today always fails.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .catalogue import HIGHER_IS_BETTER
from .policy import Tolerance


@dataclass(frozen=True)
class RegressionCheck:
    spec: str
    metric: str
    tolerance: Tolerance

    def evaluate(self, earlier: float | None, now: float | None, ci: tuple | None, earlier_run: str) -> dict:
        higher_better = self.metric in HIGHER_IS_BETTER
        base = {"metric": self.metric, "earlier": earlier, "value": now, "earlier_run": earlier_run,
                "tolerance": str(self.tolerance), "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None}
        if earlier is None or not math.isfinite(earlier):
            return {**base, "passed": True, "worse_by": None,
                    "detail": f"{self.spec}: {self.metric} had no finite value in {earlier_run}; nothing to compare"}
        if now is None or not math.isfinite(now):
            return {**base, "passed": False, "worse_by": None,
                    "detail": f"{self.spec}: {self.metric} is non-finite now (was {earlier:.4g} in {earlier_run})"}
        worse_by = (earlier - now) if higher_better else (now - earlier)
        allowed = self.tolerance.allowed(earlier)
        in_ci = bool(ci and ci[0] is not None and ci[1] is not None and ci[0] <= earlier <= ci[1])
        failed = worse_by > allowed and not in_ci
        word = "worse" if worse_by > 0 else "better"
        ci_txt = f", 95% CI now [{ci[0]:.4g}, {ci[1]:.4g}]" if ci and ci[0] is not None else ""
        detail = (f"{self.spec}: {self.metric} {now:.4g} now vs {earlier:.4g} in {earlier_run} "
                  f"({word} by {abs(worse_by):.4g}; tolerance {self.tolerance} = {allowed:.4g}{ci_txt})")
        if failed:
            detail = "regression: " + detail
        elif worse_by > allowed:
            detail += ": earlier value inside today's interval, not a regression"
        return {**base, "passed": not failed, "worse_by": worse_by, "detail": detail}
