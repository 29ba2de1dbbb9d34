"""Regression checks against an earlier run: direction, tolerance, and whether the change is systematic."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.gates.regression import RegressionCheck, Tolerance
from tests.independent import jackknife_t


def test_regression_direction_tolerance_and_significance():
    lower = RegressionCheck("rtn-w4", "kld_mean", Tolerance(rel=0.1))
    assert lower.evaluate(0.10, 0.105, None, "r1")["passed"]  # within 10%
    bad = lower.evaluate(0.10, 0.2, (0.15, 0.25), "r1")
    assert not bad["passed"] and "0.2 now vs 0.1 in r1" in bad["detail"] and "tolerance 0.1 relative" in bad["detail"]
    assert bad["outcome"] == "fail"
    # today's interval straddles the tolerance: undecided, neither a pass nor a regression
    straddle = lower.evaluate(0.10, 0.2, (0.05, 0.25), "r1")
    assert straddle["outcome"] == "inconclusive" and straddle["detail"].startswith("undecided: ")
    # the paired per-item change's interval decides when there is one: within tolerance however far the point moved
    paired = lower.evaluate(0.10, 0.2, (0.15, 0.25), "r1", {"ci": (-0.002, 0.008), "detail": "paired ..."})
    assert paired["outcome"] == "pass" and "paired ..." in paired["detail"]
    assert lower.evaluate(0.10, 0.01, None, "r1")["passed"]  # better
    higher = RegressionCheck("rtn-w4", "top1_agreement", Tolerance(abs=0.01))
    assert not higher.evaluate(0.9, 0.8, None, "r1")["passed"]
    assert higher.evaluate(0.8, 0.9, None, "r1")["passed"]
    assert not lower.evaluate(0.1, math.nan, None, "r1")["passed"]  # NaN never passes


@given(earlier=st.floats(0, 10), better=st.floats(0, 10), rel=st.floats(0, 1), ab=st.floats(0, 1))
def test_improvement_never_fails(earlier, better, rel, ab):
    tol = Tolerance(rel=rel, abs=ab)
    assert RegressionCheck("s", "kld_mean", tol).evaluate(earlier, earlier - better, None, "r")["passed"]
    assert RegressionCheck("s", "top1_agreement", tol).evaluate(earlier, earlier + better, None, "r")["passed"]


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
    worse = _cfg([True] * 10 + [False] * 25)
    check = RegressionCheck("bnb-int8", "flip_rate", Tolerance(abs=0.03))
    p = paired_change("flip_rate", earlier, worse)
    # ten more of 35 prompts break: change 0.286, jackknife t interval over prompts (independent numpy below)
    d = np.array([1.0] * 10 + [0.0] * 25)
    _, want = jackknife_t(lambda gs: np.mean([v for g in gs for v in g]), [[v] for v in d])
    assert p["change"] == np.float64(10 / 35) or abs(p["change"] - 10 / 35) < 1e-12
    assert p["ci"] == pytest.approx(want, abs=1e-9) and p["n"] == 35
    assert check.evaluate(0.0, 10 / 35, None, "r1", p)["outcome"] == "fail"
    same = paired_change("flip_rate", earlier, _cfg([False] * 35))
    assert check.evaluate(0.0, 0.0, None, "r1", same)["outcome"] == "pass"
    # five flipped one way and four the other: a net change of one prompt, its interval straddles the tolerance
    mixed_earlier = _cfg([False] * 5 + [True] * 4 + [False] * 26)
    mixed_now = _cfg([True] * 5 + [False] * 4 + [False] * 26)
    pm = paired_change("flip_rate", mixed_earlier, mixed_now)
    assert pm["ci"][0] < 0 < pm["ci"][1]
    assert check.evaluate(4 / 35, 5 / 35, None, "r1", pm)["outcome"] == "inconclusive"


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
    shifted = paired_change("loss_delta", a, run(0.05))
    assert shifted["ci"][0] > 0.03 and shifted["n"] == 24  # 8 documents of 3 sequences: a clear +0.05
    lo, hi = paired_change("loss_delta", a, run(0.0))["ci"]
    assert lo < 0 < hi
