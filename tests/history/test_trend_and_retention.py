"""history/trend.py and history/retention.py on hand-written report directories (no model): comparability marks,
prune's keep rules, its index rewrite and its usage errors."""

from __future__ import annotations

import json

import pytest

from harness.errors import UsageError
from harness.history.retention import parse_keep, prune
from harness.history.trend import History
from harness.system.files import append_line


def _run(root, run_id, corpus="c1", verdict="pass"):
    """A minimal results.json and its index line (what comparability and the listing read)."""
    res = {
        "schema": "quantsink.results/1",
        "run_id": run_id,
        "created": "2026-12-01T00:00:00Z",
        "verdict": verdict,
        "model": {"id": "m", "revision": "main"},
        "corpus": {"sha256": corpus},
        "settings": {"profile": "nightly", "seq_len": 32},
        "configs": [{"spec": "rtn-w8", "verdict": verdict, "gates": [], "gate_views": {}}],
    }
    (root / run_id).mkdir(parents=True)
    (root / run_id / "results.json").write_text(json.dumps(res))
    append_line(root / "index.jsonl", {"run_id": run_id, "model": "m", "path": str(root / run_id / "results.json")})


@pytest.fixture
def report_dir(tmp_path):
    root = tmp_path / "rep"
    _run(root, "r1", corpus="old")
    for i in range(2, 6):
        _run(root, f"r{i}")
    append_line(root / "pins.jsonl", {"run_id": "r2", "model": "m"})
    return root


def test_history_marks_pins_and_runs_with_other_inputs(report_dir):
    h = History(report_dir)
    assert [r.n for r in h.runs] == [1, 2, 3, 4, 5]
    assert [r.pinned for r in h.runs] == [False, True, False, False, False]
    assert [k for k, _, _ in h.runs[0].differs] == ["corpus sha256"] and not any(r.differs for r in h.runs[1:])
    assert [k for k, _, _ in h.runs[1].changed] == ["corpus sha256"]  # the break after run 1
    assert h.anchor() is h.runs[1]


def test_history_of_a_directory_without_runs_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="holds no runs"):
        History(tmp_path)


def test_prune_keeps_the_newest_pins_and_the_newest_of_each_input_set(report_dir):
    (report_dir / "r3" / "results.json").unlink()  # an unreadable run is removed like any other old run
    removed, kept = prune(report_dir, 1)
    assert kept == ["r1", "r2", "r5"] and removed == ["r3", "r4"]
    assert [json.loads(x)["run_id"] for x in (report_dir / "index.jsonl").read_text().splitlines()] == kept
    assert sorted(p.name for p in report_dir.iterdir() if p.is_dir()) == kept
    assert prune(report_dir, 1) == ([], kept)  # nothing more to remove


@pytest.mark.parametrize("bad", ["-1", "two", ""])
def test_prune_keep_must_be_a_count(bad):
    with pytest.raises(UsageError, match="integer >= 0"):
        parse_keep(bad)


def test_history_of_the_newest_runs_keeps_pins_and_positions(report_dir):
    h = History(report_dir, last=2)
    assert [(r.n, r.run_id) for r in h.runs] == [(2, "r2"), (4, "r4"), (5, "r5")] and h.left_out == 2
