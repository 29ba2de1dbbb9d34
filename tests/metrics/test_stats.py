"""Statistics: items needed to decide, McNemar, the cluster bootstrap and its coverage, cross-fitted worst heads
and shifts, seeded intervals."""

import math

import numpy as np
import pytest

from harness.metrics import stats as S
from harness.metrics.stats import cluster_bootstrap, crossfit_abs, crossfit_worst, mcnemar_p, needed_n


def test_needed_n_scales_with_the_square_of_the_margin():
    assert needed_n(100, 0.10, (0.05, 0.15), 0.125) == 400  # half-width 0.05, margin 0.025
    assert needed_n(100, 0.10, (0.05, 0.15), 0.10) is None


def test_mcnemar_exact_hand_worked():
    assert mcnemar_p(5, 0) == pytest.approx(1 / 32)  # five flips, none back
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(3, 3) == pytest.approx(sum(math.comb(6, x) for x in range(3, 7)) / 64)


def test_cluster_bootstrap_resamples_documents_and_is_seeded():
    rng = np.random.default_rng(0)
    docs = np.repeat(np.arange(8), 6)  # 8 documents of 6 sequences; sequences within a document share a shift
    x = np.repeat(rng.normal(0, 1, 8), 6) + rng.normal(0, 0.1, 48)
    stat = lambda i: float(x[i].mean())  # noqa: E731
    by_doc = cluster_bootstrap(stat, docs, 2000, 3)
    by_item = cluster_bootstrap(stat, np.arange(48), 2000, 3)
    assert by_doc == cluster_bootstrap(stat, docs, 2000, 3)  # seeded
    assert by_doc[0] <= x.mean() <= by_doc[1]
    # treating the 48 correlated sequences as independent would make the interval far too narrow
    assert (by_doc[1] - by_doc[0]) > 2 * (by_item[1] - by_item[0])


def test_bca_interval_covers_a_known_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    hits = 0
    for k in range(200):
        x = rng.exponential(1.0, 40)  # skewed, true mean 1
        lo, hi = cluster_bootstrap(lambda i, x=x: float(x[i].mean()), np.arange(40), 1000, k)
        hits += lo <= 1.0 <= hi
    assert 0.88 <= hits / 200 <= 0.99


def test_worst_head_with_one_true_value_is_read_without_selection_bias():
    """270 heads that all have a true JS of 0.02: the plain maximum reads high, the cross-fit value
    and its interval contain the truth."""
    rng = np.random.default_rng(2)
    n, heads = 48, (30, 9)
    js = 0.02 + rng.normal(0, 0.02, (n,) + heads)
    plain = js.mean(0).max()
    assert plain > 0.025  # the naive worst-of-270 is biased upward
    idx = np.arange(n)
    value = crossfit_worst(js, idx)
    lo, hi = cluster_bootstrap(lambda i: crossfit_worst(js, i), idx, 2000, 0)
    assert abs(value - 0.02) < 0.004 and lo <= 0.02 <= hi
    # one head that really stands out is still found
    js[:, 3, 4] += 0.05
    assert abs(crossfit_worst(js, idx) - 0.07) < 0.005


def test_crossfit_shift_reads_zero_when_nothing_moved():
    rng = np.random.default_rng(3)
    d = rng.normal(0, 0.02, (40, 30, 9))  # sink-mass changes that are pure noise
    assert np.abs(d.mean(0)).max() > 0.008  # the plain largest |change| reads a shift
    assert abs(crossfit_abs(d, np.arange(40))) < 0.005
    d[:, 5, 2] += 0.1
    assert abs(crossfit_abs(d, np.arange(40)) - 0.1) < 0.01


def test_bootstrap_ci_contains_mean_and_is_seeded():
    x = np.random.default_rng(1).normal(size=200)
    lo, hi = S.bootstrap_ci(x, seed=3)
    assert lo < x.mean() < hi
    assert (lo, hi) == S.bootstrap_ci(x, seed=3)
    assert all(math.isnan(v) for v in S.bootstrap_ci([1.0, float("nan")]))
