"""Earlier runs: the index, pins, resolving `--compare` and checking that two runs are comparable."""

from __future__ import annotations

import json
import time
from pathlib import Path

from harness.config.identity import (
    LIBRARIES,
    check_comparable,
    check_run_id,
    comparable_identity,
    differences,
)
from harness.errors import UsageError, did_you_mean
from harness.system.environment import package_version
from harness.system.files import append_line, read_lines

INDEX = "index.jsonl"
PINS = "pins.jsonl"


def read_index(report_dir: str | Path) -> list[dict]:
    """Index lines, oldest first; a truncated line is skipped with a warning."""
    return read_lines(Path(report_dir) / INDEX)


def _load(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"--compare {what}: {path} does not exist; pick a run from index.jsonl or use --compare none"
        ) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"--compare {what}: {path} is not a valid results.json ({e})") from None
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith("quantsink.results/"):
        raise UsageError(f"--compare {what}: {path} is not a quantsink results.json")
    return data


def run_path(report_dir: str | Path, run_id: str) -> Path:
    return Path(report_dir) / check_run_id(run_id) / "results.json"


def pinned_run_id(report_dir: str | Path, model: str | None = None) -> str | None:
    pins = [p for p in read_lines(Path(report_dir) / PINS) if model is None or p.get("model") == model]
    return pins[-1]["run_id"] if pins else None


def pin(report_dir: str | Path, run_id: str, anyway: bool = False) -> dict:
    """Mark run_id as the approved sign-off baseline (`--compare pinned` uses the newest pin).

    Only a run whose verdict is "pass" can be approved, unless `anyway` (--pin-anyway): the
    record then says so. `latest` pins the newest run in the index.
    """
    if run_id == "latest":
        rows = [r for r in read_index(report_dir) if r.get("run_id")]
        if not rows:
            raise UsageError(f"--pin latest: {report_dir} holds no run yet (its index.jsonl is empty or missing)")
        run_id = rows[-1]["run_id"]
    path = run_path(report_dir, run_id)
    if not path.is_file():
        raise UsageError(f"--pin {run_id}: no such run in {report_dir} (see its index.jsonl)")
    res = _load(path, run_id)
    verdict = res.get("verdict")
    if verdict != "pass" and not anyway:
        raise UsageError(
            f"--pin {run_id}: the run's verdict is {verdict}, not pass, so it cannot be the approved "
            f"sign-off baseline; pin a passing run, or add --pin-anyway to pin it regardless"
        )
    record = {
        "run_id": run_id,
        "model": res["model"]["id"],
        "verdict": verdict,
        "pinned": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if verdict != "pass":
        record["pinned_anyway"] = True  # approved with --pin-anyway despite its verdict
    append_line(Path(report_dir) / PINS, record)
    return record


def pin_line(rec: dict) -> str:
    """What `--pin` prints (pytest and python -m harness alike)."""
    anyway = ", pinned with --pin-anyway" if rec.get("pinned_anyway") else ""
    return (
        f"quantsink: pinned run {rec['run_id']} ({rec['model']}, verdict {rec['verdict']}{anyway}) as the "
        f"sign-off baseline for --compare pinned"
    )


def _try_load(path: Path, what: str) -> dict | None:
    try:
        return _load(path, what)
    except UsageError:
        return None


def _newest_comparable(candidates: list[tuple[str, Path]], current: dict | None, what: str):
    """(results, run id, what was skipped) of the newest candidate (run id, path) whose identity matches `current`,
    or (None, why the newest one was refused, what was skipped); skipped: {"other inputs": n, "unreadable": m}."""
    why, seen, skipped = "", set(), {"other inputs": 0, "unreadable": 0}
    for rid, path in reversed(candidates):
        if rid in seen:  # pinned twice: its newest pin counts
            continue
        seen.add(rid)
        res = _try_load(path, what)
        diffs = differences(current, comparable_identity(res)) if res is not None and current is not None else []
        if res is not None and not diffs:
            return res, rid, skipped
        skipped["other inputs" if res is not None else "unreadable"] += 1
        why = why or (
            f"the newest, {rid}, differs in {', '.join(k for k, _, _ in diffs)}"
            if res is not None
            else f"the newest, {rid}, is unreadable"
        )
    return None, why, skipped


def _skipped_text(skipped: dict, kind: str) -> str:
    """'2 newer run(s) with other inputs and 1 unreadable newer run(s)' ('' when none)."""
    parts = [
        f"{n} {kind}(s) with other inputs" if k == "other inputs" else f"{n} unreadable {kind}(s)"
        for k, n in skipped.items()
        if n
    ]
    return " and ".join(parts)


def resolve(
    target: str, report_dir: str | Path, model: str, explicit: bool, current: dict | None = None
) -> tuple[dict | None, str]:
    """The earlier run's results for --compare (or None) and a line saying what was chosen.

    `current` is spec_identity() of the run about to be made. `latest` is the newest *comparable* run
    of the same model in the index, `pinned` the newest comparable pin; when no run (or pin) of the
    model exists, that is an error if the user named --compare, else the run goes on without
    regression gates (first nightly run, no pin yet); when runs exist but none is comparable, the
    run goes on without regression gates. A RUN_ID or PATH that is not comparable is an error.
    """
    if target in (None, "", "none"):
        return None, "no comparison"
    if target in ("latest", "pinned"):
        if target == "latest":
            cands = [
                (r.get("run_id", "?"), Path(r["path"]))
                for r in read_index(report_dir)
                if r.get("model") == model and Path(r.get("path", "")).is_file()
            ]
            kind, fix = "earlier run", "run once without --compare first"
        else:
            cands = [
                (p["run_id"], run_path(report_dir, p["run_id"]))
                for p in read_lines(Path(report_dir) / PINS)
                if p.get("model") == model
            ]
            kind, fix = "pinned run", "approve one with --pin RUN_ID"
        if not cands:
            if explicit:
                raise UsageError(f"--compare {target}: no {kind} of {model} in {report_dir}; {fix}")
            return None, f"no {kind} of {model} in {report_dir}: no regression gates"
        res, rid, skipped = _newest_comparable(cands, current, target)
        if res is None:
            return None, f"no comparable {kind}: no regression gates ({_skipped_text(skipped, kind)} of {model}; {rid})"
        newer = (
            f", skipping {_skipped_text(skipped, 'newer ' + kind.removeprefix('earlier '))}"
            if any(skipped.values())
            else ""
        )
        return res, f"comparing with {'latest comparable' if target == 'latest' else 'pinned'} run {rid}{newer}"
    p = Path(target)
    if p.suffix == ".json" or p.is_dir() or "/" in target:
        path = p / "results.json" if p.is_dir() else p
        res, note = _load(path, target), f"comparing with {path}"
    else:
        path = run_path(report_dir, target)
        if not path.is_file():
            hint = did_you_mean(target, ["latest", "pinned", "none"]) or did_you_mean(
                target, [r.get("run_id", "") for r in read_index(report_dir)]
            )
            raise UsageError(
                f"--compare {target}: no run {target} in {report_dir}{hint}; valid: latest, pinned, "
                f"none, a run id from index.jsonl, or a path to a results.json"
            )
        res, note = _load(path, target), f"comparing with run {target}"
    if current is not None:
        check_comparable(current, comparable_identity(res), res.get("run_id", target))
    return res, note


def compare_details(earlier: dict, specs_now: list[str], libraries_now: dict | None = None) -> str:
    """What the compare note adds about an earlier run: configurations in only one of the two runs
    (they get no regression checks) and library versions that changed ('' when nothing)."""

    before = list((earlier.get("settings") or {}).get("spec") or [c.get("spec") for c in earlier.get("configs", [])])
    parts = []
    new = [s for s in specs_now if s not in before]
    gone = [s for s in before if s not in specs_now]
    if new:
        parts.append(f"not in the earlier run: {', '.join(new)}")
    if gone:
        parts.append(f"not measured now: {', '.join(gone)}")
    env = earlier.get("environment") or {}
    now = libraries_now if libraries_now is not None else {lib: package_version(lib) for lib in LIBRARIES}
    changed = [
        f"{lib} {env[lib] or 'absent'} -> {now.get(lib) or 'absent'}"
        for lib in LIBRARIES
        if lib in env and env[lib] != now.get(lib)
    ]
    if changed:
        parts.append(f"changed since the earlier run: {', '.join(changed)}")
    return "".join(f"; {x}" for x in parts)
