"""Statistics on per-item evidence (numpy only): rates and bootstrap intervals."""
from __future__ import annotations

import numpy as np

N_BOOT = 300  # resamples per interval


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
