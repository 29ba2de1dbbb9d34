"""The results cache stores only configurations that were measured and decided."""


def test_skipped_or_failed_configurations_are_not_cached(isolated_cache, monkeypatch):
    monkeypatch.setenv("QS_RESULTS_CACHE", "on")
    from harness.engine import resultcache

    resultcache.store_config("k1", {"verdict": "skipped", "skip_reason": "x"}, "r")
    resultcache.store_config("k2", {"verdict": "fail", "error": "boom", "nonfinite_layer": None}, "r")
    assert resultcache.load_config("k1") is None and resultcache.load_config("k2") is None
    resultcache.store_config("k3", {"verdict": "pass", "nonfinite_layer": None, "gates": [1]}, "r")
    assert resultcache.load_config("k3") == {"run_id": "r", "result": {"nonfinite_layer": None}}
