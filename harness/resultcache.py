"""Results cache: a configuration measured before on identical inputs is not measured again.

An entry holds one configuration's measurement (metrics, gate views, per-item evidence,
generations), keyed by everything that can change it: the data identity of the run (weights
sha256, corpus/prompt hashes and every measuring setting), the configuration (for a checkpoint:
its files' content hash), the harness version and the versions of torch, transformers and the
method's own packages. Gates are not cached: they are decided again under today's policy.
The baseline side of results.json (its statistics and shape) is cached under the same inputs, so a
run whose configurations all hit never loads the baseline. `--no-cache` measures everything;
QS_RESULTS_CACHE=off does so for a whole environment (the harness's own tests set it).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from . import __version__
from .storage import cache_get, cache_put, cache_root

# Settings that change what is measured. The rest decide which runs happen and how they are judged
# (report_dir, compare, pin, policy, profile, signoff...): a cached measurement stays valid under them.
MEASURING = ("model", "revision", "device", "baseline_dtype", "corpus", "prompts", "bos", "sink_positions",
             "protect_sink", "seed", "n_sequences", "seq_len", "batch_size", "max_new_tokens", "n_prompts",
             "gen_batch_size", "gptq_samples", "long_new_tokens", "long_n_prompts", "n_probe_sequences",
             "n_stability_prompts", "allow_pickle", "trust_remote_code", "scenarios", "stream_sinks",
             "stream_window", "stream_len")
FORMAT = 1  # bump when the stored layout changes


def enabled(spec) -> bool:
    # --sensitivity measures its recommendations on the loaded quantized model: no reuse then
    return not spec.no_cache and os.environ.get("QS_RESULTS_CACHE", "on") != "off" and not spec.unavailable \
        and (getattr(spec, "sensitivity", "off") or "off") == "off"


def _versions(packages) -> dict:
    from importlib import metadata

    from .results import package_version

    dists = metadata.packages_distributions()
    out = {"harness": __version__, "torch": package_version("torch"),
           "transformers": package_version("transformers")}
    for p in packages:
        for d in dists.get(p.split(".")[0], [p.split(".")[0]]):
            out[d] = package_version(d)
    return out


def threads_of(spec) -> int:
    """The torch thread count the run will use (float reductions can depend on it)."""
    from .baseline import default_threads

    env = os.environ.get("OMP_NUM_THREADS")
    return spec.threads or (int(env) if env else default_threads())


def _settings(spec) -> dict:
    d = spec.to_dict()
    return {k: d.get(k) for k in MEASURING} | {"threads": threads_of(spec)}


def _inputs_identity(spec, inputs) -> dict:
    return {"format": FORMAT, "weights": inputs.source.sha256 or str(inputs.source.local_dir),
            "corpus": inputs.corpus.sha256, "prompts": inputs.prompts.sha256, "settings": _settings(spec)}


def _digest(blob: dict) -> str:
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:32]


def config_key(spec, inputs, q) -> str | None:
    """The cache key of q's measurement in this run, or None when q cannot be cached (a Hub
    checkpoint whose content is not on disk to hash)."""
    from .methods.registry import get_method

    ident = q.cache_identity()
    if ident is None:
        return None
    method = get_method(q.method)
    packages = list(method.packages) + [method.origin]
    return _digest({"inputs": _inputs_identity(spec, inputs), "config": ident, "bit_class": spec.bit_class,
                    "versions": _versions(packages)})


def baseline_key(spec, inputs) -> str:
    return _digest({"inputs": _inputs_identity(spec, inputs), "versions": _versions([])})


def _path(kind: str, key: str) -> Path:
    return cache_root() / "results" / f"{kind}-{key}.json"


# Fields of a ConfigResult decided from the measurement under the policy of the day: never cached.
_JUDGED = ("gates", "verdict", "regressions", "cache")


def load_config(key: str) -> dict | None:
    hit = cache_get(_path("config", key))
    return None if hit is None else hit


def store_config(key: str, result: dict, run_id: str) -> None:
    """Store a measured configuration (never a skipped or failed one: those are tried again)."""
    if result.get("verdict") == "skipped" or result.get("error") or "nonfinite_layer" not in result:
        return
    cache_put(_path("config", key), {"run_id": run_id, "result": {k: v for k, v in result.items()
                                                                  if k not in _JUDGED}})


def load_baseline(key: str) -> dict | None:
    return cache_get(_path("baseline", key))


def store_baseline(key: str, side: dict) -> None:
    if side.get("baseline") is not None:
        cache_put(_path("baseline", key), side)
