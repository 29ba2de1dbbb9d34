"""The task gates' values and intervals against an independent numpy / scipy computation on synthetic pairs."""

import numpy as np
import pytest

from harness.metrics.tasks import margin, task_metrics, worst
from tests.independent import jackknife_t

stats = pytest.importorskip("scipy.stats")


def _rows(seed=1, n_fam=8, per=12):
    rng = np.random.default_rng(seed)
    rows = []
    for f in range(n_fam):
        for k in range(per):
            b = rng.random() < 0.8
            q = b if rng.random() < 0.85 else not b
            mc = k % 4 != 3  # every fourth sample a generation sample (no margin)
            mb = float(rng.normal(1.0, 0.5)) if mc else None
            mq = mb + float(rng.normal(-0.1, 0.2)) if mc else None
            rows.append(
                {
                    "task": "t",
                    "id": f"f{f}-{k}",
                    "family": f"f{f}",
                    "correct_baseline": b,
                    "correct_quantized": q,
                    "margin_baseline": mb,
                    "margin_quantized": mq,
                }  # fmt: skip
            )
    return rows


_jackknife_t = jackknife_t


def test_break_rate_acc_delta_and_margin_delta_match_an_independent_computation():
    rows = _rows()
    met, views = task_metrics(rows)
    b = np.array([r["correct_baseline"] for r in rows])
    q = np.array([r["correct_quantized"] for r in rows])
    breaks, right = int((b & ~q).sum()), int(b.sum())
    v = views["task_break_rate"]
    assert v.value == pytest.approx(breaks / right) and v.counts == (breaks, right)
    ci = stats.binomtest(breaks, right).proportion_ci(0.95, method="exact")
    assert v.ci == pytest.approx((ci.low, ci.high), abs=1e-9)
    assert met["task_breaks"] == breaks and met["task_fixes"] == int((~b & q).sum()) and met["task_samples"] == 96

    fam = [r["family"] for r in rows]
    groups = [[r for r in rows if r["family"] == f] for f in sorted(set(fam))]

    def acc(gs):
        rs = [r for g in gs for r in g]
        return np.mean([r["correct_quantized"] for r in rs]) - np.mean([r["correct_baseline"] for r in rs])

    theta, ci = _jackknife_t(acc, groups)
    v = views["task_acc_delta"]
    assert v.value == pytest.approx(theta) and v.ci == pytest.approx(ci) and v.clusters == 8

    def mdelta(gs):
        d = [r["margin_quantized"] - r["margin_baseline"] for g in gs for r in g if r["margin_baseline"] is not None]
        return np.mean(d)

    theta, ci = _jackknife_t(mdelta, groups)
    v = views["task_margin_delta"]
    assert v.value == pytest.approx(theta) and v.ci == pytest.approx(ci)


def test_premises_and_no_rows():
    rows = [dict(r, correct_baseline=False, margin_baseline=None, margin_quantized=None) for r in _rows()]
    _, views = task_metrics(rows)
    assert views["task_break_rate"].absent and views["task_margin_delta"].absent
    _, views = task_metrics([], absent="lm-eval task 'x' skipped: pip install")
    assert all(v.absent == "lm-eval task 'x' skipped: pip install" and v.n == 0 for v in views.values())


def test_margin_and_worst_samples():
    assert margin([-1.0, -3.0, -2.0], 0) == pytest.approx(1.0)
    assert margin([-1.0, -3.0, -2.0], 1) == pytest.approx(-2.0)
    assert margin([-1.0], 0) is None and margin(None, 0) is None
    rows = _rows()
    w = worst(rows, 5)
    broken = [r for r in rows if r["correct_baseline"] and not r["correct_quantized"]]
    assert len(w) == 5 and all(r in broken for r in w[: min(5, len(broken))])


def test_two_tasks_pool_into_one_gate_naming_the_worst_task():
    a = _rows(seed=1)
    b = [dict(r, task="u", correct_quantized=False) for r in _rows(seed=2)]  # task u: every sample wrong
    _, views = task_metrics(a + b)
    w = views["task_break_rate"].where
    assert w.startswith("task u (1);") and "per task: t " in w
    assert views["task_acc_delta"].where.startswith("task u") and views["task_acc_delta"].clusters == 16
    _, one = task_metrics(a)
    assert one["task_break_rate"].where == ""
