"""Issue 12: decisions from intervals, cluster bootstrap, the noise floor, paired regression checks."""

import math

import numpy as np
import pytest

from harness.gates.decide import config_verdict, decide, evaluate_gate
from harness.gates.policy import Limit
from harness.metrics.stats import cluster_bootstrap, crossfit_abs, crossfit_worst, mcnemar_p, needed_n
from harness.metrics.views import GateView


def test_decision_uses_the_whole_interval():
    lim = Limit("max", 0.15)
    # bnb-int8 in the old smoke run: flip_rate 3/35 = 0.086, interval [0, 0.19]: not a pass
    g = evaluate_gate("bnb-int8", "flip_rate", lim, GateView(0.086, (0.0, 0.19), n=35))
    assert g["outcome"] == "inconclusive" and not g["passed"] and g["n"] == 35
    assert g["n_needed"] > 35 and f"about {g['n_needed']} items" in g["detail"]
    assert evaluate_gate("x", "flip_rate", lim, GateView(0.05, (0.01, 0.1), n=300))["outcome"] == "pass"
    assert evaluate_gate("x", "flip_rate", lim, GateView(0.3, (0.2, 0.4), n=300))["outcome"] == "fail"
    low = Limit("min", 0.93)
    assert decide(low, 0.95, (0.94, 0.96)) == "pass" and decide(low, 0.9, (0.85, 0.92)) == "fail"
    assert decide(low, 0.93, (0.92, 0.95)) == "inconclusive"
    assert (
        evaluate_gate("x", "ppl_ratio", Limit("max", 1.3), GateView(1.1, (1.0, 1.2), n=3), min_n=8)["outcome"]
        == "insufficient"
    )
    assert (
        config_verdict([{"outcome": "pass", "passed": True}, {"outcome": "inconclusive", "passed": False}])
        == "inconclusive"
    )
    assert (
        config_verdict([{"outcome": "fail", "passed": False}, {"outcome": "inconclusive", "passed": False}]) == "fail"
    )


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


def _cfg(flags):
    """A configuration's generations: 35 stable-correct prompts; flags[k] True = answered wrongly."""
    return {
        "generations": [
            {
                "id": f"fam{k % 5}-{k}",
                "stable_baseline": "right",
                "correct_quantized": not f,
                "degenerate": None,
                "degenerate_baseline": None,
            }
            for k, f in enumerate(flags)
        ]
    }


def test_paired_regression_five_more_flips_fail_and_a_rerun_passes():
    from harness.gates.policy import Tolerance
    from harness.gates.regression import RegressionCheck, paired_change

    earlier = _cfg([False] * 35)
    worse = _cfg([True] * 5 + [False] * 30)
    check = RegressionCheck("bnb-int8", "flip_rate", Tolerance(abs=0.03))
    p = paired_change("flip_rate", earlier, worse)
    assert p["significant"] and p["worse_items"] == 5 and p["better_items"] == 0
    assert not check.evaluate(0.0, 5 / 35, None, "r1", p)["passed"]
    same = paired_change("flip_rate", earlier, _cfg([False] * 35))
    assert check.evaluate(0.0, 0.0, None, "r1", same)["passed"]
    # five flipped one way and four the other: beyond tolerance as a rate change, but not systematic
    mixed_earlier = _cfg([False] * 5 + [True] * 4 + [False] * 26)
    mixed_now = _cfg([True] * 5 + [False] * 4 + [False] * 26)
    pm = paired_change("flip_rate", mixed_earlier, mixed_now)
    assert not pm["significant"] and check.evaluate(4 / 35, 5 / 35, None, "r1", pm)["passed"]


def test_paired_regression_on_sequences():
    from harness.gates.regression import paired_change

    rng = np.random.default_rng(4)

    def run(shift):
        return {
            "evidence": {
                "sequences": [
                    {"doc": k // 3, "nll_baseline": 2.0, "nll_quantized": 2.1 + shift + e, "kl_mean": 0.1, "top1": 0.9}
                    for k, e in enumerate(rng.normal(0, 0.01, 24))
                ]
            }
        }

    a = run(0.0)
    assert paired_change("loss_delta", a, run(0.05))["significant"]
    assert not paired_change("loss_delta", a, run(0.0))["significant"]


def _share(T, C, R):
    """Quantized share of (query, key) reads for a sequence of T tokens prefilled in chunks of C through
    a KIVI-style cache that keeps R tokens in full precision (worked out independently of the harness)."""
    q = r = 0
    quantized = total = 0
    for a in range(0, T, C):
        c = min(C, T - a)
        if a == 0:
            q, total = c, c * (c + 1) // 2  # the first chunk is stored quantized, read as it came
            continue
        quantized += c * q
        total += c * (q + r) + c * (c + 1) // 2
        if r + c >= R:
            q, r = q + r + c, 0
        else:
            r += c
    return quantized / total


def test_kv_configurations_record_how_much_attention_read_quantized_kv(tmp_path):
    """Issue 12 item 9: with the defaults (chunks of 16, residual 32) most reads of a 128-token
    sequence go through the quantized cache, and results say how many."""
    import harness.testing  # noqa: F401
    from harness.cli import run
    from harness.measure.passes import CHUNK
    from harness.methods.kv import RESIDUAL

    r = run(
        dict(
            model="tiny-llama",
            quant="kv-hqq-w4g16",
            n_sequences=2,
            seq_len=128,
            max_new_tokens=4,
            n_prompts=4,
            report_dir=str(tmp_path),
        ),
        progress=lambda m: None,
    )
    got = r["configs"][0]["info"]["kv_cache"]["corpus_quantized_read_share"]
    assert got == pytest.approx(_share(128, CHUNK, RESIDUAL), abs=1e-4) and got > 0.7
    assert _share(128, 32, 128) == pytest.approx(0.372, abs=1e-3)  # transformers' defaults: the first chunk only


def test_a_gate_without_a_computable_interval_is_undecided_not_judged_on_its_value():
    g = evaluate_gate("x", "flip_rate", Limit("max", 0.05), GateView(0.0, (math.nan, math.nan), n=40))
    assert g["outcome"] == "inconclusive" and "no interval" in g["detail"]
