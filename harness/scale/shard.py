"""Shard and merge: one run's configurations measured by N independent processes, then joined.

    python -m harness shard --index I --count N [run options]   measure configurations I, I+N, I+2N...
    python -m harness merge PART_DIR... --report-dir DIR        check the parts, write the run

A part is one JSON file, written atomically once its share is measured (an interrupted shard leaves
nothing): REPORT_DIR/parts/<run key>/part-<I>-of-<N>.json. The run key hashes every input that
must be equal across the parts (weights, data, measuring settings, the full configuration list, the
policy, library versions); merge refuses parts of different runs, a part twice, a missing part or
a configuration measured twice or never, each as a one-line usage error.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from harness.config.build import build_spec
from harness.config.identity import digest, shard_run_key
from harness.engine.session import Session
from harness.errors import UsageError
from harness.history.runs import read_index
from harness.report.results import clean, write_run
from harness.scenarios import selected
from harness.system.files import atomic_write

PART_SCHEMA = "quantsink.part/1"


def share(specs: list, index: int, count: int) -> list:
    """The configurations shard `index` of `count` measures (round robin keeps method mixes balanced)."""
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"shard --index {index} --count {count}: the index must lie in 0..count-1 (count at least 1)")
    return specs[index::count]


def run_key(spec, inputs) -> str:
    """What every part of one run shares (config/identity.py shard_run_key), with the policy's content."""
    policy = Path(inputs.policy.path) if inputs.policy.path else None
    return shard_run_key(
        spec, inputs, hashlib.sha256(policy.read_bytes()).hexdigest() if policy and policy.is_file() else "bundled"
    )


def spec_values(spec) -> dict:
    """Option values that build the same RunSpec again (in another process: a shard, a Ray task)."""
    d = spec.to_dict()
    d["quant"] = ",".join(d["quant"])
    d["sink_positions"] = ",".join(map(str, d["sink_positions"]))
    for derived in ("compare_explicit", "unavailable"):
        d.pop(derived, None)
    if "streaming" not in selected(spec):  # their defaults, not the user's: given again they would be refused
        for k in ("stream_sinks", "stream_window", "stream_len"):
            d.pop(k, None)
    return {k: v for k, v in d.items() if v is not None}


def run_shard(values: dict, index: int, count: int, progress=None) -> Path:
    """Measure this shard's configurations and write its part; returns the part's path."""

    part = measure_share(values, index, count, progress)
    path = Path(build_spec(values).report_dir) / "parts" / part["run_key"] / f"part-{index}-of-{count}.json"
    atomic_write(path, json.dumps(part, indent=1))
    return path


def measure_share(values: dict, index: int, count: int, progress=None) -> dict:
    """Measure configurations index, index+count, ... of the run `values` describes: the part (a dict)."""

    spec = build_spec(values)
    mine = share(list(spec.quant), index, count)
    session = Session(spec, progress).prepare()  # every usage error of the whole run surfaces here
    key, every = run_key(spec, session.inputs), [q.spec for q in spec.quant]
    spec.quant = mine  # lockstep groups only this shard's configurations
    for q in mine:
        session.measure(q)
    part = {
        "schema": PART_SCHEMA,
        "run_key": key,
        "index": index,
        "count": count,
        "specs": every,
        "own": [q.spec for q in mine],
        "created": time.time(),
        "values": {k: v for k, v in values.items() if v is not None},
        "configs": [session.configs[q.spec].as_dict() for q in mine],
        "side": session.baseline_side() if mine else None,
    }

    return clean(part)


def find_parts(dirs: list[str]) -> list[Path]:
    found = []
    for d in dirs:
        p = Path(d)
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found += sorted(p.rglob("part-*-of-*.json"))
        else:
            raise UsageError(f"merge: no such part file or directory: {d}")
    if not found:
        raise UsageError(
            f"merge: no part files (part-I-of-N.json) under {', '.join(dirs)}; "
            f"run `python -m harness shard --index I --count N ...` first"
        )
    return found


def load_parts(paths: list[Path]) -> list[dict]:
    """The parts as read (merge_parts checks they make exactly one complete run)."""
    parts = []
    for p in paths:
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise UsageError(f"merge: cannot read part {p}: {type(e).__name__}") from None
        if d.get("schema") != PART_SCHEMA:
            raise UsageError(f"merge: {p} is not a quantsink part ({PART_SCHEMA})")
        d["_path"] = str(p)
        parts.append(d)
    return parts  # merge_parts checks them


def check_parts(parts: list[dict]) -> list[dict]:
    """Parts that make exactly one complete run, in index order; else a one-line UsageError."""
    keys = {d["run_key"] for d in parts}
    if len(keys) > 1:
        raise UsageError(
            "merge: the parts belong to different runs (other inputs, settings or configurations): "
            + "; ".join(f"{d.get('_path', 'a Ray task')} has run key {d['run_key']}" for d in parts)
        )
    counts = {d["count"] for d in parts}
    if len(counts) > 1:
        raise UsageError(f"merge: the parts were cut with different --count values: {sorted(counts)}")
    count, seen = counts.pop(), {}
    for d in parts:
        if d["index"] in seen:
            raise UsageError(
                f"merge: part {d['index']} of {count} given twice ({seen[d['index']]} and "
                f"{d.get('_path', 'a Ray task')})"
            )
        seen[d["index"]] = d.get("_path", "a Ray task")
    missing = sorted(set(range(count)) - set(seen))
    if missing:
        raise UsageError(
            f"merge: part(s) {', '.join(map(str, missing))} of {count} missing: run those shards or give their files"
        )
    measured = [c["spec"] for d in parts for c in d["configs"]]
    twice = sorted({s for s in measured if measured.count(s) > 1})
    never = [s for s in parts[0]["specs"] if s not in measured]
    if twice or never:
        raise UsageError(
            f"merge: configurations measured twice ({', '.join(twice) or 'none'}) or never "
            f"({', '.join(never) or 'none'})"
        )
    return sorted(parts, key=lambda d: d["index"])


def merge(dirs: list[str], report_dir: str | None, progress=None):
    """(results, run directory) of the run the parts make, gated and compared like a single run."""
    return merge_parts(load_parts(find_parts(dirs)), report_dir, progress)


def merge_parts(parts: list[dict], report_dir: str | None, progress=None):
    """(results, run directory) from checked parts."""

    parts = check_parts(parts)
    values = dict(parts[0]["values"])
    if report_dir:
        values["report_dir"] = report_dir
    merged_from = digest(sorted((d["run_key"], d["index"], d["created"]) for d in parts))
    done = next((r for r in read_index(build_spec(values).report_dir) if r.get("merged_from") == merged_from), None)
    if done is not None:
        raise UsageError(
            f"merge: these parts were merged before, into run {done['run_id']} ({done.get('path')}); "
            f"a run is merged once"
        )
    session = Session(build_spec(values), progress).prepare()  # the earlier run for --compare, the policy
    for d in parts:
        session.take_over({"configs": {c["spec"]: c for c in d["configs"]}, **(d["side"] or {})})
    for q in session.spec.quant:
        session.check_regressions(q)
    results = session.results()
    results["merged_from"] = merged_from  # the parts it was merged from (merging them again is refused)
    return results, write_run(results, session.spec.report_dir, session.spec.mlflow)
