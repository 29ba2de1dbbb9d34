"""Earlier runs: the index, pins, resolving `--compare` and checking that two runs are comparable."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .errors import UsageError
from .storage import append_line, read_lines

INDEX = "index.jsonl"
PINS = "pins.jsonl"


def read_index(report_dir: str | Path) -> list[dict]:
    """Index lines, oldest first; a truncated line is skipped with a warning."""
    return read_lines(Path(report_dir) / INDEX)


def _load(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"--compare {what}: {path} does not exist; pick a run from "
                         f"index.jsonl or use --compare none") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise UsageError(f"--compare {what}: {path} is not a valid results.json ({e})") from None
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith("quantsink.results/"):
        raise UsageError(f"--compare {what}: {path} is not a quantsink results.json")
    return data


def run_path(report_dir: str | Path, run_id: str) -> Path:
    from .results import check_run_id

    return Path(report_dir) / check_run_id(run_id) / "results.json"


def pinned_run_id(report_dir: str | Path, model: str | None = None) -> str | None:
    pins = [p for p in read_lines(Path(report_dir) / PINS) if model is None or p.get("model") == model]
    return pins[-1]["run_id"] if pins else None


def pin(report_dir: str | Path, run_id: str) -> dict:
    """Mark run_id as the approved sign-off baseline (`--compare pinned` uses the newest pin)."""
    path = run_path(report_dir, run_id)
    if not path.is_file():
        raise UsageError(f"--pin {run_id}: no such run in {report_dir} (see its index.jsonl)")
    res = _load(path, run_id)
    record = {"run_id": run_id, "model": res["model"]["id"], "verdict": res["verdict"],
              "pinned": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    append_line(Path(report_dir) / PINS, record)
    return record


def resolve(target: str, report_dir: str | Path, model: str, explicit: bool) -> tuple[dict | None, str]:
    """The earlier run's results for --compare (or None) and a line saying what was chosen.

    `latest` is the newest run of the same model in the index. A missing earlier run is an
    error when the user named it; when a profile asked for it (first nightly run, no pin yet)
    the run goes on without regression gates.
    """
    if target in (None, "", "none"):
        return None, "no comparison"
    if target == "latest":
        runs = [r for r in read_index(report_dir) if r.get("model") == model and Path(r.get("path", "")).is_file()]
        if not runs:
            if explicit:
                raise UsageError(f"--compare latest: no earlier run of {model} in {report_dir}; "
                                 f"run once without --compare first")
            return None, f"no earlier run of {model} in {report_dir}: no regression gates"
        return _load(Path(runs[-1]["path"]), target), f"comparing with latest run {runs[-1]['run_id']}"
    if target == "pinned":
        rid = pinned_run_id(report_dir, model)
        if rid is None:
            if explicit:
                raise UsageError(f"--compare pinned: no pinned run of {model} in {report_dir}; "
                                 f"approve one with --pin RUN_ID")
            return None, f"no pinned run of {model}: no regression gates"
        return _load(run_path(report_dir, rid), target), f"comparing with pinned run {rid}"
    p = Path(target)
    if p.suffix == ".json" or p.is_dir() or "/" in target:
        path = p / "results.json" if p.is_dir() else p
        return _load(path, target), f"comparing with {path}"
    return _load(run_path(report_dir, target), target), f"comparing with run {target}"


def identity(results: dict) -> dict:
    """What must match for two runs to be comparable (from a results.json)."""
    r, st = results, results.get("settings", {})
    return {"model": r["model"]["id"], "revision": r["model"]["revision"],
            "corpus sha256": r["corpus"]["sha256"],
            "corpus size": f"{st.get('n_sequences', r['corpus'].get('n_sequences'))} x "
                           f"{r['corpus'].get('seq_len')} tokens",
            "prompts sha256": r["prompts"]["sha256"], "prompts n": r["prompts"]["n"],
            "spec": ",".join(st.get("spec", [])),
            "harness major version": str(r.get("harness_version", "0")).split(".")[0]}


def spec_identity(spec, corpus, prompts) -> dict:
    """identity() of the run a RunSpec is about to make over these corpus and prompts."""
    from . import __version__

    return identity({"model": {"id": spec.model, "revision": spec.revision or "main"},
                     "corpus": {"sha256": corpus.sha256, "seq_len": spec.seq_len},
                     "prompts": {"sha256": prompts.sha256, "n": len(prompts.prompts)},
                     "settings": {"n_sequences": spec.n_sequences, "spec": [q.spec for q in spec.quant]},
                     "harness_version": __version__})


def check_comparable(current: dict, earlier: dict, earlier_id: str = "earlier run") -> None:
    """UsageError naming every field that differs between the two identities."""
    diffs = [f"{k} differs ({earlier.get(k)} in {earlier_id}, {current.get(k)} now)"
             for k in current if current.get(k) != earlier.get(k)]
    if diffs:
        raise UsageError("runs are not comparable: " + "; ".join(diffs)
                         + "; compare with a run of the same inputs or use --compare none")
