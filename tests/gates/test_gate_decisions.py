"""What a gate decides from its evidence (issue 22): harm gated as harm, no pass or hidden failure on thin
evidence, limits that point the metric's way, what would decide an undecided gate, drift from the anchor."""

import math

import numpy as np
import pytest

from harness.errors import UsageError
from harness.gates.decide import evaluate_gate
from harness.gates.policy import Limit, Tolerance, load_policy
from harness.gates.regression import RegressionCheck, paired_change
from harness.metrics.catalogue import BY_NAME
from harness.metrics.evidence import gate_view, generation_metrics
from harness.metrics.views import GateView


def _gens(right=0, wrong=0, broken=0, fixed=0) -> list[dict]:
    """Generation records: `right` stable-correct prompts (the first `broken` answered wrongly), `wrong`
    stable-wrong prompts (the first `fixed` answered rightly)."""
    out = []
    for k in range(right):
        out.append(
            {
                "id": f"a-{k}",
                "reference": "x",
                "correct_baseline": True,
                "stable_baseline": "right",
                "correct_quantized": k >= broken,
                "degenerate": None,
                "degenerate_baseline": None,
                "exact": False,
                "first_divergence": 0,
            }
        )
    for k in range(wrong):
        out.append(
            {
                "id": f"b-{k}",
                "reference": "x",
                "correct_baseline": False,
                "stable_baseline": "wrong",
                "correct_quantized": k < fixed,
                "degenerate": None,
                "degenerate_baseline": None,
                "exact": False,
                "first_divergence": 0,
            }
        )
    return out


def test_flip_rate_counts_breaks_and_never_subtracts_fixes():
    # 400 stable-correct, 200 stable-wrong: 40 broken (10%) and 30 fixed; the old net count read 0.025 and passed
    met, views = generation_metrics(_gens(400, 200, 40, 30))
    assert met["flip_rate"] == pytest.approx(0.10) and (met["flips"], met["unflips"]) == (40, 30)
    g = evaluate_gate("x", "flip_rate", Limit("max", 0.05), views["flip_rate"])
    assert g["outcome"] == "fail"
    assert "flip_mcnemar_p" not in met  # no prompt among stable-correct ones can flip to right


def test_a_break_rate_with_no_break_passes_only_with_enough_prompts():
    _, few = generation_metrics(_gens(60))  # 0 of 60: the exact bound is 0.06
    _, many = generation_metrics(_gens(90))  # 0 of 90: 0.040
    assert evaluate_gate("x", "flip_rate", Limit("max", 0.05), few["flip_rate"])["outcome"] == "inconclusive"
    assert evaluate_gate("x", "flip_rate", Limit("max", 0.05), many["flip_rate"])["outcome"] == "pass"


def test_nan_fails_whatever_the_count_and_few_clusters_never_hide_a_proven_failure():
    lim = Limit("min", 0.95)
    nan = evaluate_gate("x", "sink_hidden_cos", lim, GateView(math.nan, n=1, clusters=1))
    assert nan["outcome"] == "fail"
    # 3 documents (the minimum is 5), the interval wholly below the limit: proved, a failure
    proved = evaluate_gate("x", "sink_hidden_cos", lim, GateView(0.25, (0.2, 0.3), n=5, clusters=3))
    assert proved["outcome"] == "fail" and "proved despite 3 documents" in proved["detail"]
    # no interval, but each of 6 documents alone lies beyond the limit: the exact sign test proves it
    signs = evaluate_gate(
        "x",
        "ppl_ratio",
        Limit("max", 1.05),
        GateView(1.3, None, n=6, clusters=6, cluster_values=(1.2, 1.3, 1.4, 1.25, 1.3, 1.5)),
    )
    assert signs["outcome"] == "fail" and "sign test" in signs["detail"]
    short = evaluate_gate("x", "ppl_ratio", Limit("max", 1.05), GateView(1.01, (0.9, 1.2), n=4, clusters=3))
    assert short["outcome"] == "insufficient" and "3 documents (clusters), at least 5 needed" in short["detail"]


def test_task_gates_count_task_families_not_documents():
    few = evaluate_gate("x", "task_acc_delta", Limit("min", -0.02), GateView(0.0, (-0.1, 0.1), n=40, clusters=3))
    assert few["outcome"] == "insufficient" and "3 task families (clusters), at least" in few["detail"]
    wide = evaluate_gate("x", "task_acc_delta", Limit("min", -0.02), GateView(0.0, (-0.05, 0.05), n=200, clusters=8))
    assert wide["outcome"] == "inconclusive" and "task families (clusters) would decide it" in wide["detail"]
    assert "documents" not in few["detail"] + wide["detail"]


def test_a_text_corpus_of_one_document_is_insufficient_not_a_pass():
    m = BY_NAME["ppl_ratio"]
    ev = {"cluster": np.zeros(16, int), "nll_b": np.ones((16, 8)), "nll_q": np.full((16, 8), 1.04)}
    view = gate_view(m, ev, 16)
    assert view.clusters == 1 and view.ci is None
    assert evaluate_gate("x", "ppl_ratio", Limit("max", 1.05), view)["outcome"] == "insufficient"


@pytest.mark.parametrize(
    "table, words",
    [
        ("[limits.all]\nppl_ratio = { min = 1.02 }\n", "better when lower, so its limit is a max"),
        ("[limits.all]\nsink_hidden_cos = { max = 0.95 }\n", "its limit is a min"),
        ("[limits.all]\nkld_mean = { max = nan }\n", "not a finite number"),
        ("[limits.all]\nflip_rate = { max = -0.1 }\n", "lies outside what flip_rate can be"),
        ("[limits.all]\n", "has no limits: give a [limits.all] table"),
    ],
)
def test_policy_limits_point_the_metrics_way_and_are_finite(tmp_path, table, words):
    p = tmp_path / "p.toml"
    p.write_text(table)
    with pytest.raises(UsageError, match=None) as e:
        load_policy(p)
    assert words in str(e.value)


def test_a_configuration_without_limits_is_a_usage_error():
    p = load_policy()
    p.check_covers("rtn-w4g32", None)  # the bundled [limits.all] covers every class
    import harness.gates.policy as pol

    only8 = pol.Policy("p.toml", {"all": {}, "8": {"ppl_ratio": Limit("max", 1.05)}, "4": {}}, by_class=True)
    with pytest.raises(UsageError, match="sets no limit for rtn-w4g32"):
        only8.check_covers("rtn-w4g32", "4")


def test_an_undecided_gate_names_the_option_and_value_or_says_none_can():
    design = {"option": "--n-sequences", "value": 16, "max_units": 351, "unit": "documents", "more": "x"}
    view = GateView(1.03, (0.99, 1.07), n=16, clusters=7, design=design)
    g = evaluate_gate("x", "ppl_ratio", Limit("max", 1.05), view)
    assert g["outcome"] == "inconclusive" and g["decides"].startswith("about ")
    k = int(g["decides"].split()[1])
    assert k > 7 and g["decides"].endswith(f"--n-sequences {math.ceil(k * 16 / 7)}")
    capped = GateView(1.03, (0.99, 1.07), n=16, clusters=7, design={**design, "max_units": 7, "more": "too few"})
    assert (
        "no value of --n-sequences can: too few"
        in evaluate_gate("x", "ppl_ratio", Limit("max", 1.05), capped)["decides"]
    )
    rate = GateView(
        0.0,
        (0.0, 0.06),
        n=60,
        kind="break",
        counts=(0, 60),
        design={"option": "--n-prompts", "value": 96, "unit": "prompts"},
    )
    d = evaluate_gate("x", "flip_rate", Limit("max", 0.05), rate)["decides"]
    assert "about 72 prompts would decide it" in d  # the exact bound 1 - 0.025^(1/n) falls under 0.05 at n = 72


def test_an_undecided_negative_mean_over_prompts_names_the_prompts_that_decide_it():
    """answer_margin_delta is a mean over prompts (fixed strata: prompts are the units), not a binomial rate: an
    undecided negative value ended four of the default model's zoo configurations in 'math domain error' (a
    Clopper-Pearson interval of a negative count of events). Its count comes from the t interval over prompts:
    t(n'-1) * SE * sqrt(n / n') must clear the limit, worked here from the view's own interval."""
    design = {"option": "--n-prompts", "value": 16, "unit": "prompts"}
    view = GateView(-0.159, (-0.4163, 0.09831), n=15, design=design)
    g = evaluate_gate("x", "answer_margin_delta", Limit("min", -0.10), view)
    assert g["outcome"] in ("insufficient", "inconclusive"), g
    k = int(g["decides"].split("about ")[1].split()[0])
    from harness.metrics.dist import t_ppf

    d, margin, t15 = -0.159 - -0.4163, -0.10 - -0.159, t_ppf(0.975, 14)
    fits = [n for n in range(16, 5000) if t_ppf(0.975, n - 1) / t15 * d * math.sqrt(15 / n) < margin]
    assert k == max(fits[0], BY_NAME["answer_margin_delta"].min_n), (k, fits[0])
    assert g["decides"].endswith(f"--n-prompts {math.ceil(k * 16 / 15)}")


def test_an_exact_interval_refuses_counts_outside_its_trials():
    from harness.metrics.dist import clopper_pearson

    with pytest.raises(ValueError, match="events must lie in 0..n"):
        clopper_pearson(-2, 15)


def _runs(kl_now: np.ndarray, kl_before: np.ndarray, docs: np.ndarray):
    def cfg(kl):
        return {
            "evidence": {"sequences": [{"doc": int(d), "kl_mean": float(x)} for d, x in zip(docs, kl)]},
            "gate_views": {"kld_mean": {"value": float(kl.mean())}},
        }

    return cfg(kl_before), cfg(kl_now)


def test_slow_drift_passes_night_to_night_and_fails_against_the_pinned_anchor():
    """20 nights, each 0.0005 worse than the night before: every nightly check passes its 0.002 tolerance, and
    the check against the pinned first night fails once the drift passed it."""
    rng = np.random.default_rng(0)
    docs = np.arange(48)
    anchor = 0.02 * np.exp(rng.normal(0, 0.3, 48))
    tol = Tolerance(rel=0.10, abs=0.002)
    nights = [anchor + 0.0005 * k + rng.normal(0, 0.0001, 48) for k in range(21)]
    nightly = [
        RegressionCheck("c", "kld_mean", tol).evaluate(
            a.mean(), b.mean(), None, "night", paired_change("kld_mean", *_runs(b, a, docs))
        )
        for a, b in zip(nights, nights[1:])
    ]
    assert {r["outcome"] for r in nightly} == {"pass"}
    drift = RegressionCheck("c", "kld_mean", tol).evaluate(
        anchor.mean(), nights[-1].mean(), None, "anchor", paired_change("kld_mean", *_runs(nights[-1], anchor, docs))
    )
    assert drift["outcome"] == "fail" and drift["worse_by"] == pytest.approx(0.01, abs=0.001)


def test_a_regression_check_is_undecided_when_the_change_straddles_the_tolerance():
    rng = np.random.default_rng(1)
    docs = np.arange(10)
    before = np.full(10, 0.02)
    now = before + 0.002 + rng.normal(0, 0.002, 10)  # about at the 0.002 tolerance, noisy
    r = RegressionCheck("c", "kld_mean", Tolerance(abs=0.002)).evaluate(
        before.mean(), now.mean(), None, "e", paired_change("kld_mean", *_runs(now, before, docs))
    )
    assert r["outcome"] == "inconclusive" and not r["passed"]
