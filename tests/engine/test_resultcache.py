"""The results cache stores only configurations that were measured and decided."""


def test_skipped_or_failed_configurations_are_not_cached(isolated_cache, monkeypatch):
    monkeypatch.setenv("QS_RESULTS_CACHE", "on")
    from harness.engine import resultcache

    resultcache.store_config("k1", {"verdict": "skipped", "skip_reason": "x"}, "r")
    resultcache.store_config("k2", {"verdict": "fail", "error": "boom", "nonfinite_layer": None}, "r")
    assert resultcache.load_config("k1") is None and resultcache.load_config("k2") is None
    resultcache.store_config("k3", {"verdict": "pass", "nonfinite_layer": None, "gates": [1]}, "r")
    assert resultcache.load_config("k3") == {"run_id": "r", "result": {"nonfinite_layer": None}}


def test_a_measurement_made_by_other_harness_code_is_not_reused(monkeypatch):
    """The keys carry the sha256 of the harness's own source: an edited or upgraded harness measures again."""
    from types import SimpleNamespace

    from harness.config import identity

    monkeypatch.setattr(identity, "inputs_identity", lambda spec, inputs, *a: {"inputs": 1})
    q = SimpleNamespace(cache_identity=lambda: {"method": "rtn"}, method="rtn")
    monkeypatch.setattr(identity, "method_packages", lambda q: ["torch"])
    before = identity.measurement_key(None, None, q), identity.baseline_side_key(None, None)
    assert before == (identity.measurement_key(None, None, q), identity.baseline_side_key(None, None))
    monkeypatch.setattr(identity, "code_sha", lambda: "other code")
    after = identity.measurement_key(None, None, q), identity.baseline_side_key(None, None)
    assert before[0] != after[0] and before[1] != after[1]


def test_code_sha_reads_the_package_source():
    from harness.config.identity import code_sha

    assert len(code_sha()) == 64 and code_sha() == code_sha()
