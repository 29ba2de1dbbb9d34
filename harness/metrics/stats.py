"""Statistics on per-item evidence (numpy only): intervals that keep their coverage with few clusters.

Continuous statistics over the corpus get a cluster jackknife t-interval: theta +/- t(k-1) * SE, the SE from
deleting one cluster (corpus document) at a time, on the log scale for positive quantities (ratios, KL, JS,
relative errors: their per-document values are right-skewed, and on the linear scale the interval misses high,
the false-pass side), shifted by a small level for quantities whose no-change value is 0 (t_bounds), its
quantiles corrected for the skewness that remains (_skew_quantiles, Hall 1992).
Rates of binary events get exact or score intervals: Clopper-Pearson for a break rate
(events among eligible items), Tango's score interval for a net rate of paired items (worse minus better).
Worst-cell statistics (the worst head or layer) are decided over every cell (cell_bounds). Every interval is
two-sided 95%: 2.5% on each side, so a gate decided on one side errs at most 2.5% of the time at its limit.
Why these methods and the coverage they keep: docs/policy.md and bench/calibration.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.metrics.dist import t_ppf

ALPHA = 0.05  # two-sided: ALPHA / 2 on each side


def sink_rate(mass: np.ndarray, eps: float) -> float:
    """Share of (layer, head) whose sink mass exceeds eps (Gu et al. 0.3; Barbero et al. 0.8)."""
    mass = np.asarray(mass, dtype=np.float64)
    return float((mass > eps).mean())


def members(clusters) -> list[np.ndarray]:
    """Item indices of each cluster, in order of first appearance of the sorted cluster ids."""
    clusters = np.asarray(clusters)
    if not len(clusters):
        return []
    _, inverse = np.unique(clusters, return_inverse=True)
    return [np.flatnonzero(inverse == k) for k in range(inverse.max() + 1)]


def jackknife(stat, clusters) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(theta, delete-one-cluster values [k, ...], SE, k) of stat(item index array), scalar or array valued.

    SE^2 = (k-1)/k * sum_j (theta_(-j) - mean)^2: the cluster jackknife (Efron & Stein 1981), which for a mean
    is the CR3 cluster-robust variance; with one cluster there is nothing to delete (SE NaN).
    """
    groups = members(clusters)
    k = len(groups)
    everything = np.concatenate(groups) if groups else np.arange(0)
    theta = np.asarray(stat(np.sort(everything)), dtype=np.float64)
    if k < 2:
        return theta, np.full((max(k, 0),) + theta.shape, np.nan), np.full(theta.shape, np.nan), k
    left = np.stack(
        [np.asarray(stat(np.sort(np.concatenate(groups[:j] + groups[j + 1 :]))), dtype=np.float64) for j in range(k)]
    )
    se = np.sqrt((k - 1) / k * ((left - left.mean(0)) ** 2).sum(0))
    return theta, left, se, k


def _log_ok(theta: np.ndarray, left: np.ndarray) -> np.ndarray:
    """Where the log scale can be used: the statistic and every delete-one value positive and finite."""
    return (theta > 0) & np.all(left > 0, axis=0) & np.isfinite(theta)


# How far the skew correction may move a bound: |a| q <= SKEW_STEP, a Hall's coefficient (below) and q the t
# quantile, so a bound moves by at most about a sixth of its t half-width. Hall's expansion holds for moderate
# skew, and a sample skewness is noisy with few clusters: a mean resting on one cluster of k shows about sqrt(k)
# (a head that moves in one document only), which uncapped would widen its bound several-fold at 7 documents.
# 0.1 keeps nearly all of the correction measured at nightly's 46 documents (false passes at the limit 2.3%
# against 2.2% uncapped; bench/calibration.py, docs/policy.md).
SKEW_STEP = 0.1


def _skew_quantiles(theta: np.ndarray, left: np.ndarray, k: int, q: float) -> tuple[np.ndarray, np.ndarray]:
    """(t_lo, t_hi): where the studentized statistic T = (theta - truth) / SE lies with probability `level` on
    each side, corrected for the skewness of the delete-one pseudovalues by Hall's transformation (Hall 1992,
    "On the removal of skewness by transformation", JRSS B 54: g(T) = T + a T^2 + a^2 T^3 / 3 + d with
    a = skew / (3 sqrt k), d = a / 2, i.e. g(T) = ((1 + a T)^3 - 1) / (3 a) + d, monotone and inverted in closed
    form). Right-skewed cluster values make a low estimate come with a small SE, so the plain t upper bound
    misses the truth more often than its level (lognormal clusters, 46 of them: 3.6% instead of 2.5%, the
    false-pass side); the correction brings it back to about 2.3% (with the step capped: SKEW_STEP)."""
    ps = k * theta - (k - 1) * left  # pseudovalues [k, ...]: their mean is the jackknife estimate, var/k its SE^2
    cen = ps - ps.mean(0)
    m2, m3 = (cen**2).mean(0), (cen**3).mean(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(m2 > 0, m3 / np.where(m2 > 0, m2, 1.0) ** 1.5, 0.0)
    a = np.clip(np.nan_to_num(g) / (3 * math.sqrt(k)), -SKEW_STEP / q, SKEW_STEP / q)
    d = a / 2
    small = np.abs(a) < 1e-12
    safe = np.where(small, 1.0, a)

    def inverse(v: float) -> np.ndarray:
        return np.where(small, v - d, (np.cbrt(3 * safe * (v - d) + 1) - 1) / safe)

    return inverse(-q), inverse(q)


def t_bounds(
    stat, clusters, positive: bool = False, level: float = ALPHA / 2, shift: float = 0.0, skew: bool = True
) -> tuple:
    """(theta, lower, upper, k): one-sided bounds each at `level` (0.025: together a 95% interval), elementwise.

    positive: the statistic is a positive quantity; where it and every delete-one value are positive, the
    interval is built for log(theta + shift) and mapped back (its SE from the jackknife of log(theta + shift)).
    shift > 0 (Metric.log_shift: a tenth of the bundled limit) keeps the log scale's correction for skew near the
    limit, while a mean far below it that rests on one cluster (a head that moves in one document only) no
    longer gets a bound many orders of magnitude above its value: below the shift the scale is nearly linear.
    skew: correct the t quantiles for the pseudovalues' skewness (_skew_quantiles), on whichever scale the
    interval is built; off for far-tail (Bonferroni) bounds, where the expansion does not hold.
    """
    theta, left, se, k = jackknife(stat, clusters)
    if k < 2:
        nan = np.full(theta.shape, np.nan)
        return theta, nan, nan, k
    q = t_ppf(1 - level, k - 1)

    def bounds(th, lv, s):
        if not skew or k < 3:
            return th - q * s, th + q * s
        t_lo, t_hi = _skew_quantiles(th, lv, k, q)
        return th - t_hi * s, th - t_lo * s

    with np.errstate(invalid="ignore"):
        lo, hi = bounds(theta, left, se)
    if positive:
        ok = _log_ok(theta + shift, left + shift)
        if np.any(ok):
            with np.errstate(divide="ignore", invalid="ignore"):
                ll = np.log(np.where(ok, left + shift, 1.0))
                lse = np.sqrt((k - 1) / k * ((ll - ll.mean(0)) ** 2).sum(0))
                lt = np.log(np.where(ok, theta + shift, 1.0))
                llo, lhi = bounds(lt, ll, lse)
            lo = np.where(ok, np.exp(llo) - shift, lo)
            hi = np.where(ok, np.exp(lhi) - shift, hi)
    return theta, lo, hi, k


def cluster_interval(stat, clusters, positive: bool = False, shift: float = 0.0) -> tuple[float, float]:
    """The 95% interval of a scalar stat(item index array) over clustered items (NaN with fewer than 2 clusters
    or a non-finite statistic); positive and shift as t_bounds."""
    theta, lo, hi, k = t_bounds(stat, clusters, positive, shift=shift)
    if k < 2 or not (np.isfinite(theta) and np.isfinite(lo) and np.isfinite(hi)):
        return (math.nan, math.nan)
    return (float(lo), float(hi))


@dataclass(frozen=True)
class CellBounds:
    """A worst-cell statistic decided over every cell (a head [l, h] or a layer [l]).

    value/where: the binding cell, the one whose bound is nearest the bad side (the cell a pass depends on);
    ci = (the largest simultaneous bound towards harm over cells, the worst cell's one-sided bound): pass when
    every cell's one-sided bound is within the limit (an intersection-union test needs no multiplicity
    correction), fail when some cell's Bonferroni-simultaneous bound is beyond it. Each side errs at most 2.5%.
    """

    value: float
    ci: tuple[float, float]
    where: tuple[int, ...]
    proof_where: tuple[int, ...]  # the cell with the strongest simultaneous evidence of harm
    cells: int


def cell_bounds(per_item: np.ndarray, clusters, worst: str, positive: bool = False, shift: float = 0.0) -> CellBounds:
    """per_item [n, ...cells]: each item's value per cell; worst: "max" (larger is worse), "min" (smaller is
    worse) or "abs" (larger |value| is worse: a two-sided change); positive and shift as t_bounds."""
    x = np.asarray(per_item, dtype=np.float64)
    shape = x.shape[1:]
    flat = x.reshape(len(x), -1)
    c = flat.shape[1]
    sides = 2 if worst == "abs" else 1
    mean = lambda i: flat[i].mean(0)  # noqa: E731
    log = positive and worst != "abs"
    theta, lo, hi, k = t_bounds(mean, clusters, log, shift=shift)
    _, slo, shi, _ = t_bounds(mean, clusters, log, level=ALPHA / 2 / (sides * c), shift=shift, skew=False)
    if worst == "max":
        edge, proof, val = hi, slo, theta  # pass: every upper bound low; fail: some simultaneous lower bound high
    elif worst == "min":
        edge, proof, val = -lo, -shi, -theta
    else:
        edge = np.maximum(hi, -lo)
        proof = np.maximum(np.maximum(slo, -shi), 0.0)
        val = np.abs(theta)
    cell = lambda i: tuple(int(v) for v in np.unravel_index(i, shape))  # noqa: E731
    nan = math.nan
    if not np.all(np.isfinite(theta)):  # NaN/Inf in some cell: the value is non-finite (its gate fails)
        bad = int(np.argmax(~np.isfinite(theta)))
        return CellBounds(nan, (nan, nan), cell(bad), cell(bad), c)
    sign = -1.0 if worst == "min" else 1.0
    if k < 2:  # no interval: the worst point estimate, undecided
        b = int(np.argmax(val))
        return CellBounds(float(sign * val[b]), (nan, nan), cell(b), cell(b), c)
    b, p = int(np.argmax(edge)), int(np.argmax(proof))
    ci = (float(proof[p]), float(edge[b])) if sign > 0 else (float(-edge[b]), float(-proof[p]))
    return CellBounds(float(sign * val[b]), ci, cell(b), cell(p), c)


def mcnemar_p(worse: int, better: int) -> float:
    """One-sided exact McNemar p-value: P(X >= worse) for X ~ Binomial(worse + better, 1/2).

    Meaningful only where discordant pairs in both directions can exist (degeneration, regression between runs),
    never for flips among stable-correct prompts (no prompt there can flip to right).
    """
    n = worse + better
    if n == 0:
        return 1.0
    return float(sum(math.comb(n, x) for x in range(worse, n + 1)) / 2**n)


def sign_test_beyond(cluster_values: np.ndarray, limit: float, bad_above: bool) -> float:
    """Exact one-sided sign test over clusters: P(all k cluster values on the bad side of the limit | each side
    equally likely), 1.0 when any is not. Proves a failure with few clusters (k >= 6 gives < 0.025)."""
    v = np.asarray(cluster_values, dtype=np.float64)
    if not len(v) or not np.all(np.isfinite(v)):
        return 1.0
    beyond = v > limit if bad_above else v < limit
    return float(0.5 ** len(v)) if np.all(beyond) else 1.0
