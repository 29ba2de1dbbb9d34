"""engine/tasks.py without lm-eval installed: an lm-eval task is skipped with the install line (the task gates say
why), and under --signoff the configuration fails; the baseline's task results are computed once per run."""

import importlib.util
from types import SimpleNamespace

import pytest

from harness.data.tasksets import LMEVAL_INSTALL, LmEvalTask
from harness.engine import tasks as engine_tasks
from harness.errors import QuantsinkError

TASK = LmEvalTask("mine", "/x/mine.yaml", "0" * 64, "/x")


@pytest.fixture
def no_lm_eval(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lm_eval" else real(name, *a))


def _base(signoff: bool):
    lines = []
    base = SimpleNamespace(
        inputs=SimpleNamespace(tasks=(TASK,)), spec=SimpleNamespace(signoff=signoff), progress=lines.append
    )
    return base, lines


def test_lmeval_task_without_lm_eval_is_skipped_with_the_install_line(no_lm_eval):
    base, lines = _base(False)
    met, views, rows = engine_tasks.measure(base, participant=None)
    assert rows == [] and LMEVAL_INSTALL in lines[0] and "'mine'" in lines[0]
    assert met["task_scores"]["mine"]["skipped"] == lines[0]
    for name in ("task_break_rate", "task_acc_delta", "task_margin_delta"):
        assert LMEVAL_INSTALL in views[name].absent  # the gate is not_applicable, saying why


def test_lmeval_task_without_lm_eval_fails_the_configuration_under_signoff(no_lm_eval):
    base, _ = _base(True)
    with pytest.raises(QuantsinkError, match="pip install 'quantsink\\[lmeval\\]'.*--signoff"):
        engine_tasks.measure(base, participant=None)


def test_no_tasks_no_task_metrics():
    base = SimpleNamespace(inputs=SimpleNamespace(tasks=()), spec=SimpleNamespace(signoff=True))
    assert engine_tasks.measure(base, None) == ({}, {}, [])


def test_task_gates_apply_only_with_tasks():
    from harness.scenarios import active

    assert not active("task_break_rate", SimpleNamespace(tasks="none", scenarios="none"))
    assert active("task_break_rate", SimpleNamespace(tasks="basics", scenarios="none"))
    assert active("kld_mean", SimpleNamespace(tasks="none", scenarios="none"))


def test_nightly_and_signoff_run_the_bundled_task():
    from harness.config.settings import profile_values

    assert profile_values("smoke")["tasks"] == "none"
    assert profile_values("nightly")["tasks"] == profile_values("signoff")["tasks"] == "basics"


def test_baseline_side_is_computed_once_per_task_and_model(isolated_cache, monkeypatch):
    from contextlib import nullcontext

    from harness.data.tasksets import PlainTask, TaskItem

    calls = []
    monkeypatch.setattr(
        engine_tasks, "score", lambda t, *a, **k: calls.append(t.name) or {"samples": [], "metrics": {}}
    )
    task = PlainTask("p", "/x/p.jsonl", "1" * 64, (TaskItem("a-1", "a", "q", ("x", "y"), 0),))

    def base(sha="w"):
        spec = SimpleNamespace(revision=None, gen_batch_size=16, bos="auto", baseline_dtype="fp32", device="cpu")
        inputs = SimpleNamespace(tasks=(task,), source=SimpleNamespace(sha256=sha), prompts=SimpleNamespace(sha256="p"))
        phases = SimpleNamespace(time=lambda name: nullcontext())
        return SimpleNamespace(spec=spec, inputs=inputs, threads=1, progress=lambda m: None, phases=phases,
                               model=None, tokenizer=None)  # fmt: skip

    b = base()
    engine_tasks.baseline_side(b)
    engine_tasks.baseline_side(b)  # the same run: in memory
    engine_tasks.baseline_side(base())  # the next run: from the disk cache
    assert calls == ["p"]
    engine_tasks.baseline_side(base("other weights"))  # another model: scored again
    assert calls == ["p", "p"]
