"""Issue 13: the results cache, shard/merge and device assignment (tiny models, CPU)."""
from __future__ import annotations

import json

import pytest

from harness import api

SMALL = dict(model="tiny-llama", n_sequences="2", seq_len="32", max_new_tokens="4", n_prompts="6",
             long_new_tokens="4", long_n_prompts="1", n_stability_prompts="2", n_probe_sequences="2",
             batch_size="2")


def _run(tmp_path, quant, **extra):
    lines = []
    res = api.run({**SMALL, "quant": quant, "report_dir": str(tmp_path / "reports"), **extra}, lines.append)
    return res, lines


def _configs(res):
    return {c["spec"]: c for c in res["configs"]}


@pytest.fixture
def cache_on(tmp_path, monkeypatch):
    monkeypatch.setenv("QS_RESULTS_CACHE", "on")
    monkeypatch.setenv("QS_CACHE_DIR", str(tmp_path / "cache"))


def test_results_cache_reuses_identical_inputs_and_nothing_else(tmp_path, cache_on, monkeypatch):
    cold, _ = _run(tmp_path, "rtn-w8,rtn-w4g16")
    assert not any(c.get("cache") for c in cold["configs"])

    warm, lines = _run(tmp_path, "rtn-w8,rtn-w4g16")
    assert not any("loading baseline" in m for m in lines), "every configuration hit: the baseline stays unloaded"
    for spec, c in _configs(warm).items():
        before = _configs(cold)[spec]
        assert c["cache"]["run_id"] == cold["run_id"]
        assert c["metrics"] == before["metrics"] and c["evidence"] == before["evidence"]
        assert [g["outcome"] for g in c["gates"]] == [g["outcome"] for g in before["gates"]]
    assert warm["baseline"] == cold["baseline"]
    assert sum("results cache" in m for m in lines) == 2
    run_dir = tmp_path / "reports" / warm["run_id"]
    assert "reused from the results cache" in (run_dir / "summary.md").read_text()

    # one configuration changed: only it is measured
    changed, _ = _run(tmp_path, "rtn-w8,rtn-w3g16")
    assert _configs(changed)["rtn-w8"].get("cache") and not _configs(changed)["rtn-w3g16"].get("cache")

    # any measuring input, a library version, or --no-cache: measured again
    assert not any(c.get("cache") for c in _run(tmp_path, "rtn-w8", seed="1")[0]["configs"])
    assert not any(c.get("cache") for c in _run(tmp_path, "rtn-w8", no_cache=True)[0]["configs"])
    import harness.results as results

    real = results.package_version
    monkeypatch.setattr(results, "package_version", lambda p: "0.0-other" if p == "transformers" else real(p))
    assert not any(c.get("cache") for c in _run(tmp_path, "rtn-w8")[0]["configs"])


def test_cached_measurement_is_gated_under_todays_policy(tmp_path, cache_on):
    _run(tmp_path, "rtn-w4g16")
    strict = tmp_path / "strict.toml"
    strict.write_text("[limits.all]\nlogit_delta_max = { min = 1e9 }\n")
    res, _ = _run(tmp_path, "rtn-w4g16", policy=str(strict))
    c = _configs(res)["rtn-w4g16"]
    assert c.get("cache") and [g["metric"] for g in c["gates"]] == ["logit_delta_max"]
    assert c["gates"][0]["outcome"] == "fail" and c["verdict"] == "fail"


def test_skipped_or_failed_configurations_are_not_cached(tmp_path, cache_on):
    from harness import resultcache

    resultcache.store_config("k1", {"verdict": "skipped", "skip_reason": "x"}, "r")
    resultcache.store_config("k2", {"verdict": "fail", "error": "boom", "nonfinite_layer": None}, "r")
    assert resultcache.load_config("k1") is None and resultcache.load_config("k2") is None
    resultcache.store_config("k3", {"verdict": "pass", "nonfinite_layer": None, "gates": [1]}, "r")
    assert resultcache.load_config("k3") == {"run_id": "r", "result": {"nonfinite_layer": None}}


def test_checkpoint_cache_identity_follows_its_content(tmp_path):
    from harness.methods import parse_spec

    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "config.json").write_text(json.dumps({"a": 1}))
    q = parse_spec(f"path:{ck}")
    first = q.cache_identity()
    (ck / "config.json").write_text(json.dumps({"a": 2}))
    assert q.cache_identity() != first
    assert parse_spec("path:some-org/some-model").cache_identity() is None
