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

import functools
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
             "stream_window", "stream_len", "reference")
# The rest, named so that a new setting must be put on one side (tests/test_scale.py checks the split).
NOT_MEASURING = ("quant", "bits", "methods", "bit_class", "device_map", "max_memory", "ray_address", "devices",
                 "policy", "profile", "report_dir", "compare", "pin", "pin_anyway", "signoff", "lockstep", "no_cache",
                 "sensitivity", "keep_budget", "threads", "reference_dir")
FORMAT = 1  # bump when the stored layout changes


def enabled(spec) -> bool:
    # --sensitivity measures its recommendations on the loaded quantized model: no reuse then
    return not spec.no_cache and os.environ.get("QS_RESULTS_CACHE", "on") != "off" and not spec.unavailable \
        and (getattr(spec, "sensitivity", "off") or "off") == "off"


@functools.lru_cache(maxsize=1)
def _distributions() -> dict:
    """{import name: [distribution names]}: scans every installed package, so once per process."""
    from importlib import metadata

    return metadata.packages_distributions()


def _versions(packages) -> dict:
    from .results import package_version

    dists = _distributions()
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
    return cache_get(_path("config", key))


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


def reuse(session, q) -> bool:
    """Take q's measurement from the cache when one exists for identical inputs; gate it under today's
    policy. When the baseline is not loaded, its side of results.json comes from the cache too."""
    from .gates import config_verdict, gate_all
    from .records import ConfigResult
    from .scenarios import gates as scenario_gates

    spec, policy = session.spec, session.policy
    key = config_key(spec, session.inputs, q) if enabled(spec) else None
    hit = load_config(key) if key else None
    if hit is None:
        return False
    r = ConfigResult.from_dict(hit["result"])
    r.cache = {"run_id": hit["run_id"], "key": key}
    r.bit_class = session.evaluator.new_result(q).bit_class
    limits = scenario_gates(policy.gates_for(r.bit_class if policy.by_class else None), spec)
    r.gates = gate_all(q.spec, limits, r.gate_views or {}, r.nonfinite_layer)
    r.verdict = config_verdict(r.gates)
    session.configs[q.spec] = r
    if not (session.baseline.loaded or session.taken_over):
        session.taken_over = load_baseline(baseline_key(spec, session.inputs)) or {}
    session.progress(f"{q.spec}: measured on identical inputs in run {hit['run_id']}: reusing that "
                     f"measurement (results cache; --no-cache measures again)")
    return True


def store(session, measured_configs: list, results: dict) -> None:
    """Store what was just measured (results: {spec: ConfigResult}) and the baseline's side."""
    if not enabled(session.spec):
        return
    for q in measured_configs:
        key = config_key(session.spec, session.inputs, q) if q.spec in results else None
        if key:
            store_config(key, results[q.spec].as_dict(), session.run_id)
    if session.baseline.loaded:
        store_baseline(baseline_key(session.spec, session.inputs), session._baseline_side())
