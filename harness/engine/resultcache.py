"""Results cache: a configuration measured before on identical inputs is not measured again.

An entry holds one configuration's measurement (metrics, gate views, per-item evidence,
generations), keyed by everything that can change it: the data identity of the run (weights
sha256, corpus/prompt hashes and every measuring setting), the configuration (for a checkpoint:
its files' content hash), the sha256 of the harness's own source and the versions of torch,
transformers and the method's own packages. Gates are not cached: they are decided again under today's policy.
The baseline side of results.json (its statistics and shape) is cached under the same inputs, so a
run whose configurations all hit never loads the baseline. `--no-cache` measures everything;
QS_RESULTS_CACHE=off does so for a whole environment (the harness's own tests set it).
"""

from __future__ import annotations

from pathlib import Path

from harness.config.identity import baseline_side_key, measurement_key
from harness.gates.decide import config_verdict, gate_all
from harness.gates.records import ConfigResult
from harness.scenarios import gates as scenario_gates
from harness.system.environment import env
from harness.system.files import cache_get, cache_put, cache_root


def enabled(spec) -> bool:
    # --sensitivity measures its recommendations on the loaded quantized model: no reuse then
    return (
        not spec.no_cache
        and env("QS_RESULTS_CACHE") != "off"
        and not spec.unavailable
        and (getattr(spec, "sensitivity", "off") or "off") == "off"
    )


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
    cache_put(_path("config", key), {"run_id": run_id, "result": {k: v for k, v in result.items() if k not in _JUDGED}})


def load_baseline(key: str) -> dict | None:
    return cache_get(_path("baseline", key))


def store_baseline(key: str, side: dict) -> None:
    if side.get("baseline") is not None:
        cache_put(_path("baseline", key), side)


def reuse(session, q) -> bool:
    """Take q's measurement from the cache when one exists for identical inputs; gate it under today's
    policy. When the baseline is not loaded, its side of results.json comes from the cache too."""

    spec, policy = session.spec, session.policy
    key = measurement_key(spec, session.inputs, q) if enabled(spec) else None
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
        session.taken_over = load_baseline(baseline_side_key(spec, session.inputs)) or {}
    session.progress(
        f"{q.spec}: measured on identical inputs in run {hit['run_id']}: reusing that "
        f"measurement (results cache; --no-cache measures again)"
    )
    return True


def store(session, measured_configs: list, results: dict) -> None:
    """Store what was just measured (results: {spec: ConfigResult}) and the baseline's side."""
    if not enabled(session.spec):
        return
    for q in measured_configs:
        key = measurement_key(session.spec, session.inputs, q) if q.spec in results else None
        if key:
            store_config(key, results[q.spec].as_dict(), session.run_id)
    if session.baseline.loaded:
        store_baseline(baseline_side_key(session.spec, session.inputs), session.baseline_side())
