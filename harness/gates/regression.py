"""Regression checks: today's metric against an earlier run's (or the pinned anchor's), with a tolerance.

Both runs measured the same hash-checked corpus and prompts, so the change is paired, item by item: each
sequence's (or prompt's) value today minus the earlier run's, through the catalogue's Metric.item reader. The
change gets a 95% interval like every gate (the cluster jackknife t over documents for sequences, over prompts
for prompt scores) and the same three-way decision against the tolerance allowed: pass when the whole interval
lies within it, fail when it lies wholly beyond it, inconclusive when it straddles. Metrics without per-item
evidence (worst head, worst layer) take today's gate interval less the earlier value (the earlier value fixed). A
non-finite value today always fails. The same check against the pinned anchor measures cumulative drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.gates.policy import Tolerance
from harness.metrics.catalogue import STORED, metric_for
from harness.metrics.stats import cluster_interval


def stored_items(cfg: dict, group: str) -> list[dict] | None:
    """A configuration's per-item records of an evidence group as results.json keeps them (catalogue.STORED)."""
    node = cfg
    for key in STORED.get(group, ()):
        node = (node or {}).get(key)
    return node or None


def paired_change(metric: str, earlier_cfg: dict | None, now_cfg: dict | None) -> dict | None:
    """{change, ci, n, detail}: the metric's change (today - earlier, oriented so + is worse, on the metric's scale)
    and its 95% interval from per-item pairs, or None when either run lacks per-item evidence for it."""
    m = metric_for(metric)
    if not earlier_cfg or not now_cfg or m is None or m.item is None:
        return None
    a, b = stored_items(earlier_cfg, m.evidence), stored_items(now_cfg, m.evidence)
    if a is None or b is None:
        return None
    if m.evidence == "sequences":
        if len(a) != len(b):
            return None
        pairs, clusters, unit = list(zip(a, b)), [s["doc"] for s in b], "sequences"
    else:  # prompts, paired by id, over the items the metric counts (m.eligible)
        before = {g["id"]: g for g in a}
        pairs = [(before[g["id"]], g) for g in b if g["id"] in before and m.eligible(g)]
        clusters, unit = list(range(len(pairs))), "prompts"
    if not pairs:
        return None
    sign = -1.0 if m.higher_is_better else 1.0
    num = lambda v: math.nan if v is None else float(v)  # noqa: E731 - results.json stores NaN/Inf as null
    d = sign * np.array([num(m.item(y)) - num(m.item(x)) for x, y in pairs], dtype=float)
    if not np.isfinite(d).all():  # a non-finite item: no paired interval (today's value decides, and NaN fails)
        return None
    mean = float(d.mean())
    lo, hi = cluster_interval(lambda i: float(d[i].mean()), np.asarray(clusters))
    earlier_value = ((earlier_cfg.get("gate_views") or {}).get(metric) or {}).get("value")
    scale = (lambda x: m.item_change(earlier_value, x)) if m.item_change is not None else (lambda x: x)
    change, ci = scale(mean), (scale(lo), scale(hi)) if math.isfinite(lo) else None
    return {
        "change": change,
        "ci": ci,
        "n": len(d),
        "detail": f"paired change {change:+.4g} (worse +)"
        + (f", 95% CI [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")
        + f" over {len(d)} {unit}",
    }


@dataclass(frozen=True)
class RegressionCheck:
    spec: str
    metric: str
    tolerance: Tolerance

    def evaluate(
        self, earlier: float | None, now: float | None, ci: tuple | None, earlier_run: str, paired: dict | None = None
    ) -> dict:
        """pass / fail / inconclusive: how much worse the metric got against the tolerance, on the change's
        interval (paired per-item evidence, else today's interval less the earlier value)."""
        higher_better = metric_for(self.metric).higher_is_better
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
                "outcome": "not_applicable",
                "passed": False,
                "worse_by": None,
                "detail": f"{self.spec}: {self.metric} had no finite value in {earlier_run}; nothing to compare",
            }
        if now is None or not math.isfinite(now):
            return {
                **base,
                "outcome": "fail",
                "passed": False,
                "worse_by": None,
                "detail": f"{self.spec}: {self.metric} is non-finite now (was {earlier:.4g} in {earlier_run})",
            }
        worse_by = (earlier - now) if higher_better else (now - earlier)
        allowed = self.tolerance.allowed(earlier)
        if paired is not None and paired.get("ci") is not None:
            lo, hi = paired["ci"]
        elif ci is not None and all(c is not None and math.isfinite(c) for c in ci):
            lo, hi = sorted(((earlier - c) if higher_better else (c - earlier)) for c in ci)
        else:
            lo = hi = worse_by
        outcome = "pass" if hi <= allowed else "fail" if lo > allowed else "inconclusive"
        word = "worse" if worse_by > 0 else "better"
        detail = (
            f"{self.spec}: {self.metric} {now:.4g} now vs {earlier:.4g} in {earlier_run} ({word} by "
            f"{abs(worse_by):.4g}, 95% CI of the worsening [{lo:.4g}, {hi:.4g}]; tolerance {self.tolerance} = "
            f"{allowed:.4g})"
        )
        if paired is not None:
            detail += f"; {paired['detail']}"
        detail = {"fail": "regression: ", "inconclusive": "undecided: "}.get(outcome, "") + detail
        return {**base, "outcome": outcome, "passed": outcome == "pass", "worse_by": worse_by, "detail": detail}


def check_against(spec: str, metric: str, tolerance: Tolerance, earlier_cfg: dict, now_cfg: dict, label: str) -> dict:
    """One regression or drift check of configuration `spec` on `metric`: now_cfg against earlier_cfg (results.json
    configuration dicts), on paired per-item evidence where both runs kept it. The session's checks and the history's
    step and drift detection (history/trend.py) share this one definition."""
    earlier = (earlier_cfg.get("gate_views") or {}).get(metric) or {}
    now = (now_cfg.get("gate_views") or {}).get(metric) or {}
    ci = (now.get("ci_low"), now.get("ci_high")) if now.get("ci_low") is not None else None
    return RegressionCheck(spec, metric, tolerance).evaluate(
        earlier.get("value"), now.get("value"), ci, label, paired_change(metric, earlier_cfg, now_cfg)
    )
