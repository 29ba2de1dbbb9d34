"""Interruption, corruption, concurrency and path safety of what quantsink writes."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.system.files import append_line, cache_get, cache_put, read_lines

ROOT = Path(__file__).resolve().parents[2]


def test_corrupt_cache_entry_is_detected_reported_and_rebuilt(tmp_path):
    path = tmp_path / "entry.json"
    cache_put(path, {"texts": ["a"], "ids": [[1, 2]]})
    assert cache_get(path) == {"texts": ["a"], "ids": [[1, 2]]}
    rec = json.loads(path.read_text())
    rec["payload"]["texts"] = ["tampered"]
    path.write_text(json.dumps(rec))
    with pytest.warns(UserWarning, match="corrupt .*rebuilding"):
        assert cache_get(path) is None
    assert not path.exists()
    path.write_text('{"sha256": "x", "payl')  # truncated
    with pytest.warns(UserWarning, match="corrupt"):
        assert cache_get(path) is None


def test_truncated_index_line_is_skipped_with_a_warning(tmp_path):
    idx = tmp_path / "index.jsonl"
    append_line(idx, {"run_id": "a"})
    with open(idx, "a") as f:
        f.write('{"run_id": "b", "verd')  # a writer killed mid-line
    append_line(idx, {"run_id": "c"})  # starts on a fresh line
    with pytest.warns(UserWarning, match="index.jsonl:2: skipping a malformed"):
        assert [r["run_id"] for r in read_lines(idx)] == ["a", "c"]


_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from harness.system.files import append_line
    for i in range(int(sys.argv[3])):
        append_line(Path(sys.argv[1]), {"writer": sys.argv[2], "i": i, "pad": "x" * 2000})
""")


def test_two_processes_appending_lose_no_index_line(tmp_path):
    idx = tmp_path / "index.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(idx), w, "200"], cwd=ROOT) for w in "ab"]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    rows = read_lines(idx)
    assert len(rows) == 400
    assert sorted((r["writer"], r["i"]) for r in rows) == sorted((w, i) for w in "ab" for i in range(200))
