"""A run with --tasks on a tiny model: the three task gates, their intervals and per-sample evidence in results.json,
the worst samples in report.html; lm-eval tasks by name in --tasks-dir."""

import json

import pytest

pytestmark = pytest.mark.slow


def _subset(path, n_per_family=3, families=10):
    """A small plain task: the first items of the first families of the bundled task (keeps the tiny run short)."""
    from harness.data.tasksets import TASKS_DIR

    rows, seen = [], {}
    for line in (TASKS_DIR / "basics.jsonl").read_text().splitlines():
        d = json.loads(line)
        k = seen.setdefault(d["family"], 0)
        if k < n_per_family and (d["family"] in seen and len(seen) <= families):
            rows.append(d)
            seen[d["family"]] = k + 1
    path.write_text("".join(json.dumps(d) + "\n" for d in rows))
    return path


@pytest.fixture(scope="module")
def task_run(tmp_path_factory, tiny_run_in):
    d = tmp_path_factory.mktemp("tasks")
    run = tiny_run_in(d)
    task = _subset(d / "mini.jsonl")
    res = run(quant="rtn-w4g32", tasks=str(task), n_prompts=2, n_stability_prompts=1, max_new_tokens=2)
    return res, run


def test_three_task_gates_with_intervals_and_evidence(task_run):
    res, run = task_run
    c = res["configs"][0]
    gates = {g["metric"]: g for g in c["gates"]}
    for name in ("task_break_rate", "task_acc_delta", "task_margin_delta"):
        g = gates[name]
        assert g["outcome"] in ("pass", "fail", "inconclusive", "insufficient", "not_applicable"), g
    for name in ("task_acc_delta", "task_margin_delta"):
        g = gates[name]
        assert g["ci_low"] is not None and g["ci_low"] <= g["value"] + 1e-12 <= g["ci_high"] + 2e-12, g
    rows = c["evidence"]["tasks"]
    assert len(rows) == 30 and {r["task"] for r in rows} == {"mini"}
    assert all(len(r["ll_baseline"]) == len(r["ll_quantized"]) >= 2 for r in rows)
    scores = c["metrics"]["task_scores"]["mini"]
    assert scores["samples"] == 30 and set(scores["baseline"]) == {"acc", "acc_norm"}
    acc_b = sum(r["correct_baseline"] for r in rows) / 30
    assert scores["baseline"]["acc"] == pytest.approx(acc_b)
    assert res["tasks"]["tasks"][0]["name"] == "mini" and len(res["tasks"]["tasks"][0]["sha256"]) == 64
    html = (run.run_dir / "report.html").read_text()
    assert "Task samples" in html and "mini" in html


def test_task_phase_is_timed_and_named(task_run):
    res, run = task_run
    assert any("task mini" in line for line in run.lines)
    assert "task: mini" in res["configs"][0]["phases"]


def test_lmeval_task_by_name_in_tasks_dir(tiny_run, tmp_path):
    """--tasks NAME --tasks-dir DIR: lm-eval's own metrics per model, the task gates decided, per-sample evidence."""
    pytest.importorskip("lm_eval")
    from harness.data.tasksets import lmeval_yaml

    folder = tmp_path / "lmtasks"
    folder.mkdir()
    data = _subset(folder / "items.jsonl", n_per_family=2, families=8)
    (folder / "mine.yaml").write_text(lmeval_yaml("mine_lmeval", str(data)))
    res = tiny_run(quant="rtn-w4g32", tasks="mine_lmeval", tasks_dir=str(folder), n_prompts=2, n_stability_prompts=1)
    c = res["configs"][0]
    scores = c["metrics"]["task_scores"]["mine_lmeval"]
    assert scores["kind"] == "lmeval" and set(scores["baseline"]) == {"acc", "acc_norm"}
    assert {g["metric"] for g in c["gates"]} >= {"task_break_rate", "task_acc_delta", "task_margin_delta"}
    assert len(c["evidence"]["tasks"]) == 16 and res["tasks"]["tasks"][0]["kind"] == "lmeval"
    assert all(len(r["ll_baseline"]) >= 2 for r in c["evidence"]["tasks"])
