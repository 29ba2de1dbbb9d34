"""Two --tasks on a tiny model through `pytest suites`: each task's own gates (`<metric>@<task>`) in results.json,
summary.md, report.html (escaped), the pytest items and the terminal block; the results cache re-gates them."""

import json

import pytest

from harness.plugin import gate_id

pytestmark = pytest.mark.slow

GATES = ("task_break_rate", "task_acc_delta", "task_margin_delta")
ODD = "words & [b] <i>"  # a task name awkward in a pytest id and in HTML


def _task(path, families, per):
    """A plain-format task: the first `per` items of these families of the bundled task."""
    from harness.data.tasksets import TASKS_DIR

    rows, seen = [], {}
    for line in (TASKS_DIR / "basics.jsonl").read_text().splitlines():
        d = json.loads(line)
        if d["family"] in families and seen.get(d["family"], 0) < per:
            rows.append(d)
            seen[d["family"]] = seen.get(d["family"], 0) + 1
    path.write_text("".join(json.dumps(d) + "\n" for d in rows))
    return path


def _results(report_dir):
    (run_dir,) = [d for d in report_dir.iterdir() if d.is_dir()]
    return json.loads((run_dir / "results.json").read_text()), run_dir


def test_two_tasks_have_their_own_gates_in_every_report_and_item(tiny_run, tmp_path, isolated_cache, monkeypatch):
    monkeypatch.setenv("QS_RESULTS_CACHE", "on")
    arith = _task(tmp_path / "arith.jsonl", ("addition", "subtraction", "larger", "smaller", "next_number"), 4)
    words = _task(tmp_path / f"{ODD}.jsonl", ("capitals", "colours", "plurals", "opposites", "units"), 3)
    run = dict(quant="rtn-w4g32", tasks=f"{arith},{words}", n_prompts=2, n_stability_prompts=1, max_new_tokens=2)
    out = tiny_run.pytest("-v", report_dir=str(tmp_path / "one"), **run)
    text = out.stdout.str()
    res, run_dir = _results(tmp_path / "one")
    c = res["configs"][0]
    names = [g["metric"] for g in c["gates"]]
    own = [f"{m}@{t}" for m in GATES for t in ("arith", ODD)]
    assert set(own) <= set(names) and set(own) <= set(c["gate_views"]), names
    for m in GATES:  # right after the pooled gate, in the order of --tasks
        i = names.index(m)
        assert names[i : i + 3] == [m, f"{m}@arith", f"{m}@{ODD}"]
    views = c["gate_views"]
    rows = c["evidence"]["tasks"]
    assert views[f"task_acc_delta@{ODD}"]["n"] == sum(r["task"] == ODD for r in rows) == 15
    assert views["task_acc_delta@arith"]["n"] == 20 and views["task_acc_delta"]["n"] == 35
    acc = sum(r["correct_quantized"] - r["correct_baseline"] for r in rows if r["task"] == "arith") / 20
    assert views["task_acc_delta@arith"]["value"] == pytest.approx(acc)

    # pytest: one item per gate, the per-task ones included, each with its gate's outcome
    status = {"pass": "PASSED", "fail": "FAILED"}
    for g in c["gates"]:
        item = f"test_gate[rtn-w4g32-{gate_id(g['metric'])}]"
        want = status.get(g["outcome"], "SKIPPED")
        assert any(item in line and want in line for line in text.splitlines()), (item, want)
    assert "test_gate[rtn-w4g32-task_acc_delta@words____b___i_]" in text  # the id keeps '@', not the brackets
    # the terminal block names every undecided per-task gate (the break rates rest on < 30 samples: insufficient)
    block = text[text.index("quantsink verdict") :]
    assert "task_break_rate@arith" in block and f"task_break_rate@{ODD}" in block
    summary = (run_dir / "summary.md").read_text()
    assert "task_break_rate@arith" in summary and "[b] <i>" not in summary
    html = (run_dir / "report.html").read_text()
    assert 'data-metric="task_acc_delta@arith"' in html
    assert 'data-metric="task_acc_delta@words &amp; [b] &lt;i&gt;"' in html and "[b] <i>" not in html

    # the results cache: the same measurement re-gated under another policy, the per-task gates too
    policy = tmp_path / "margin.toml"
    policy.write_text(
        "[limits.all]\ntask_break_rate = { max = 0.05 }\ntask_acc_delta = { min = -0.02 }\n"
        "task_margin_delta = { min = 0.5 }\n"
    )
    tiny_run.pytest(report_dir=str(tmp_path / "two"), policy=str(policy), **run)
    again, _ = _results(tmp_path / "two")
    c2 = again["configs"][0]
    assert c2["cache"]["run_id"] == res["run_id"]
    gates = {g["metric"]: g for g in c2["gates"]}
    assert list(gates) == [m for m in names if m.partition("@")[0] in GATES]
    for t in ("", "@arith", f"@{ODD}"):
        assert gates[f"task_margin_delta{t}"]["outcome"] == "fail"  # no margin grows by half a nat
        assert gates[f"task_margin_delta{t}"]["limit"] == 0.5
