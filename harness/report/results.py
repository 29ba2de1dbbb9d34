"""results.json (schema quantsink.results/1): build, sanitise, write atomically, index."""

from __future__ import annotations

import json
import math
import re
import time
import warnings
from pathlib import Path

from harness import __version__
from harness.config.identity import check_run_id, task_shas
from harness.errors import QuantsinkWarning
from harness.gates.decide import run_verdict
from harness.report.historypage import write_history
from harness.report.html import render as render_html
from harness.report.summary import summary_markdown
from harness.report.tracking import log_run
from harness.system.environment import environment
from harness.system.files import append_line, atomic_dir, atomic_write

SCHEMA = "quantsink.results/1"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def clean(obj):
    """JSON-safe copy: NaN/Inf become None (their gates already failed with a message)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return clean(obj.item())
    return obj


def build_results(rec) -> dict:
    """results.json (schema quantsink.results/1) from a records.RunRecord."""
    s, inp = rec.spec, rec.inputs
    configs = [c.as_dict() for c in rec.configs]
    verdict, reason = run_verdict(rec)
    return clean(
        {
            "schema": SCHEMA,
            "run_id": rec.run_id,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(rec.created)),
            "verdict": verdict,
            "verdict_reason": reason,
            "harness_version": __version__,
            "environment": environment(s.device, rec.threads),
            "model": {
                "id": s.model,
                "revision": s.revision or "main",
                "source": inp.source.to_dict(),
                "baseline_dtype": s.baseline_dtype,
                **rec.shape,
            },
            "corpus": {
                "name": inp.corpus.name,
                "sha256": inp.corpus.sha256,
                "n_sequences": rec.n_sequences,
                "seq_len": s.seq_len,
            },
            "prompts": {"name": inp.prompts.name, "sha256": inp.prompts.sha256, "n": len(inp.prompts.prompts)},
            "open_prompts": {
                "name": inp.open_prompts.name,
                "sha256": inp.open_prompts.sha256,
                "n": len(inp.open_prompts.prompts),
            },
            "tasks": {
                "identity": task_shas(getattr(inp, "tasks", ())) or "none",
                "tasks": [
                    {"name": t.name, "kind": t.kind, "path": t.path, "sha256": t.sha256}
                    for t in getattr(inp, "tasks", ())
                ],
            },
            "settings": {
                "profile": s.profile,
                "bos": s.bos,
                "bos_effective": rec.bos_effective,
                "sink_positions": list(s.sink_positions),
                "policy": inp.policy.path,
                "signoff": s.signoff,
                "seed": s.seed,
                "max_new_tokens": s.max_new_tokens,
                "long_new_tokens": s.long_new_tokens,
                "n_sequences": s.n_sequences,
                "seq_len": s.seq_len,
                "batch_size": s.batch_size,
                "baseline_dtype": s.baseline_dtype,
                "device": s.device,
                "gptq_samples": s.gptq_samples,
                "n_prompts": s.n_prompts,
                "lockstep": rec.lockstep,
                "reference": s.reference,
                "spec": [q.spec for q in s.quant],
                "notes": list(inp.notes),
            },
            "compare": {
                "target": s.compare,
                "run_id": (inp.earlier or {}).get("run_id"),
                "anchor_run_id": (inp.anchor or {}).get("run_id"),
                "note": inp.compare_note,
                "regressed": any(r.get("outcome") == "fail" for c in rec.configs for r in (c.regressions or [])),
            },
            "baseline": rec.baseline,
            "phases": rec.phases or {},
            "configs": configs,
        }
    )


def write_run(results: dict, report_dir: str | Path, mlflow: str | None = None) -> Path:
    """Write REPORT_DIR/<run_id>/ (results.json, summary.md) atomically, append the index line, rewrite
    REPORT_DIR/history.html and, with --mlflow, log the run to MLflow (a failure then warns: the run is written)."""

    root = Path(report_dir)
    run_dir = root / check_run_id(results["run_id"])
    t0 = time.perf_counter()
    summary, html = summary_markdown(results), render_html(results)
    results.setdefault("phases", {})["reports"] = round(time.perf_counter() - t0, 3)
    text = json.dumps(results, indent=1, sort_keys=False, allow_nan=False)
    with atomic_dir(run_dir) as tmp:
        atomic_write(tmp / "results.json", text)
        atomic_write(tmp / "summary.md", summary)
        atomic_write(tmp / "report.html", html)
    append_line(
        root / "index.jsonl",
        {
            "run_id": results["run_id"],
            "created": results["created"],
            "verdict": results["verdict"],
            "model": results["model"]["id"],
            "revision": results["model"]["revision"],
            "corpus_sha256": results["corpus"]["sha256"],
            "prompts_sha256": results["prompts"]["sha256"],
            "spec": results["settings"]["spec"],
            "profile": results["settings"]["profile"],
            "path": str(run_dir / "results.json"),
            **({"merged_from": results["merged_from"]} if results.get("merged_from") else {}),
        },
    )
    write_history(root)
    if mlflow:
        try:
            log_run(results, run_dir, mlflow, root)
        except Exception as e:  # the run is on disk and indexed: say what failed, keep the verdict
            warnings.warn(
                QuantsinkWarning(
                    f"--mlflow: logging run {results['run_id']} failed ({type(e).__name__}: {e}); "
                    f"it is written in {run_dir}"
                ),
                stacklevel=2,
            )
    return run_dir
