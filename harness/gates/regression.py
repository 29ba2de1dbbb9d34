"""Regression checks: today's metric against an earlier run's, direction-aware, with a tolerance.

Both runs measured the same hash-checked corpus and prompts, so a difference is not sampling
noise between two draws: it is paired, item by item. A check fails when the metric got worse by
more than its tolerance *and*, where per-item evidence exists, the change is systematic:
- corpus metrics (loss_delta, ppl_ratio, kld_mean, top1_agreement): the per-sequence change has a
  95% interval (the cluster jackknife t over documents) wholly on the worse side;
- flips, misgeneration and degeneration: an exact one-sided McNemar (sign) test on the prompts whose
  paired score against the baseline changed between the two runs gives p < 0.05.
Metrics without per-item evidence (worst head, worst layer) fail on the tolerance alone. A
non-finite value today always fails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.gates.policy import Tolerance
from harness.metrics.catalogue import BY_NAME, HIGHER_IS_BETTER, STORED
from harness.metrics.stats import cluster_interval, mcnemar_p

ALPHA = 0.05


def stored_items(cfg: dict, group: str) -> list[dict] | None:
    """A configuration's per-item records of an evidence group as results.json keeps them (catalogue.STORED)."""
    node = cfg
    for key in STORED.get(group, ()):
        node = (node or {}).get(key)
    return node or None


def paired_change(metric: str, earlier_cfg: dict | None, now_cfg: dict | None) -> dict | None:
    """{significant, detail} of the item-by-item change of a metric between two runs, or None when
    either run lacks per-item evidence for it."""
    m = BY_NAME.get(metric)
    if not earlier_cfg or not now_cfg or m is None or m.item is None:
        return None
    a, b = stored_items(earlier_cfg, m.evidence), stored_items(now_cfg, m.evidence)
    if a is None or b is None:
        return None
    sign = -1 if m.higher_is_better else 1
    if m.evidence == "sequences":
        if len(a) != len(b):
            return None
        # + : worse now
        d = sign * (np.array([m.item(s) for s in b], dtype=float) - np.array([m.item(s) for s in a], dtype=float))
        docs = np.asarray([s["doc"] for s in b])
        lo, hi = cluster_interval(lambda i: float(d[i].mean()), docs)
        sig = bool(math.isfinite(lo) and lo > 0)
        return {
            "significant": sig,
            "detail": f"per-sequence change {d.mean():+.4g} (worse +), 95% CI "
            f"[{lo:.4g}, {hi:.4g}] over {len(d)} sequences",
        }
    if m.evidence == "prompts":  # paired scores against the baseline, compared prompt by prompt
        a, b = {g["id"]: m.item(g) for g in a}, {g["id"]: m.item(g) for g in b}
        both = [k for k in b if k in a]
        worse = sum(b[k] > a[k] for k in both)
        better = sum(b[k] < a[k] for k in both)
        p = mcnemar_p(worse, better)
        return {
            "significant": p < ALPHA,
            "worse_items": worse,
            "better_items": better,
            "p": p,
            "detail": f"{worse} prompts worse, {better} better of {len(both)} (exact McNemar p = {p:.3g})",
        }
    return None


@dataclass(frozen=True)
class RegressionCheck:
    spec: str
    metric: str
    tolerance: Tolerance

    def evaluate(
        self, earlier: float | None, now: float | None, ci: tuple | None, earlier_run: str, paired: dict | None = None
    ) -> dict:
        higher_better = self.metric in HIGHER_IS_BETTER
        base = {
            "metric": self.metric,
            "earlier": earlier,
            "value": now,
            "earlier_run": earlier_run,
            "tolerance": str(self.tolerance),
            "ci_low": ci[0] if ci else None,
            "ci_high": ci[1] if ci else None,
            "paired": paired,
        }
        if earlier is None or not math.isfinite(earlier):
            return {
                **base,
                "passed": True,
                "worse_by": None,
                "detail": f"{self.spec}: {self.metric} had no finite value in {earlier_run}; nothing to compare",
            }
        if now is None or not math.isfinite(now):
            return {
                **base,
                "passed": False,
                "worse_by": None,
                "detail": f"{self.spec}: {self.metric} is non-finite now (was {earlier:.4g} in {earlier_run})",
            }
        worse_by = (earlier - now) if higher_better else (now - earlier)
        allowed = self.tolerance.allowed(earlier)
        beyond = worse_by > allowed
        significant = paired["significant"] if paired is not None else True
        failed = beyond and significant
        word = "worse" if worse_by > 0 else "better"
        detail = (
            f"{self.spec}: {self.metric} {now:.4g} now vs {earlier:.4g} in {earlier_run} "
            f"({word} by {abs(worse_by):.4g}; tolerance {self.tolerance} = {allowed:.4g})"
        )
        if paired is not None:
            detail += f"; {paired['detail']}"
        if failed:
            detail = "regression: " + detail
        elif beyond:
            detail += ": beyond tolerance but not a systematic change, not a regression"
        return {**base, "passed": not failed, "worse_by": worse_by, "detail": detail}
