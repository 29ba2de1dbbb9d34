"""Earlier runs: the index, pins, resolving `--compare` and checking that two runs are comparable."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .errors import NotComparable, UsageError, did_you_mean
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


def pin(report_dir: str | Path, run_id: str, anyway: bool = False) -> dict:
    """Mark run_id as the approved sign-off baseline (`--compare pinned` uses the newest pin).

    Only a run whose verdict is "pass" can be approved, unless `anyway` (--pin-anyway): the
    record then says so.
    """
    path = run_path(report_dir, run_id)
    if not path.is_file():
        raise UsageError(f"--pin {run_id}: no such run in {report_dir} (see its index.jsonl)")
    res = _load(path, run_id)
    verdict = res.get("verdict")
    if verdict != "pass" and not anyway:
        raise UsageError(f"--pin {run_id}: the run's verdict is {verdict}, not pass, so it cannot be the approved "
                         f"sign-off baseline; pin a passing run, or add --pin-anyway to pin it regardless")
    record = {"run_id": run_id, "model": res["model"]["id"], "verdict": verdict,
              "pinned": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if verdict != "pass":
        record["pinned_anyway"] = True  # approved with --pin-anyway despite its verdict
    append_line(Path(report_dir) / PINS, record)
    return record


def _try_load(path: Path, what: str) -> dict | None:
    try:
        return _load(path, what)
    except UsageError:
        return None


def _newest_comparable(candidates: list[tuple[str, Path]], current: dict | None, what: str):
    """(results, run id, how many newer candidates were skipped) of the newest candidate (run id, path) whose
    identity matches `current`, or (None, why the newest one was refused, how many there were)."""
    why, seen = "", set()
    for rid, path in reversed(candidates):
        if rid in seen:  # pinned twice: its newest pin counts
            continue
        seen.add(rid)
        res = _try_load(path, what)
        diffs = differences(current, identity(res)) if res is not None and current is not None else []
        if res is not None and not diffs:
            return res, rid, len(seen) - 1
        why = why or (f"the newest, {rid}, differs in {', '.join(k for k, _, _ in diffs)}" if res is not None
                      else f"the newest, {rid}, is unreadable")
    return None, why, len(seen)


def resolve(target: str, report_dir: str | Path, model: str, explicit: bool,
            current: dict | None = None) -> tuple[dict | None, str]:
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
            cands = [(r.get("run_id", "?"), Path(r["path"])) for r in read_index(report_dir)
                     if r.get("model") == model and Path(r.get("path", "")).is_file()]
            kind, fix = "earlier run", "run once without --compare first"
        else:
            cands = [(p["run_id"], run_path(report_dir, p["run_id"])) for p in read_lines(Path(report_dir) / PINS)
                     if p.get("model") == model]
            kind, fix = "pinned run", "approve one with --pin RUN_ID"
        if not cands:
            if explicit:
                raise UsageError(f"--compare {target}: no {kind} of {model} in {report_dir}; {fix}")
            return None, f"no {kind} of {model} in {report_dir}: no regression gates"
        res, rid, skipped = _newest_comparable(cands, current, target)
        if res is None:
            return None, (f"no comparable {kind}: no regression gates ({skipped} {kind}(s) of {model} with other "
                          f"inputs; {rid})")
        newer = f", skipping {skipped} newer one(s) with other inputs" if skipped else ""
        return res, f"comparing with {'latest comparable' if target == 'latest' else 'pinned'} run {rid}{newer}"
    p = Path(target)
    if p.suffix == ".json" or p.is_dir() or "/" in target:
        path = p / "results.json" if p.is_dir() else p
        res, note = _load(path, target), f"comparing with {path}"
    else:
        path = run_path(report_dir, target)
        if not path.is_file():
            hint = did_you_mean(target, ["latest", "pinned", "none"]) or did_you_mean(
                target, [r.get("run_id", "") for r in read_index(report_dir)])
            raise UsageError(f"--compare {target}: no run {target} in {report_dir}{hint}; valid: latest, pinned, "
                             f"none, a run id from index.jsonl, or a path to a results.json")
        res, note = _load(path, target), f"comparing with run {target}"
    if current is not None:
        check_comparable(current, identity(res), res.get("run_id", target))
    return res, note


# What must match for two runs to be comparable: the data a metric is computed from. The list of
# configurations is not part of it (each configuration is compared with its own earlier measurement).
IDENTITY = ("model", "weights sha256", "revision", "corpus sha256", "prompts sha256", "bos", "sink positions",
            "seq_len", "n_sequences", "max_new_tokens", "long_new_tokens", "seed", "baseline dtype",
            "device type", "batch size", "harness major version")
LIBRARIES = ("torch", "transformers", "bitsandbytes", "gptqmodel")  # may differ; named in the compare note


def identity(results: dict) -> dict:
    """IDENTITY of a run from its results.json; None where the run did not record it (unknown)."""
    r = results
    st, model, corpus = r.get("settings") or {}, r.get("model") or {}, r.get("corpus") or {}
    device = st.get("device", (r.get("environment") or {}).get("device"))
    sinks = st.get("sink_positions")
    version = r.get("harness_version")
    return {"model": model.get("id"), "weights sha256": (model.get("source") or {}).get("sha256"),
            "revision": model.get("revision"), "corpus sha256": corpus.get("sha256"),
            "prompts sha256": (r.get("prompts") or {}).get("sha256"), "bos": st.get("bos"),
            "sink positions": None if sinks is None else ",".join(str(int(x)) for x in sinks),
            "seq_len": st.get("seq_len", corpus.get("seq_len")), "n_sequences": st.get("n_sequences"),
            "max_new_tokens": st.get("max_new_tokens"), "long_new_tokens": st.get("long_new_tokens"),
            "seed": st.get("seed"), "baseline dtype": st.get("baseline_dtype", model.get("baseline_dtype")),
            "device type": None if device is None else str(device).split(":")[0],
            "batch size": st.get("batch_size"),
            # JS from 16 sampled rows and KL from the top-256 tokens (--reference) are not lockstep's numbers
            "measured against": None if "reference" not in st else "a stored reference" if st["reference"]
            else "the baseline model",
            "harness major version": None if version is None else str(version).split(".")[0]}


def spec_identity(spec, corpus, prompts, source=None) -> dict:
    """identity() of the run a RunSpec is about to make over these corpus, prompts and model source."""
    from . import __version__

    return identity({"model": {"id": spec.model, "revision": spec.revision or "main",
                               "source": {"sha256": getattr(source, "sha256", None)}},
                     "corpus": {"sha256": corpus.sha256},
                     "prompts": {"sha256": prompts.sha256},
                     "settings": {"bos": spec.bos, "sink_positions": list(spec.sink_positions),
                                  "seq_len": spec.seq_len, "n_sequences": spec.n_sequences,
                                  "max_new_tokens": spec.max_new_tokens, "long_new_tokens": spec.long_new_tokens,
                                  "seed": spec.seed, "baseline_dtype": spec.baseline_dtype, "device": spec.device,
                                  "batch_size": spec.batch_size, "reference": spec.reference},
                     "harness_version": __version__})


def _short(v) -> str:
    """A value as a compare message shows it: a sha256 as its first 12 hex digits."""
    s = str(v)
    return s[:12] if len(s) == 64 and all(c in "0123456789abcdef" for c in s) else s


def differences(current: dict, earlier: dict) -> list[tuple[str, object, object]]:
    """(key, earlier value, current value) for every identity key that differs; unknown (None) on either
    side is not a difference (runs written before a key was recorded)."""
    return [(k, earlier.get(k), current.get(k)) for k in current
            if current.get(k) is not None and earlier.get(k) is not None and current.get(k) != earlier.get(k)]


def check_comparable(current: dict, earlier: dict, earlier_id: str = "earlier run") -> None:
    """NotComparable (a UsageError) with one clause per identity key that differs."""
    diffs = differences(current, earlier)
    if diffs:
        raise NotComparable(f"run {earlier_id} is not comparable: "
                            + "; ".join(f"{k} differs ({_short(e)} in {earlier_id}, {_short(n)} now)"
                                        for k, e, n in diffs)
                            + "; compare with a run of the same inputs or use --compare none")


def compare_details(earlier: dict, specs_now: list[str], libraries_now: dict | None = None) -> str:
    """What the compare note adds about an earlier run: configurations in only one of the two runs
    (they get no regression checks) and library versions that changed ('' when nothing)."""
    from .results import package_version

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
    changed = [f"{lib} {env[lib] or 'absent'} -> {now.get(lib) or 'absent'}" for lib in LIBRARIES
               if lib in env and env[lib] != now.get(lib)]
    if changed:
        parts.append(f"changed since the earlier run: {', '.join(changed)}")
    return "".join(f"; {x}" for x in parts)
