"""Evidence to metrics: corpus_metrics, generation_metrics, behaviour_metrics and sink_recovery against values
worked out by hand on tiny inputs."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.measure.summary import ModelSummary, PairSummary
from harness.metrics.evidence import behaviour_metrics, corpus_metrics, generation_metrics, sink_recovery


def _pair():
    """N=2 sequences of T=3 tokens, L=1 layer, H=2 heads."""
    b, q = ModelSummary(), ModelSummary()
    b.nll = [np.array([1.0, 1.0]), np.array([2.0, 2.0])]  # loss 1.5
    q.nll = [np.array([1.5, 1.5]), np.array([2.0, 3.0])]  # loss 2.0
    b.sink_mass = [np.array([[0.5, 0.1]]), np.array([[0.5, 0.1]])]
    q.sink_mass = [np.array([[0.4, 0.5]]), np.array([[0.1, 0.3]])]  # mean [[0.25, 0.4]]
    for s in (b, q):
        s.entropy = [np.array([[1.0, 2.0]]), np.array([[1.0, 2.0]])]
        s.massive = [np.array([100.0]), np.array([300.0])]
        s.votes = [np.zeros(3), np.zeros(3)]
        s.ids = [np.array([1, 2, 3]), np.array([1, 4, 5])]
    q.entropy = [np.array([[1.5, 2.0]]), np.array([[0.5, 3.0]])]
    ps = PairSummary(base=b, quant=q)
    ps.kl = [np.array([0.1, 0.3, 9.0]), np.array([0.2, 0.4, 9.0])]  # the last position has no next token
    ps.top1 = [np.array([True, False, True]), np.array([True, True, False])]
    ps.js = [np.array([[0.01, 0.03]]), np.array([[0.03, 0.05]])]
    ps.hidden_cos = [np.array([0.9]), np.array([0.7])]
    ps.hidden_relerr = [np.array([0.1]), np.array([0.3])]
    ps.key_relerr = ps.value_relerr = ps.kv_relerr = [np.array([0.05]), np.array([0.15])]
    ps.logit_delta_max = 2.5
    return ps


def test_corpus_metrics_hand_worked():
    met, views = corpus_metrics(_pair())
    assert met["loss"] == 2.0 and met["loss_baseline"] == 1.5 and met["loss_delta"] == 0.5
    assert met["ppl_ratio"] == pytest.approx(math.exp(0.5))
    assert met["kld_mean"] == pytest.approx(0.25) and met["kld_median"] == pytest.approx(0.25)
    assert met["kld_max"] == pytest.approx(0.4)
    assert met["kld_p99"] == pytest.approx(0.3 + 0.97 * 0.1)  # linear interpolation between 0.3 and 0.4
    assert met["top1_agreement"] == 0.75
    assert met["sink_mass"] == [[pytest.approx(0.25), pytest.approx(0.4)]]
    assert met["sink_rate"] == 0.5 and met["sink_rate_08"] == 0.0  # 0.25 is not > 0.3; 0.4 is
    assert met["attn_js"] == [[pytest.approx(0.02), pytest.approx(0.04)]]
    assert met["sink_hidden_cos"] == [pytest.approx(0.8)] and met["massive_ratio"] == [200.0]
    assert met["attn_entropy_delta"] == [pytest.approx(0.25)]  # ((0.5 + 0) + (-0.5 + 1)) / 4
    assert met["logit_delta_max"] == 2.5
    assert views["sink_rate_delta"].value == 0.0  # baseline 0.5 (0.5 > 0.3, 0.1 not) vs 0.5
    # decided over every head: head 0 changes by -0.1 and -0.4 (mean -0.25, delete-one SE 0.15), head 1 by +0.3
    # and +0.2... +0.4 (mean 0.3, SE 0.1); with two items t(1) = 12.7 so head 0's bound (0.25 + 12.7 * 0.15) is
    # the one nearest harm: it binds, and the value read is its |mean change|
    assert views["sink_mass_shift"].value == pytest.approx(0.25)
    assert views["sink_mass_shift"].where.startswith("layer 0 head 0 (baseline 0.500, quantized 0.250)")
    # JS is positive: bounds on the log scale, where head 0's (0.01, 0.03) spreads three times wider than head 1's
    # (0.03, 0.05); with t(1) = 12.7 head 0's upper bound is the one nearest harm, so it binds
    assert views["attn_js"].value == pytest.approx(0.02) and views["attn_js"].where.startswith("layer 0 head 0")
    assert views["sink_hidden_cos"].value == pytest.approx(0.8) and views["sink_hidden_cos"].where == "layer 0"
    assert views["logit_delta_max"].ci is None
    lo, hi = views["ppl_ratio"].ci  # resampling two sequences: loss deltas 0.5 or 0.5 (each row's delta)
    assert lo <= met["ppl_ratio"] <= hi


def test_a_nonfinite_sink_map_gives_nan_rates_never_zero():
    ps = _pair()
    ps.quant.sink_mass[0] = np.array([[np.nan, 0.5]])
    met, views = corpus_metrics(ps)
    assert math.isnan(met["sink_rate"]) and math.isnan(met["sink_rate_08"])
    assert math.isnan(views["sink_rate_delta"].value)


def _gen(correct_b, correct_q, degen=None, degen_b=None, exact=False, div=0, ref="x", stable=None, pid="f-1"):
    return {
        "id": pid,
        "reference": ref,
        "correct_baseline": correct_b,
        "correct_quantized": correct_q,
        "degenerate": degen,
        "degenerate_baseline": degen_b,
        "exact": exact,
        "first_divergence": div,
        "stable_baseline": stable,
    }


def test_generation_metrics_hand_worked():
    gens = [
        _gen(True, False, div=2, stable="right", pid="a-1"),  # a flip
        _gen(True, True, exact=True, div=5, stable="right", pid="a-2"),
        _gen(False, False, degen="loop", div=0, stable="wrong", pid="b-1"),  # degenerates, baseline did not
        _gen(None, None, degen="empty", degen_b="empty", exact=True, div=4, ref=None, pid="c-1"),
    ]  # not counted
    met, views = generation_metrics(gens)
    assert met["flip_rate"] == 0.5  # 1 break of 2 stable-correct prompts
    assert (met["n_stable_correct"], met["flips"], met["unflips"]) == (2, 1, 0)
    # degeneration is counted over open prompts only (c-1: both degenerate, no net change)
    assert met["degenerate_rate"] == 0.0 and met["n_open_prompts"] == 1
    assert met["misgeneration_rate"] == 0.5  # a-1 and b-1 worse of 4
    assert met["exact_match_rate"] == 0.5 and met["mean_first_divergence"] == 2.75
    assert (met["n_prompts"], met["n_with_references"], met["n_baseline_correct"], met["n_quantized_correct"]) == (
        4,
        3,
        2,
        1,
    )
    # Clopper-Pearson for 1 of 2: lower = 1 - sqrt(0.975), upper = sqrt(0.975)
    assert views["flip_rate"].n == 2 and views["flip_rate"].counts == (1, 2)
    assert views["flip_rate"].ci == pytest.approx((1 - math.sqrt(0.975), math.sqrt(0.975)))
    # a stable-wrong prompt answered rightly does not offset a break: breaks are harm whatever else was fixed
    gens[2] = _gen(False, True, div=0, stable="wrong", pid="b-1")
    assert generation_metrics(gens)[0]["flip_rate"] == 0.5


def test_degeneration_is_net_of_what_the_baseline_degenerates_on():
    """A benign change moves which prompts loop: new loops offset by recovered ones are no net harm."""
    gens = [
        _gen(None, None, degen="loop", ref=None, pid="a-1"),  # new
        _gen(None, None, degen="loop", ref=None, pid="a-2"),  # new
        _gen(None, None, degen_b="loop", ref=None, pid="b-1"),  # recovered
        _gen(None, None, degen="empty", degen_b="loop", ref=None, pid="b-2"),  # both: neither
        _gen(True, False, degen_b="loop", stable="right", pid="c-1"),  # has a reference: not an open prompt
        _gen(None, None, ref=None, pid="c-2"),
    ]
    met, _ = generation_metrics(gens)
    assert (met["new_degenerate"], met["recovered_degenerate"], met["n_open_prompts"]) == (2, 1, 5)
    assert met["degenerate_rate"] == pytest.approx((2 - 1) / 5)  # net over the 5 open prompts
    assert met["misgeneration_rate"] == pytest.approx((3 - 1) / 6)  # a-1, a-2, c-1 worse; b-1 better
    assert met["degenerate_mcnemar_p"] == 0.5  # P(X >= 2), X ~ Bin(3, 1/2) = 4/8


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([None, "loop"]),
            st.sampled_from([None, "empty"]),
            st.sampled_from([None, True, False]),
            st.sampled_from([None, True, False]),
            st.sampled_from([None, "right", "wrong"]),
        ),
        min_size=1,
        max_size=30,
    )
)
def test_net_generation_rates_are_antisymmetric(rows):
    """Swapping the two models' roles negates the net degeneration over open prompts (an independent count)."""
    gens = [
        _gen(cb, cq, degen=dq, degen_b=db, stable=s, ref=None, pid=f"p-{i}")
        for i, (dq, db, cb, cq, s) in enumerate(rows)
    ]
    swapped = [
        _gen(cq, cb, degen=db, degen_b=dq, stable=s, ref=None, pid=f"p-{i}")
        for i, (dq, db, cb, cq, s) in enumerate(rows)
    ]
    a, b = generation_metrics(gens)[0], generation_metrics(swapped)[0]
    dq = np.array([r[0] is not None for r in rows])
    db = np.array([r[1] is not None for r in rows])
    assert a["degenerate_rate"] == pytest.approx((dq & ~db).mean() - (db & ~dq).mean())
    assert a["degenerate_rate"] == pytest.approx(-b["degenerate_rate"])
    assert -1 <= a["misgeneration_rate"] <= 1


def test_sink_recovery_hand_worked():
    r = sink_recovery(
        {"loss_delta": 0.4, "kld_mean": 0.2, "misgeneration_rate": 0.0},
        {"loss_delta": 0.1, "kld_mean": 0.3, "misgeneration_rate": 0.1},
    )
    assert r["loss_delta"] == pytest.approx(0.75)  # protection closed 3/4 of the loss gap
    assert r["kld_mean"] == pytest.approx(-0.5)  # protection made KL worse
    assert r["misgeneration_rate"] is None  # no gap to recover
    assert r["loss_delta_plain"] == 0.4 and r["loss_delta_protected"] == 0.1
    assert sink_recovery({"loss_delta": float("nan")}, {"loss_delta": 0.1})["loss_delta"] is None


class _P:
    def __init__(self, id, refs):
        self.id, self.references = id, tuple(refs)


def test_behaviour_metrics_hand_worked():
    ref = [_P("a", ["Paris"]), _P("b", ["4"])]
    gens = [
        {"id": "a", "correct_baseline": True, "correct_quantized": True},
        {"id": "b", "correct_baseline": True, "correct_quantized": True},
    ]
    var_base = [" Paris.", " Paris", " Paris!", " 4", " 4", " 4"]
    var_quant = [" Paris.", " Lyon", " Paris", " 4", " 4", " 4"]  # prompt a flips on one variant
    long = [
        {
            "id": "l",
            "prompt": "p",
            "baseline": "x",
            "quantized": "y",
            "degenerate": "loop",
            "degenerate_baseline": None,
            "first_divergence": 3,
            "exact": False,
            "correct_baseline": None,
            "correct_quantized": None,
            "reference": None,
            "quantized_ids": [1] * 10,
        }
    ]
    own = [(2.0, 2), (4.0, 2)]  # baseline's own continuations: mean nll 1.5
    qn = [(4.0, 2), (5.0, 2)]  # quantized continuations: mean nll 2.25
    spread_b, spread_q = np.array([0.1, 0.2, np.nan]), np.array([0.2, 0.4, 0.9])
    met, views = behaviour_metrics(ref, gens, var_base, var_quant, long, own, qn, spread_b, spread_q)
    assert met["stability_rate"] == 0.5 and met["stability_rate_baseline"] == 1.0
    assert met["gen_ppl_ratio"] == pytest.approx(np.exp(0.75))
    assert met["long_degenerate_rate"] == 1.0 and met["long_mean_first_divergence"] == 3
    assert met["perturbation_spread"] == pytest.approx(2.0)  # NaN row (no-op swap) left out
    lo, hi = views["stability_rate"].ci
    assert 0 <= lo <= 0.5 <= hi <= 1
