"""The interval methods behind every gate (metrics/stats.py, metrics/dist.py), against independent computations."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.metrics.dist import beta_cdf, clopper_pearson, t_cdf, t_ppf, tango
from harness.metrics.stats import (
    cell_bounds,
    cluster_interval,
    jackknife,
    members,
    sign_test_beyond,
    t_bounds,
)
from tests.independent import jackknife_t


def test_t_and_beta_quantiles_match_published_tables():
    # Student t: 97.5% quantiles for 1, 6 and 45 degrees of freedom (any statistics table)
    assert t_ppf(0.975, 1) == pytest.approx(12.7062, abs=1e-4)
    assert t_ppf(0.975, 6) == pytest.approx(2.4469, abs=1e-4)
    assert t_ppf(0.975, 45) == pytest.approx(2.0141, abs=1e-4)
    assert t_cdf(2.4469, 6) == pytest.approx(0.975, abs=1e-5)
    assert beta_cdf(0.5, 2, 2) == pytest.approx(0.5)
    # Clopper-Pearson for 5 of 100 (R: binom.test(5, 100)$conf.int = 0.01643188 0.11283491)
    lo, hi = clopper_pearson(5, 100)
    assert lo == pytest.approx(0.01643188, abs=1e-7) and hi == pytest.approx(0.11283491, abs=1e-7)
    assert clopper_pearson(0, 72)[1] == pytest.approx(1 - 0.025 ** (1 / 72))  # zero events: the exact bound


def test_jackknife_se_of_a_mean_is_the_cluster_robust_textbook_formula():
    rng = np.random.default_rng(3)
    x = rng.normal(size=30)
    docs = np.repeat(np.arange(10), 3)
    theta, left, se, k = jackknife(lambda i: x[i].mean(), docs)
    # delete-one-cluster means by hand, then the jackknife variance (k-1)/k * sum (t_j - mean)^2
    by_hand = np.array([x[docs != d].mean() for d in range(10)])
    assert k == 10 and theta == pytest.approx(x.mean())
    assert se == pytest.approx(math.sqrt(9 / 10 * ((by_hand - by_hand.mean()) ** 2).sum()))
    _, lo, hi, _ = t_bounds(lambda i: x[i].mean(), docs, skew=False)
    assert (hi - lo) / 2 == pytest.approx(t_ppf(0.975, 9) * se)


def test_the_skew_corrected_interval_equals_halls_by_hand():
    # one item per cluster: the delete-one pseudovalues are the items themselves
    rng = np.random.default_rng(8)
    for x in (rng.lognormal(0, 0.8, 12), -rng.lognormal(0, 0.8, 30), rng.normal(size=20)):
        _, lo, hi, k = t_bounds(lambda i, x=x: x[i].mean(), np.arange(len(x)))
        _, want = jackknife_t(lambda gs: np.mean([v for g in gs for v in g]), [[v] for v in x])
        assert (lo, hi) == pytest.approx(want, rel=1e-9, abs=1e-12)
    # right-skewed values: the upper side widens, the lower side narrows (the false-pass side is the upper one)
    x = rng.lognormal(0, 0.8, 12)
    _, lo, hi, _ = t_bounds(lambda i: x[i].mean(), np.arange(12))
    _, plo, phi, _ = t_bounds(lambda i: x[i].mean(), np.arange(12), skew=False)
    assert hi > phi and lo > plo
    # one cluster far out among seven (skewness about sqrt(7)): the bound moves at most about a sixth of the t
    # half-width (SKEW_STEP), not several-fold
    x = np.array([1.0, 1.1, 0.9, 1.0, 1.05, 0.95, 30.0])
    _, lo, hi, _ = t_bounds(lambda i: x[i].mean(), np.arange(7))
    _, plo, phi, _ = t_bounds(lambda i: x[i].mean(), np.arange(7), skew=False)
    half = (phi - plo) / 2
    assert 0.1 * half < hi - phi < 0.2 * half and 0 < lo - plo < 0.2 * half


def test_the_skew_correction_brings_the_false_pass_side_back_to_its_level():
    # Lognormal clusters as measured on the default model (KL per document CV 0.3, per sequence 0.35; 48
    # sequences in 46 documents: nightly), the truth at the limit: a pass means the upper bound fell below the
    # truth. Plain t on the log scale: about 3.6-4.2% of draws (nominal 2.5%); corrected: about 2.3%.
    rng = np.random.default_rng(0)
    truth, draws = 0.05, 1500
    s_doc, s_seq = math.sqrt(math.log1p(0.3**2)), math.sqrt(math.log1p(0.35**2))
    plain = corrected = 0
    for _ in range(draws):
        docs = np.sort(np.concatenate([np.arange(46), rng.integers(0, 46, 2)]))
        eff = truth * rng.lognormal(-(s_doc**2) / 2, s_doc, 46)[docs]
        kl = eff * rng.lognormal(-(s_seq**2) / 2, s_seq, 48)
        for skew in (False, True):
            _, _, hi, _ = t_bounds(lambda i, kl=kl: kl[i].mean(), docs, positive=True, shift=0.005, skew=skew)
            if hi < truth:
                corrected += skew
                plain += not skew
    assert plain / draws > 0.032
    assert corrected / draws <= 0.028


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.001, 1000.0), min_size=3, max_size=40), st.booleans())
def test_skew_corrected_bounds_always_hold_the_estimate(values, positive):
    x = np.array(values)
    theta, lo, hi, _ = t_bounds(lambda i: x[i].mean(), np.arange(len(x)), positive=positive)
    assert lo <= theta * (1 + 1e-9) + 1e-12 and theta <= hi * (1 + 1e-9) + 1e-12


def test_a_positive_statistic_gets_a_log_scale_interval_and_a_zero_falls_back_to_linear():
    x = np.array([0.1, 0.2, 0.15, 0.4, 0.12, 0.3, 0.25, 0.18])
    lo, hi = cluster_interval(lambda i: x[i].mean(), np.arange(8), positive=True)
    m = x.mean()
    assert lo > 0 and lo < m < hi and (hi - m) > (m - lo)  # skewed to the right, never below zero
    z = np.array([0.0, 0.0, 0.0, 0.1])
    lo, hi = cluster_interval(lambda i: z[i].mean(), np.arange(4), positive=True)
    assert lo < 0 < hi  # a delete-one mean of 0 cannot be logged: the linear interval


def test_one_cluster_has_no_interval():
    assert all(math.isnan(v) for v in cluster_interval(lambda i: 1.0, np.zeros(5)))
    assert [list(m) for m in members([3, 1, 3])] == [[1], [0, 2]]  # clusters in sorted id order


def test_tango_interval_is_honest_without_discordant_items():
    lo, hi = tango(0, 0, 192)
    assert lo == pytest.approx(-hi) and 0.019 < hi < 0.0201  # about 3.84 / (n + 3.84)
    lo, hi = tango(10, 2, 100)
    assert lo < 0.08 < hi and lo > 0  # 8 more worse than better of 100: the difference is real
    assert tango(2, 10, 100) == pytest.approx(tuple(-v for v in reversed(tango(10, 2, 100))))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 40), st.integers(0, 40), st.integers(0, 60))
def test_tango_contains_its_estimate_and_stays_in_range(worse, better, same):
    n = worse + better + same
    if n == 0:
        return
    lo, hi = tango(worse, better, n)
    est = (worse - better) / n
    assert -1 - 1e-9 <= lo <= est + 1e-9 and est - 1e-9 <= hi <= 1 + 1e-9


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 50), st.integers(1, 80))
def test_clopper_pearson_contains_the_observed_rate(x, extra):
    n = x + extra
    lo, hi = clopper_pearson(x, n)
    assert 0 <= lo <= x / n <= hi <= 1


def _heads(rng, levels, n_seq=48, n_docs=46, cv=0.3):
    docs = np.sort(np.concatenate([np.arange(n_docs), rng.integers(0, n_docs, n_seq - n_docs)]))
    eff = levels[None, :] * rng.lognormal(-(cv**2) / 2, cv, (n_docs, levels.size))
    return (eff[docs] * rng.lognormal(-(cv**2) / 2, cv, (n_seq, levels.size))).reshape(n_seq, 30, 9), docs


def test_one_damaged_head_fails_however_many_healthy_heads_surround_it():
    rng = np.random.default_rng(0)
    levels = np.full(270, 0.01)
    levels[131] = 0.08  # one head four times over the 0.02 limit
    js, docs = _heads(rng, levels)
    cb = cell_bounds(js, docs, "max", positive=True)
    assert cb.ci[0] > 0.02  # its simultaneous lower bound is beyond the limit: the gate fails
    assert cb.where == (14, 5) and cb.value == pytest.approx(js[:, 14, 5].mean())  # the value is that cell's


def test_worst_cell_pass_needs_every_cell_within_the_limit():
    rng = np.random.default_rng(1)
    all_at_limit, docs = _heads(rng, np.full(270, 0.02))
    cb = cell_bounds(all_at_limit, docs, "max", positive=True)
    assert cb.ci[1] > 0.02  # some head's upper bound is above: never a pass with every head at the limit
    benign, docs = _heads(rng, np.full(270, 0.005))
    assert cell_bounds(benign, docs, "max", positive=True).ci[1] < 0.02


def test_worst_cell_for_a_minimum_and_for_an_absolute_change():
    rng = np.random.default_rng(2)
    docs = np.repeat(np.arange(12), 2)
    cos = 0.999 - rng.uniform(0, 0.001, (24, 30))
    cos[:, 7] = 0.5 + rng.normal(0, 0.02, 24)  # layer 7's sink state is destroyed
    cb = cell_bounds(cos, docs, "min")
    assert cb.where == (7,) and cb.ci[1] < 0.95  # its simultaneous upper bound is below the 0.95 limit
    shift = rng.normal(0, 0.001, (24, 30, 9))
    shift[:, 3, 2] -= 0.2  # one head's sink mass drops by 0.2
    cb = cell_bounds(shift, docs, "abs")
    assert cb.where == (3, 2) and cb.value == pytest.approx(0.2, abs=0.01) and cb.ci[0] > 0.03


def test_a_non_finite_cell_makes_the_value_non_finite():
    x = np.ones((10, 4)) * 0.01
    x[3, 2] = np.nan
    cb = cell_bounds(x, np.arange(10), "max")
    assert math.isnan(cb.value) and cb.where == (2,)


def test_sign_test_over_clusters_is_exact():
    assert sign_test_beyond([0.3, 0.4, 0.2, 0.5, 0.3, 0.25], 0.95, bad_above=False) == pytest.approx(0.5**6)
    assert sign_test_beyond([0.3, 0.99], 0.95, bad_above=False) == 1.0  # one cluster on the good side


def test_a_tiny_head_that_moves_in_one_document_does_not_block_a_benign_pass():
    # Seen on the default model at smoke (7 documents): bnb-int8's attn_js read 0.0002 with an upper bound of 37
    # (JS cannot exceed ln 2 = 0.69) because one head moved in one document only and the plain log scale
    # turned that into a delete-one spread of several orders of magnitude. With the shifted log scale of the
    # catalogue's attn_js the bound stays near the linear jackknife's, far below the 0.02 limit.
    from harness.metrics.catalogue import BY_NAME

    rng = np.random.default_rng(3)
    docs = np.repeat(np.arange(7), [3, 2, 2, 3, 2, 2, 2])
    js = rng.uniform(1e-4, 3e-4, (16, 30, 9))  # every head benign, about 0.0002
    js[:, 18, 8] = 1e-9
    js[docs == 4, 18, 8] = 2e-3  # one head moved in one document
    m = BY_NAME["attn_js"]
    plain = cell_bounds(js, docs, "max", positive=True)
    assert plain.ci[1] > 0.02  # the unshifted log scale: undecidable
    cb = cell_bounds(js, docs, "max", positive=True, shift=m.log_shift)
    assert cb.ci[1] < 0.004
    # the linear jackknife of that head (an independent computation): theta + t(6) * SE
    x = np.array([js[docs == d, 18, 8].mean() for d in range(7)])
    seq = js[:, 18, 8]
    left = np.array([seq[docs != d].mean() for d in range(7)])
    se = np.sqrt(6 / 7 * ((left - left.mean()) ** 2).sum())
    linear_hi = seq.mean() + 2.4469 * se
    assert x.max() > 100 * np.median(x)
    assert cb.ci[1] == pytest.approx(linear_hi, rel=0.5)  # nearly linear below the shift


def test_the_shift_keeps_the_log_scale_near_the_limit():
    # At the limit (0.02, ten times attn_js's shift) the shifted bound is within a few percent of the log scale's.
    from harness.metrics.catalogue import BY_NAME

    rng = np.random.default_rng(4)
    docs = np.repeat(np.arange(12), 4)
    js = rng.lognormal(np.log(0.02), 0.6, (48, 1))
    plain = cell_bounds(js, docs, "max", positive=True)
    shifted = cell_bounds(js, docs, "max", positive=True, shift=BY_NAME["attn_js"].log_shift)
    assert shifted.ci[1] == pytest.approx(plain.ci[1], rel=0.05)
    assert shifted.ci[1] < plain.ci[1]
