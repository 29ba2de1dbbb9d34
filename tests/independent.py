"""Independent computations the metric tests compare against: written from the published formulas with numpy and
scipy, sharing no code with harness/metrics/stats.py (only its cap on the skew correction, a parameter of the
method)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from harness.metrics.stats import SKEW_STEP


def jackknife_t(stat, groups: list) -> tuple[float, tuple[float, float]]:
    """(theta, 95% interval) of stat(list of clusters): the delete-one-cluster jackknife (Efron & Stein), t with
    k-1 degrees of freedom, its quantiles corrected for the pseudovalues' skewness by Hall's (1992) cubic
    g(T) = T + a T^2 + a^2 T^3 / 3 + a / 2 with a = skew / (3 sqrt k) (capped: |a| q <= SKEW_STEP), solved here
    with numpy's polynomial roots."""
    k = len(groups)
    theta = float(stat(groups))
    left = np.array([stat(groups[:j] + groups[j + 1 :]) for j in range(k)], dtype=float)
    se = math.sqrt((k - 1) / k * ((left - left.mean()) ** 2).sum())
    q = float(stats.t.ppf(0.975, k - 1))
    pseudo = k * theta - (k - 1) * left
    c = pseudo - pseudo.mean()
    skew = (c**3).mean() / (c**2).mean() ** 1.5 if (c**2).mean() > 0 else 0.0
    a = float(np.clip(skew / (3 * math.sqrt(k)), -SKEW_STEP / q, SKEW_STEP / q))

    def solve(v):
        if abs(a) < 1e-12:
            return v - a / 2
        r = np.roots([a * a / 3, a, 1.0, a / 2 - v])
        return float(r[np.argmin(np.abs(r.imag))].real)

    return theta, (theta - solve(q) * se, theta - solve(-q) * se)
