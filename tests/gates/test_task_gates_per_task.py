"""Each task's own gates (`<metric>@<task>`) with two or more --tasks: computed on that task's samples alone, gated
under the metric's limit right after the pooled gate, and absent with one task."""

import json

import numpy as np
import pytest

from harness.data.tasksets import TASKS_DIR, load_plain
from harness.engine.tasks import designs
from harness.gates.decide import evaluate_gate, gate_all, gated
from harness.gates.policy import Limit, load_policy
from harness.metrics.catalogue import family, metric_for
from harness.metrics.tasks import gate_names, task_metrics
from harness.metrics.views import GateView
from tests.independent import jackknife_t

stats = pytest.importorskip("scipy.stats")

GATES = ("task_break_rate", "task_acc_delta", "task_margin_delta")
ARITH = ("addition", "subtraction", "next_number", "larger", "smaller", "multiplication", "previous_number", "units")
WORDS = ("capitals", "colours", "plurals", "opposites", "categories", "languages", "animal_sounds", "past_tense")


def _task(tmp_path, name, families):
    """A plain-format task file of every bundled `basics` item of these families, loaded as --tasks loads it."""
    lines = [ln for ln in (TASKS_DIR / "basics.jsonl").read_text().splitlines() if json.loads(ln)["family"] in families]
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return load_plain(path, name)


def _rows(task, seed, damaged):
    """Paired rows (engine/tasks.pair_rows' fields) of a task: the baseline right on about 85% of the samples; the
    configuration the baseline's twin (margins within noise), or, damaged, wrong on half of them with its margins
    1 nat lower."""
    rng = np.random.default_rng(seed)
    rows = []
    for it in task.items:
        b = bool(rng.random() < 0.85)
        q = (b and rng.random() < 0.5) if damaged else b
        mb = float(rng.normal(1.0, 0.5))
        mq = mb - 1.0 + float(rng.normal(0, 0.1)) if damaged else mb + float(rng.normal(0, 0.01))
        rows.append(
            {
                "task": task.name,
                "id": it.id,
                "family": it.family,
                "correct_baseline": b,
                "correct_quantized": q,
                "margin_baseline": mb,
                "margin_quantized": mq,
            }  # fmt: skip
        )
    return rows


_jackknife_t = jackknife_t


def _expected(rows):
    """Each task gate's value and 95% interval over these rows, computed independently with numpy and scipy."""
    b = np.array([r["correct_baseline"] for r in rows])
    q = np.array([r["correct_quantized"] for r in rows])
    breaks, right = int((b & ~q).sum()), int(b.sum())
    ci = stats.binomtest(breaks, right).proportion_ci(0.95, method="exact")
    groups = [[r for r in rows if r["family"] == f] for f in dict.fromkeys(r["family"] for r in rows)]

    def acc(gs):
        rs = [r for g in gs for r in g]
        return np.mean([r["correct_quantized"] for r in rs]) - np.mean([r["correct_baseline"] for r in rs])

    def margin(gs):
        return np.mean([r["margin_quantized"] - r["margin_baseline"] for g in gs for r in g])

    return {
        "task_break_rate": (breaks / right, (ci.low, ci.high), right),
        "task_acc_delta": (*_jackknife_t(acc, groups), len(rows)),
        "task_margin_delta": (*_jackknife_t(margin, groups), len(rows)),
    }


@pytest.fixture
def two_tasks(tmp_path):
    arith, words = _task(tmp_path, "arith", ARITH), _task(tmp_path, "words & <b>", WORDS)
    rows_a, rows_w = _rows(arith, 1, damaged=False), _rows(words, 2, damaged=True)
    return rows_a, rows_w


def test_the_damaged_task_fails_its_own_gates_and_the_intact_one_does_not(two_tasks):
    rows_a, rows_w = two_tasks
    assert len(rows_a) > 100 and len(rows_w) > 100  # enough for the intact task's break rate to be decided
    met, views = task_metrics(rows_a + rows_w, designs)
    limits = load_policy(None).gates_for(None)
    gates = {
        g["metric"]: g
        for g in gate_all("rtn", {m: limits[m] for m in GATES}, {k: v.as_dict() for k, v in views.items()})
    }
    for m in GATES:
        assert gates[f"{m}@words & <b>"]["outcome"] == "fail", gates[f"{m}@words & <b>"]["detail"]
        assert gates[f"{m}@arith"]["outcome"] in ("pass", "inconclusive", "insufficient"), gates[f"{m}@arith"]
    assert gates["task_break_rate@arith"]["outcome"] == "pass"  # 0 breaks of > 72 baseline-right samples
    for task, rows in (("arith", rows_a), ("words & <b>", rows_w)):
        for m, (value, ci, n) in _expected(rows).items():
            v = views[f"{m}@{task}"]
            assert v.value == pytest.approx(value, abs=1e-12) and v.ci == pytest.approx(ci, abs=1e-9), (m, task)
            assert v.n == n and task in v.unit
            if m != "task_break_rate":
                assert v.clusters == len({r["family"] for r in rows}) == 8  # its own families, not all 16
    assert views["task_acc_delta"].clusters == 16 and met["task_samples"] == len(rows_a) + len(rows_w)
    # the per-task design says which task would need more samples
    assert views["task_acc_delta@arith"].design["value"] == len(rows_a)
    assert "task arith" in views["task_acc_delta@arith"].design["more"]


def test_per_task_gates_come_right_after_their_pooled_gate(two_tasks):
    rows_a, rows_w = two_tasks
    _, views = task_metrics(rows_a + rows_w)
    limits = {m: lim for m, lim in load_policy(None).gates_for(None).items() if m in GATES}
    names = [g["metric"] for g in gate_all("x", limits, {k: v.as_dict() for k, v in views.items()})]
    assert names == [
        "task_break_rate",
        "task_break_rate@arith",
        "task_break_rate@words & <b>",
        "task_acc_delta",
        "task_acc_delta@arith",
        "task_acc_delta@words & <b>",
        "task_margin_delta",
        "task_margin_delta@arith",
        "task_margin_delta@words & <b>",
    ]
    assert {m for m in views if "@" in m} == {m for m in names if "@" in m}  # no per-task view left ungated
    assert set(gate_names(["arith", "words & <b>"])) == {m for m in views if "@" in m}
    assert family("task_acc_delta@arith") == "task" and metric_for("task_acc_delta@a@b").name == "task_acc_delta"
    assert metric_for("nope@arith") is None


def test_one_task_has_no_per_task_gates(two_tasks):
    rows_a, _ = two_tasks
    _, views = task_metrics(rows_a, designs)
    assert set(views) == set(GATES)
    limits = {m: lim for m, lim in load_policy(None).gates_for(None).items() if m in GATES}
    gates = gate_all("x", limits, {k: v.as_dict() for k, v in views.items()})
    assert len(gates) == 3 and not any("@" in g["metric"] for g in gates) and gate_names(["arith"]) == []
    # the plain gate is that task's gate
    assert views["task_break_rate"].value == pytest.approx(_expected(rows_a)["task_break_rate"][0])


def test_a_skipped_task_among_two_has_not_applicable_gates_of_its_own(two_tasks):
    rows_a, _ = two_tasks
    why = "lm-eval task 'other' skipped: lm-eval is not installed"
    _, views = task_metrics(rows_a, designs, None, {"arith": None, "other": why})
    assert all(views[f"{m}@other"].absent == why for m in GATES)
    assert views["task_acc_delta@arith"].value == views["task_acc_delta"].value


@pytest.mark.parametrize("metric", GATES)
@pytest.mark.parametrize("bound", [-0.5, -0.02, 0.0, 0.02, 0.3])
def test_a_per_task_gate_decides_as_the_pooled_gate_on_the_same_view(two_tasks, metric, bound):
    rows_a, rows_w = two_tasks
    _, views = task_metrics(rows_a[:40] + rows_w[:60])  # small: some gates undecided or insufficient
    view = views[metric].as_dict()
    op = "max" if metric_for(metric).better == "lower" else "min"
    lim = Limit(op, abs(bound) if op == "max" else bound)
    pooled, own = gate_all("x", {metric: lim}, {metric: view, f"{metric}@t": view})
    assert own["metric"] == f"{metric}@t" and pooled["metric"] == metric
    for k in ("value", "limit", "op", "outcome", "passed", "n", "clusters", "decides", "ci_low", "ci_high"):
        assert own[k] == pooled[k], k
    assert own["detail"] == pooled["detail"].replace(f": {metric} ", f": {metric}@t ", 1).replace(
        f"fails {metric} ", f"fails {metric}@t ", 1
    )
    assert own == evaluate_gate("x", f"{metric}@t", lim, GateView.from_dict(view))


def test_gated_takes_only_views_of_a_limited_metric():
    lim = Limit("max", 0.05)
    views = {"task_break_rate": {}, "task_break_rate@a": {}, "task_acc_delta@a": {}, "task_break_rate_x": {}}
    assert gated({"task_break_rate": lim}, views) == [("task_break_rate", lim), ("task_break_rate@a", lim)]


def test_a_per_task_gate_is_checked_against_an_earlier_run_under_its_metrics_tolerance():
    from harness.gates.policy import Tolerance
    from harness.gates.regression import check_against

    earlier = {"gate_views": {"task_acc_delta@arith": {"value": 0.0}}}
    now = {"gate_views": {"task_acc_delta@arith": {"value": -0.05, "ci_low": -0.08, "ci_high": -0.02}}}
    r = check_against("x", "task_acc_delta@arith", Tolerance(abs=0.01), earlier, now, "run 1")
    assert r["outcome"] == "fail" and r["worse_by"] == pytest.approx(0.05)  # higher is better: a drop is worse
    assert r["metric"] == "task_acc_delta@arith" and "task_acc_delta@arith" in r["detail"]


def test_a_teams_rule_reads_a_per_task_gate_by_its_name():
    from harness.gates.records import ConfigResult
    from harness.plugin.view import ResultView

    views = {"task_acc_delta": {"value": -0.01}, "task_acc_delta@arith": {"value": -0.04}}
    gates = [{"metric": "task_acc_delta@arith", "outcome": "fail", "passed": False}]
    v = ResultView(ConfigResult("rtn-w8", "rtn", 8, None, "8", gates, metrics={}, gate_views=views))
    assert v["task_acc_delta@arith"] == -0.04 and "task_acc_delta@arith" in v
    assert v.view("task_acc_delta@arith") == {"value": -0.04}


def test_regression_items_include_each_tasks_own_gate_under_the_metrics_tolerance():
    from types import SimpleNamespace

    from harness.engine.regressions import RegressionChecks
    from harness.gates.policy import Tolerance

    earlier = {"spec": "rtn", "gate_views": {"kld_mean": {}, "task_acc_delta": {}, "task_acc_delta@arith": {}}}
    checks = RegressionChecks()
    checks.policy = SimpleNamespace(regression={"task_acc_delta": Tolerance(abs=0.01), "ppl_ratio": Tolerance(0.02)})
    checks._earlier_config = lambda q, against="earlier": earlier
    assert checks.regression_metrics(SimpleNamespace(spec="rtn")) == ["task_acc_delta", "task_acc_delta@arith"]
