"""Distribution functions the intervals need, in pure Python (no scipy in the stack): Student t and beta."""

from __future__ import annotations

import math
from statistics import NormalDist

_N = NormalDist()


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (Lentz's method; Numerical Recipes 6.4)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < eps:
            break
    return h


def beta_cdf(x: float, a: float, b: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln) * _betacf(b, a, 1.0 - x) / b


def beta_ppf(p: float, a: float, b: float) -> float:
    """Inverse of beta_cdf by bisection (60 halvings: far below any figure we print)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        if beta_cdf(mid, a, b) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def t_cdf(x: float, df: float) -> float:
    """Student t distribution function."""
    if math.isinf(df):
        return _N.cdf(x)
    tail = 0.5 * beta_cdf(df / (df + x * x), df / 2.0, 0.5)
    return 1.0 - tail if x > 0 else tail


def t_ppf(p: float, df: float) -> float:
    """Student t quantile (bisection on t_cdf)."""
    if math.isinf(df) or df > 1e6:
        return _N.inv_cdf(p)
    if p == 0.5:
        return 0.0
    sign = 1.0 if p > 0.5 else -1.0
    q = p if p > 0.5 else 1.0 - p
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < q:
        hi *= 2.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < q:
            lo = mid
        else:
            hi = mid
    return sign * 0.5 * (lo + hi)


def clopper_pearson(x: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Exact binomial interval of x events in n trials (each side alpha/2)."""
    if n <= 0:
        return (math.nan, math.nan)
    if not 0 <= x <= n:
        raise ValueError(f"clopper_pearson: {x} events in {n} trials (events must lie in 0..n)")
    lo = 0.0 if x == 0 else beta_ppf(alpha / 2, x, n - x + 1)
    hi = 1.0 if x == n else beta_ppf(1 - alpha / 2, x + 1, n - x)
    return (lo, hi)


def tango(worse: int, better: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Score interval of a paired difference of proportions (Tango 1998): (worse - better) / n, where `worse`
    items changed for the worse and `better` for the better among n paired items (the rest unchanged).

    The interval holds the differences delta that the score test does not reject: the restricted maximum
    likelihood of the 'better' cell under delta is a root of a quadratic (Tango's equation 3). Unlike a
    resampling interval it stays honest with no discordant item at all: worse = better = 0 gives about
    [-3.8/n, 3.8/n], never [0, 0].
    """
    if n <= 0:
        return (math.nan, math.nan)
    z = _N.inv_cdf(1 - alpha / 2)
    b, c, m = worse, better, n - worse - better

    def score(delta: float) -> float:
        # restricted MLE x of P(better) under P(worse) - P(better) = delta: 2n x^2 - B x - c delta (1 - delta) = 0
        bq = (b + c) * (1 - delta) - 2 * delta * (c + m)
        disc = bq * bq + 8 * n * c * delta * (1 - delta)
        x = (bq + math.sqrt(max(disc, 0.0))) / (4 * n)
        x = min(max(x, max(0.0, -delta)), (1 - delta) / 2)
        var = (2 * x + delta - delta * delta) / n
        diff = (b - c) / n - delta
        if var <= 0:
            return math.copysign(math.inf, diff) if diff else 0.0
        return diff / math.sqrt(var)

    est = (b - c) / n

    def bound(lo: float, hi: float, upper: bool) -> float:
        # score(delta) decreases in delta; find where it crosses -z (upper bound) or +z (lower bound)
        target = -z if upper else z
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            if score(mid) > target:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    return (bound(-1.0, est, upper=False), bound(est, 1.0, upper=True))
