"""results.json (schema quantsink.results/1): build, sanitise, write atomically, index."""
from __future__ import annotations

import hashlib
import json
import math
import platform
import re
import time
from importlib import metadata
from pathlib import Path

from . import __version__
from .errors import UsageError
from .storage import append_line, atomic_dir, atomic_write

SCHEMA = "quantsink.results/1"
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def environment(session) -> dict:
    return {"python": platform.python_version(), "torch": _version("torch"),
            "transformers": _version("transformers"), "bitsandbytes": _version("bitsandbytes"),
            "gptqmodel": _version("gptqmodel"), "device": session.spec.device,
            "threads": getattr(session, "threads", None), "platform": platform.platform()}


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


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id) or ".." in run_id:
        raise UsageError(f"invalid run id '{run_id}': letters, digits, '.', '_' and '-' only")
    return run_id


def build_results(session) -> dict:
    s = session.spec
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(session.created))
    configs = [session.configs[q.spec] for q in s.quant if q.spec in session.configs]
    regressed = any(not r["passed"] for c in configs for r in c.get("regressions", []))
    failed = regressed or any(c["verdict"] == "fail" for c in configs)
    skipped = any(c["verdict"] == "skipped" for c in configs)
    missing = len(configs) < len(s.quant)
    verdict = "fail" if failed or (s.signoff and (skipped or missing)) else "pass"
    ran = any(c["verdict"] != "skipped" for c in configs)
    base = session.baseline if "baseline" in session.__dict__ or ran else None
    model_cfg = session.baseline_model.config if "baseline_model" in session.__dict__ else None
    digest = hashlib.sha256(f"{created}{s.model}{[q.spec for q in s.quant]}{id(session)}".encode()).hexdigest()[:8]
    run_id = getattr(session, "run_id", None) or f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(session.created))}-{digest}"
    session.run_id = run_id
    n_seq = len(session.sequences) if "sequences" in session.__dict__ else getattr(session, "n_sequences_seen", 0)
    from .tokens import effective_bos

    return clean({
        "schema": SCHEMA, "run_id": run_id, "created": created, "verdict": verdict,
        "harness_version": __version__, "environment": environment(session),
        "model": {"id": s.model, "revision": s.revision or "main", "source": session.source.to_dict(),
                  "baseline_dtype": s.baseline_dtype,
                  "num_layers": getattr(model_cfg, "num_hidden_layers", None) or getattr(model_cfg, "n_layer", None)
                  or (getattr(session, "model_shape", None) or {}).get("num_layers"),
                  "num_heads": getattr(model_cfg, "num_attention_heads", None) or getattr(model_cfg, "n_head", None)
                  or (getattr(session, "model_shape", None) or {}).get("num_heads")},
        "corpus": {"name": session.corpus.name, "sha256": session.corpus.sha256, "n_sequences": n_seq,
                   "seq_len": s.seq_len},
        "prompts": {"name": session.prompts.name, "sha256": session.prompts.sha256,
                    "n": len(session.prompts.prompts)},
        "settings": {"profile": s.profile, "bos": s.bos,
                     "bos_effective": effective_bos(session.tokenizer, s.bos) if n_seq else None,
                     "sink_positions": list(s.sink_positions), "policy": session.policy.path,
                     "signoff": s.signoff, "seed": s.seed, "max_new_tokens": s.max_new_tokens,
                     "n_sequences": s.n_sequences, "n_prompts": s.n_prompts,
                     "lockstep": session.__dict__.get("lockstep"),
                     "spec": [q.spec for q in s.quant]},
        "compare": {"target": s.compare, "run_id": (getattr(session, "earlier", None) or {}).get("run_id"),
                    "note": getattr(session, "compare_note", None), "regressed": regressed},
        "baseline": base,
        "configs": configs,
    })


def write_run(results: dict, report_dir: str | Path) -> Path:
    """Write REPORT_DIR/<run_id>/ (results.json, summary.md) atomically, then append the index line."""
    from .html_report import render as render_html
    from .report import summary_markdown

    root = Path(report_dir)
    run_dir = root / check_run_id(results["run_id"])
    text = json.dumps(results, indent=1, sort_keys=False, allow_nan=False)
    with atomic_dir(run_dir) as tmp:
        atomic_write(tmp / "results.json", text)
        atomic_write(tmp / "summary.md", summary_markdown(results))
        atomic_write(tmp / "report.html", render_html(results))
    append_line(root / "index.jsonl", {
        "run_id": results["run_id"], "created": results["created"], "verdict": results["verdict"],
        "model": results["model"]["id"], "revision": results["model"]["revision"],
        "corpus_sha256": results["corpus"]["sha256"], "prompts_sha256": results["prompts"]["sha256"],
        "spec": results["settings"]["spec"], "profile": results["settings"]["profile"],
        "path": str(run_dir / "results.json")})
    return run_dir
