"""Statistics on per-item evidence (numpy only): rates, cluster bootstrap intervals, McNemar.

Intervals resample *clusters* (the corpus document a sequence was cut from; the family of a
prompt), not items: sequences cut from one document, or prompts made from one template, are not
independent, and resampling them one by one gives intervals that are too narrow.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

N_BOOT = 2000  # resamples per interval
_N = NormalDist()


def sink_rate(mass: np.ndarray, eps: float) -> float:
    """Share of (layer, head) whose sink mass exceeds eps (Gu et al. 0.3; Barbero et al. 0.8)."""
    mass = np.asarray(mass, dtype=np.float64)
    return float((mass > eps).mean())


def bootstrap_stat(n: int, stat, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05):
    """Percentile bootstrap interval of stat(index array) over n resampled items (seeded).

    NaN interval when there is nothing to resample or any resampled stat is non-finite.
    """
    if n == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    vals = np.array([stat(rng.integers(0, n, n)) for _ in range(n_boot)], dtype=np.float64)
    if not np.all(np.isfinite(vals)):
        return (float("nan"), float("nan"))
    return (float(np.quantile(vals, alpha / 2)), float(np.quantile(vals, 1 - alpha / 2)))


def bootstrap_ci(samples, stat=np.mean, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05):
    """Percentile bootstrap interval of stat over the first axis of samples (seeded)."""
    x = np.asarray(samples, dtype=np.float64)
    return bootstrap_stat(len(x), lambda i: stat(x[i]), n_boot, seed, alpha)


def _members(clusters) -> list[np.ndarray]:
    clusters = np.asarray(clusters)
    _, inverse = np.unique(clusters, return_inverse=True)
    return [np.flatnonzero(inverse == k) for k in range(inverse.max() + 1)] if len(clusters) else []


def cluster_bootstrap(
    stat, clusters, n_boot: int = N_BOOT, seed: int = 0, alpha: float = 0.05, bca: bool = True
) -> tuple[float, float]:
    """95% interval of stat(item index array), resampling whole clusters with replacement (seeded).

    BCa (bias-corrected and accelerated; Efron 1987) with the acceleration from a leave-one-cluster-
    out jackknife: ratios (ppl_ratio) and worst-of-many statistics are skewed, and BCa corrects the
    percentile interval's coverage for skew and median bias. Falls back to the percentile interval
    with fewer than 3 clusters or a degenerate jackknife. A resample where the statistic is undefined
    (e.g. no stable-correct prompt drawn) is dropped when that happens in at most 5% of resamples;
    more often, or any infinite value, gives a NaN interval (the gate is then undecided).
    """
    members = _members(clusters)
    k = len(members)
    if k == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, k, (n_boot, k))
    single = all(len(m) == 1 for m in members)
    flat = np.array([m[0] for m in members]) if single else None
    vals = np.array(
        [stat(flat[row] if single else np.concatenate([members[j] for j in row])) for row in picks], dtype=np.float64
    )
    if np.isinf(vals).any() or np.isnan(vals).mean() > 0.05:
        return (math.nan, math.nan)
    vals = vals[~np.isnan(vals)]
    lo_q, hi_q = alpha / 2, 1 - alpha / 2
    if bca and k >= 3:
        theta = float(stat(np.concatenate(members)))
        jack = np.array(
            [stat(np.concatenate([m for j, m in enumerate(members) if j != d])) for d in range(k)], dtype=np.float64
        )
        # A resample that redraws the same clusters (in another order) reproduces theta up to summation order:
        # count those as ties, so the last bits of the CPU's float kernels cannot move the bias correction.
        tie = np.isclose(vals, theta, rtol=1e-9, atol=0.0) if math.isfinite(theta) else vals != vals
        below = (np.mean((vals < theta) & ~tie) + 0.5 * np.mean(tie)) if math.isfinite(theta) else math.nan
        d = jack.mean() - jack
        denom = 6.0 * (d**2).sum() ** 1.5
        if np.all(np.isfinite(jack)) and 0 < below < 1 and denom > 0:
            z0, a = _N.inv_cdf(below), float((d**3).sum() / denom)

            def adjust(q):
                z = _N.inv_cdf(q)
                return _N.cdf(z0 + (z0 + z) / (1 - a * (z0 + z)))

            lo_q, hi_q = adjust(lo_q), adjust(hi_q)
    return (float(np.quantile(vals, lo_q)), float(np.quantile(vals, hi_q)))


def mcnemar_p(worse: int, better: int) -> float:
    """One-sided exact McNemar p-value: P(X >= worse) for X ~ Binomial(worse + better, 1/2).

    worse: pairs right before and wrong after; better: wrong before and right after. Small p means
    the change is systematic (more flips to wrong than to right), not chance.
    """
    n = worse + better
    if n == 0:
        return 1.0
    return float(sum(math.comb(n, x) for x in range(worse, n + 1)) / 2**n)


def needed_n(n: int, value: float, ci: tuple[float, float] | None, limit: float) -> int | None:
    """Items an undecided gate would need for its interval to clear the limit, assuming the interval's
    half-width shrinks as 1/sqrt(n) and the value stays put (None when the value sits on the limit)."""
    if not ci or n <= 0 or not all(math.isfinite(x) for x in (*ci, value)) or value == limit:
        return None
    half = (ci[1] - ci[0]) / 2
    return max(n + 1, math.ceil(round(n * (half / abs(value - limit)) ** 2, 6)))


def crossfit_worst(per_item: np.ndarray, idx: np.ndarray, worst=np.argmax) -> float:
    """The worst cell of a [items, ...] statistic, selected on one half of the items and read on the
    other (then the halves swapped and the two readings averaged).

    The plain worst of many noisy means is biased away from the truth (with every head at a true
    JS of 0.02 the maximum of 270 means reads about 0.03); a cell chosen on independent data is read
    without that selection bias, so the value estimates the true worst when one cell stands out and
    the common value when none does.
    """
    a, b = idx[0::2], idx[1::2]
    if len(b) == 0:
        m = per_item[idx].mean(0)
        return float(m.flat[worst(m)])
    ma, mb = per_item[a].mean(0), per_item[b].mean(0)
    return float(0.5 * (mb.flat[worst(ma)] + ma.flat[worst(mb)]))


def crossfit_abs(per_item: np.ndarray, idx: np.ndarray) -> float:
    """crossfit_worst for the largest |change|: the cell and its sign are chosen on one half and the
    signed change read on the other, so noise around zero does not read as a shift."""
    a, b = idx[0::2], idx[1::2]
    if len(b) == 0:
        return float(np.abs(per_item[idx].mean(0)).max())
    ma, mb = per_item[a].mean(0), per_item[b].mean(0)
    ka, kb = np.argmax(np.abs(ma)), np.argmax(np.abs(mb))
    return float(0.5 * (np.sign(ma.flat[ka]) * mb.flat[ka] + np.sign(mb.flat[kb]) * ma.flat[kb]))
