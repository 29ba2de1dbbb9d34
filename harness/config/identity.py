"""Run identity, declared once: what makes two measurements the same, and the keys built from it.

Every key of a shared artefact reads this module: the results cache (a configuration measured before), the
baseline's cached generations, the stored baseline reference, a shard's run key and `--compare`'s
comparability. Which settings enter a key comes from each setting's role in the settings table
(config/settings.py), so a new setting cannot silently escape it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import time
from pathlib import Path

from harness import __version__
from harness.config.settings import SETTINGS
from harness.errors import NotComparable, UsageError
from harness.methods.registry import get_method
from harness.system.devices import default_threads
from harness.system.environment import installed_versions

DIGEST_CHARS = 32  # every key below is a sha256 cut to this many hex digits
BASELINE_SETTINGS = tuple(s.name for s in SETTINGS if s.role == "baseline")  # shape the baseline's side
MEASURING_SETTINGS = tuple(s.name for s in SETTINGS if s.role in ("baseline", "measuring"))
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def digest(blob) -> str:
    """The key of a JSON-able description (sorted keys; values that JSON lacks as their str)."""
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:DIGEST_CHARS]


def threads_of(spec) -> int:
    """The torch thread count the run will use (float reductions can depend on it)."""
    env = os.environ.get("OMP_NUM_THREADS")
    return spec.threads or (int(env) if env else default_threads())


def inputs_identity(spec, inputs, names=MEASURING_SETTINGS, threads: bool = True) -> dict:
    """The weights, data and the named settings of a run (threads: the thread count too)."""
    d = spec.to_dict()
    settings = {k: d.get(k) for k in names if k != "threads"}
    if threads:  # the count the run will use, resolved (float reductions depend on it)
        settings["threads"] = threads_of(spec)
    return {
        "weights": inputs.source.sha256 or str(inputs.source.local_dir),
        "corpus": inputs.corpus.sha256,
        "prompts": inputs.prompts.sha256,
        "settings": settings,
        **({"tasks": task_shas(inputs.tasks)} if getattr(inputs, "tasks", None) else {}),
    }


def task_shas(tasks) -> str:
    """The tasks of a run as one text: name=sha256 of each (the content of every task file enters identity)."""
    return ",".join(f"{t.name}={t.sha256}" for t in tasks)


# ---- keys of shared artefacts ----
RESULTS_FORMAT = 1  # bump when the results cache's stored layout changes


@functools.lru_cache(maxsize=1)
def code_sha() -> str:
    """sha256 of the harness package's own source (every .py and bundled data file under harness/, not the gate
    policy: gates are decided again under today's policy): a stored measurement made by other code is not today's
    measurement, whatever the version number says."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    files = (p for p in root.rglob("*") if p.is_file() and p.suffix in (".py", ".jsonl", ".txt"))
    for f in sorted(files):
        h.update(str(f.relative_to(root)).encode() + b"\x00" + f.read_bytes() + b"\x00")
    return h.hexdigest()


def method_packages(q) -> list[str]:
    """The packages a configuration's method runs on (their versions enter its keys) and the module defining it."""
    m = get_method(q.method)
    return [*m.packages, m.origin]


def measurement_key(spec, inputs, q) -> str | None:
    """The results-cache key of q's measurement in this run, or None when q cannot be cached (a Hub checkpoint
    whose content is not on disk to hash)."""
    ident = q.cache_identity()
    if ident is None:
        return None
    return digest(
        {
            "format": RESULTS_FORMAT,
            "inputs": inputs_identity(spec, inputs),
            "config": ident,
            "versions": installed_versions(method_packages(q)),
            "code": code_sha(),
        }
    )


def baseline_side_key(spec, inputs) -> str:
    """The results-cache key of the baseline's side of results.json."""
    return digest(
        {
            "format": RESULTS_FORMAT,
            "inputs": inputs_identity(spec, inputs),
            "versions": installed_versions(),
            "code": code_sha(),
        }
    )


def reference_identity(spec, inputs, **layout) -> dict:
    """What a stored baseline reference depends on: the baseline's settings and the reference's layout."""
    return {**layout, **inputs_identity(spec, inputs, BASELINE_SETTINGS), "versions": installed_versions()}


def generation_key(
    spec, inputs, threads: int | None, tag: str, texts: list[str], new_tokens: int, min_new: int = 0
) -> str:
    """The key of the baseline's greedy continuations of `texts` (the corpus does not enter it)."""
    return digest(
        {
            "model": inputs.source.sha256 or str(inputs.source.local_dir),
            "revision": spec.revision,
            "prompts": inputs.prompts.sha256,
            "texts": hashlib.sha256("\x00".join(texts).encode()).hexdigest(),
            "new": new_tokens,
            "min_new": min_new,
            "batch": spec.gen_batch_size,
            "bos": spec.bos,
            "dtype": spec.baseline_dtype,
            "device": spec.device,
            "threads": threads,
            "tag": tag,
            "versions": installed_versions(),
        }
    )


def shard_run_key(spec, inputs, policy_sha: str) -> str:
    """What every part of one sharded run shares: inputs, measuring settings, configurations, policy, versions.
    Shards may run on nodes with other core counts and on different GPUs of one kind."""
    ident = inputs_identity(spec, inputs, threads=False)
    ident["settings"]["device"] = str(ident["settings"]["device"]).split(":")[0]
    packages = sorted({p for q in spec.quant for p in method_packages(q)})
    return digest(
        {
            "inputs": ident,
            "versions": installed_versions(packages),
            "specs": [q.spec for q in spec.quant],
            "policy": policy_sha,
            "bit_class": spec.bit_class,
            "signoff": spec.signoff,
        }
    )


# ---- run ids ----
def new_run_id(created: float, model: str, specs: list[str]) -> str:
    """`<UTC timestamp>-<8 hex>`: unique per session (the hash includes a random salt)."""
    salt = os.urandom(8).hex()
    tag = hashlib.sha256(f"{created}{model}{specs}{salt}".encode()).hexdigest()[:8]
    return f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(created))}-{tag}"


def check_run_id(run_id: str) -> str:
    if not _RUN_ID.match(run_id) or ".." in run_id:
        raise UsageError(f"invalid run id '{run_id}': letters, digits, '.', '_' and '-' only")
    return run_id


# ---- comparability (--compare) ----
# What must match for two runs to be comparable: the data a metric is computed from. The list of
# configurations is not part of it (each configuration is compared with its own earlier measurement).
COMPARED = (
    "model",
    "weights sha256",
    "revision",
    "corpus sha256",
    "prompts sha256",
    "tasks",
    "bos",
    "sink positions",
    "seq_len",
    "n_sequences",
    "max_new_tokens",
    "long_new_tokens",
    "seed",
    "baseline dtype",
    "device type",
    "batch size",
    "measured against",
    "harness major version",
)
LIBRARIES = ("torch", "transformers", "bitsandbytes", "gptqmodel")  # may differ; named in the compare note


def comparable_identity(results: dict) -> dict:
    """COMPARED of a run from its results.json; None where the run did not record it (unknown)."""
    r = results
    st, model, corpus = r.get("settings") or {}, r.get("model") or {}, r.get("corpus") or {}
    device = st.get("device", (r.get("environment") or {}).get("device"))
    sinks = st.get("sink_positions")
    version = r.get("harness_version")
    return {
        "model": model.get("id"),
        "weights sha256": (model.get("source") or {}).get("sha256"),
        "revision": model.get("revision"),
        "corpus sha256": corpus.get("sha256"),
        "prompts sha256": (r.get("prompts") or {}).get("sha256"),
        "tasks": (r.get("tasks") or {}).get("identity"),
        "bos": st.get("bos"),
        "sink positions": None if sinks is None else ",".join(str(int(x)) for x in sinks),
        "seq_len": st.get("seq_len", corpus.get("seq_len")),
        "n_sequences": st.get("n_sequences"),
        "max_new_tokens": st.get("max_new_tokens"),
        "long_new_tokens": st.get("long_new_tokens"),
        "seed": st.get("seed"),
        "baseline dtype": st.get("baseline_dtype", model.get("baseline_dtype")),
        "device type": None if device is None else str(device).split(":")[0],
        "batch size": st.get("batch_size"),
        # JS from 16 sampled rows and KL from the top-256 tokens (--reference) are not lockstep's numbers
        "measured against": None
        if "reference" not in st
        else "a stored reference"
        if st["reference"]
        else "the baseline model",
        "harness major version": None if version is None else str(version).split(".")[0],
    }


def spec_identity(spec, corpus, prompts, source=None, open_prompts=None, tasks=()) -> dict:
    """comparable_identity() of the run a RunSpec is about to make over these corpus, prompts and model source."""
    return comparable_identity(
        {
            "model": {
                "id": spec.model,
                "revision": spec.revision or "main",
                "source": {"sha256": getattr(source, "sha256", None)},
            },
            "corpus": {"sha256": corpus.sha256},
            "prompts": {"sha256": prompts.sha256},
            "tasks": {"identity": task_shas(tasks) or "none"},
            "settings": {
                "bos": spec.bos,
                "sink_positions": list(spec.sink_positions),
                "seq_len": spec.seq_len,
                "n_sequences": spec.n_sequences,
                "max_new_tokens": spec.max_new_tokens,
                "long_new_tokens": spec.long_new_tokens,
                "seed": spec.seed,
                "baseline_dtype": spec.baseline_dtype,
                "device": spec.device,
                "batch_size": spec.batch_size,
                "reference": spec.reference,
            },
            "harness_version": __version__,
        }
    )


def short(v) -> str:
    """A value as a message shows it: a sha256 as its first 12 hex digits."""
    s = str(v)
    return s[:12] if len(s) == 64 and all(c in "0123456789abcdef" for c in s) else s


def differences(current: dict, earlier: dict) -> list[tuple[str, object, object]]:
    """(key, earlier value, current value) for every identity key that differs; unknown (None) on either
    side is not a difference (runs written before a key was recorded)."""
    return [
        (k, earlier.get(k), current.get(k))
        for k in current
        if current.get(k) is not None and earlier.get(k) is not None and current.get(k) != earlier.get(k)
    ]


def check_comparable(current: dict, earlier: dict, earlier_id: str = "earlier run") -> None:
    """NotComparable (a UsageError) with one clause per identity key that differs."""
    diffs = differences(current, earlier)
    if diffs:
        raise NotComparable(
            f"run {earlier_id} is not comparable: "
            + "; ".join(f"{k} differs ({short(e)} in {earlier_id}, {short(n)} now)" for k, e, n in diffs)
            + "; compare with a run of the same inputs or use --compare none"
        )
