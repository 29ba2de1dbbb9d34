"""`history --prune KEEP`: remove old runs, never a pinned one nor the newest run of each set of comparable inputs.

Kept: the newest KEEP runs of the index, every pinned run, and for each model the newest run of every comparable
identity (what `--compare latest` would pick next for those inputs; an unreadable run is never the reason to keep or
drop another). The index is rewritten first, atomically and under the lock appends take, so no index line ever
names a missing directory; the removed run directories are then renamed aside and deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from harness.config.identity import check_run_id, comparable_identity, digest
from harness.errors import UsageError
from harness.history.runs import INDEX, PINS, run_path
from harness.system.files import atomic_write, file_lock, read_lines


def parse_keep(value: str) -> int:
    try:
        keep = int(value)
    except (TypeError, ValueError):
        keep = -1
    if keep < 0:
        raise UsageError(f"history --prune takes how many runs to keep, an integer >= 0 (got '{value}')")
    return keep


def _identity_key(root: Path, row: dict) -> str | None:
    try:
        res = json.loads(run_path(root, str(row.get("run_id"))).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, UsageError):
        return None
    return digest(comparable_identity(res)) if isinstance(res, dict) else None


def prune(report_dir: str | Path, keep: int) -> tuple[list[str], list[str]]:
    """(removed run ids, kept run ids) after keeping the newest `keep` runs, the pinned ones and the newest run of
    each model's comparable inputs."""
    root = Path(report_dir)
    index = root / INDEX
    if not index.is_file():
        raise UsageError(f"history --prune: {root} holds no runs (no index.jsonl); give the --report-dir of a run")
    pinned = {p.get("run_id") for p in read_lines(root / PINS)}
    with file_lock(index.with_name(INDEX + ".lock")):  # the lock append_line takes: no run's line is lost
        rows = read_lines(index)
        ids = [r.get("run_id") for r in rows]
        keep_ids = {i for i in ids[len(ids) - keep :] if keep} | (pinned & set(ids))
        seen: set = set()
        for r in reversed(rows):
            key = (r.get("model"), _identity_key(root, r))
            if key[1] is not None and key not in seen:
                seen.add(key)
                keep_ids.add(r.get("run_id"))
        kept = [r for r in rows if r.get("run_id") in keep_ids]
        removed = [r for r in rows if r.get("run_id") not in keep_ids]
        if removed:
            atomic_write(index, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
    trash = Path(tempfile.mkdtemp(prefix=".pruned.", dir=root)) if removed else None
    for r in removed:
        run_dir = root / check_run_id(str(r.get("run_id")))
        if run_dir.is_dir():
            os.replace(run_dir, trash / run_dir.name)
    if trash is not None:
        shutil.rmtree(trash)
    return [r.get("run_id") for r in removed], [r.get("run_id") for r in kept]
