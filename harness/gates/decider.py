"""What would decide an undecided gate, said in words: the option to raise and the value that would decide it
under the run's actual design (clusters for corpus metrics, eligible prompts for rates), or that no option can.

The figure assumes the estimate stays where it is and its uncertainty shrinks as the interval's own method says:
t(k-1) * SE * sqrt(k / k') for k' clusters (SE from the delete-one-cluster jackknife), the exact or score interval
recomputed at the larger count for rates. It is a planning figure for the next run, not a licence to re-run until
a pass appears: each new run is a new decision at the same error rate.
"""

from __future__ import annotations

import math

from harness.metrics.dist import clopper_pearson, t_ppf, tango
from harness.metrics.stats import ALPHA

_MAX_UNITS = 10**6


def _side(view, limit) -> tuple[float, float] | None:
    """(distance from the value to the interval's bound on the side a decision needs, distance to the limit)."""
    v, (lo, hi) = view.value, view.ci
    bad_above = limit.op == "max"
    on_good_side = v < limit.bound if bad_above else v > limit.bound
    if v == limit.bound:
        return None
    if bad_above:
        return (hi - v, limit.bound - v) if on_good_side else (v - lo, v - limit.bound)
    return (v - lo, v - limit.bound) if on_good_side else (hi - v, limit.bound - v)


def _clusters_needed(view, limit, at_least: int, k: int | None = None) -> int | None:
    """Units (clusters; items where the clusters are fixed strata) for the t interval to clear the limit."""
    k = (view.clusters or 0) if k is None else k
    side = _side(view, limit) if view.ci else None
    if side is None or k < 2:
        return None if side is None and view.ci else max(at_least, 2 * max(k, 1))
    d, margin = side
    t_now = t_ppf(1 - ALPHA / 2, k - 1)
    lo, hi = max(k + 1, at_least), _MAX_UNITS
    if t_ppf(1 - ALPHA / 2, hi - 1) / t_now * d * math.sqrt(k / hi) >= margin:
        return None
    while lo < hi:  # the half-width shrinks monotonically in k'
        mid = (lo + hi) // 2
        if t_ppf(1 - ALPHA / 2, mid - 1) / t_now * d * math.sqrt(k / mid) < margin:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _count_needed(view, limit, m) -> int | None:
    """Items for an exact/score interval at today's rates to clear the limit."""
    n = view.n or 0
    if not n or view.value == limit.bound:
        return None
    rate = view.value

    def decided(n2: int) -> bool:
        if m.kind == "net":  # today's rates of worse and better items, scaled to n2 items
            w, b = (view.counts[0] / n, view.counts[1] / n) if view.counts else (max(rate, 0.0), max(-rate, 0.0))
            lo, hi = tango(round(w * n2), round(b * n2), n2)
        else:
            lo, hi = clopper_pearson(round(rate * n2), n2)
        good, bad = (hi, lo) if limit.op == "max" else (lo, hi)
        return limit.holds(good) or not limit.holds(bad)

    hi = n + 1
    while not decided(hi):
        hi *= 2
        if hi > _MAX_UNITS:
            return None
    lo = n + 1
    while lo < hi:
        mid = (lo + hi) // 2
        if decided(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def cluster_unit(m) -> str:
    """What a metric's clusters are: task families for the task gates, corpus documents for the rest."""
    return "task families" if getattr(m, "evidence", None) == "tasks" else "documents"


def what_decides(m, view, limit) -> str:
    """'about K documents would decide it: --n-sequences 40' / '... no value of --n-prompts can: ...' / ''."""
    if view.value is None or not math.isfinite(view.value):
        return ""
    if view.value == limit.bound:
        return "the estimate sits on the limit: no amount of evidence decides it"
    design = view.design or {}
    if m.kind in ("t", "cells") and not m.strata:
        need, units = _clusters_needed(view, limit, m.min_clusters), f"{cluster_unit(m)} (clusters)"
        now = view.clusters or 0
    elif m.kind in ("t", "cells"):  # a mean over items in fixed strata (answer_margin_delta): items are the units
        need, units = _clusters_needed(view, limit, m.min_n, k=view.n or 0), design.get("unit") or "items"
        now = view.n or 0
    else:
        need, units = _count_needed(view, limit, m), design.get("unit") or "items"
        now = view.n or 0
    if need is None:
        return f"the estimate lies too near the limit: over {_MAX_UNITS:,} items at today's estimate would be needed"
    if view.n is not None and view.n < m.min_n and not (m.kind in ("t", "cells") and not m.strata):
        need = max(need, m.min_n)
    text = f"about {need} {units} would decide it"
    option = design.get("option")
    if not option or not now:
        return text
    per = (design.get("value") or now) / now  # option value per unit today
    most = design.get("max_units")
    if most is None and design.get("max_value") is not None:
        most = int(design["max_value"] / per)
    if most is not None and need > most:
        return f"{text}; no value of {option} can: {design.get('more', 'the inputs hold too few')}"
    return f"{text}: {option} {math.ceil(need * per)}"
