"""Whole runs at scale, on tiny models and the CPU: the results cache, shard then merge, a shared reference, device
maps with disk offload, bitsandbytes placed by the device map, Ray fan-out."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


def _run(tiny_run, quant, **extra):
    """(results, progress lines) of the tiny run."""
    res = tiny_run(quant=quant, **extra)
    return res, tiny_run.lines


def _configs(res):
    return {c["spec"]: c for c in res["configs"]}


@pytest.fixture
def cache_on(isolated_cache, monkeypatch):
    monkeypatch.setenv("QS_RESULTS_CACHE", "on")


def test_results_cache_reuses_identical_inputs_and_nothing_else(tiny_run, cache_on, monkeypatch):
    cold, _ = _run(tiny_run, "rtn-w8,rtn-w4g16")
    assert not any(c.get("cache") for c in cold["configs"])

    warm, lines = _run(tiny_run, "rtn-w8,rtn-w4g16")
    assert not any("loading baseline" in m for m in lines), "every configuration hit: the baseline stays unloaded"
    for spec, c in _configs(warm).items():
        before = _configs(cold)[spec]
        assert c["cache"]["run_id"] == cold["run_id"]
        assert c["metrics"] == before["metrics"] and c["evidence"] == before["evidence"]
        assert [g["outcome"] for g in c["gates"]] == [g["outcome"] for g in before["gates"]]
    assert warm["baseline"] == cold["baseline"]
    assert sum("results cache" in m for m in lines) == 2
    run_dir = tiny_run.report_dir / warm["run_id"]
    assert "reused from the results cache" in (run_dir / "summary.md").read_text()

    # one configuration changed: only it is measured
    changed, _ = _run(tiny_run, "rtn-w8,rtn-w3g16")
    assert _configs(changed)["rtn-w8"].get("cache") and not _configs(changed)["rtn-w3g16"].get("cache")

    # any measuring input, a library version, or --no-cache: measured again
    assert not any(c.get("cache") for c in _run(tiny_run, "rtn-w8", seed="1")[0]["configs"])
    assert not any(c.get("cache") for c in _run(tiny_run, "rtn-w8", scenarios="bos")[0]["configs"])
    assert not any(c.get("cache") for c in _run(tiny_run, "rtn-w8", no_cache=True)[0]["configs"])
    import harness.system.environment as environment

    real = environment.package_version
    monkeypatch.setattr(environment, "package_version", lambda p: "0.0-other" if p == "transformers" else real(p))
    assert not any(c.get("cache") for c in _run(tiny_run, "rtn-w8")[0]["configs"])


def test_cached_measurement_is_gated_under_todays_policy(tiny_run, tmp_path, cache_on):
    _run(tiny_run, "rtn-w4g16")
    strict = tmp_path / "strict.toml"
    strict.write_text("[limits.all]\nlogit_delta_max = { min = 1e9 }\n")
    res, _ = _run(tiny_run, "rtn-w4g16", policy=str(strict))
    c = _configs(res)["rtn-w4g16"]
    assert c.get("cache") and [g["metric"] for g in c["gates"]] == ["logit_delta_max"]
    assert c["gates"][0]["outcome"] == "fail" and c["verdict"] == "fail"


def _comparable(c: dict) -> dict:
    """A configuration's measurement and decisions, without wall times (nor who built the reference)."""
    out = {k: v for k, v in c.items() if k not in ("quantize_seconds", "measure_seconds", "phases")}
    if (out.get("info") or {}).get("reference"):
        out["info"] = {**out["info"], "reference": {**out["info"]["reference"], "built_in_this_run": None}}
    return out


def test_shard_then_merge_equals_one_process(tiny_run, tmp_path, capsys):
    from harness.cli import main

    quant = "rtn-w8,rtn-w4g16,rtn-w3g16"
    single, _ = _run(tiny_run, quant)
    args = tiny_run.flags(quant=quant, report_dir=str(tmp_path / "shards"))
    assert main(["shard", "--index", "0", "--count", "2", *args]) == 0
    assert main(["shard", "--index", "1", "--count", "2", *args]) == 0
    parts = sorted((tmp_path / "shards" / "parts").rglob("part-*.json"))
    assert [p.name for p in parts] == ["part-0-of-2.json", "part-1-of-2.json"]
    assert [c["spec"] for c in json.loads(parts[0].read_text())["configs"]] == ["rtn-w8", "rtn-w3g16"]
    code = main(["merge", str(tmp_path / "shards" / "parts"), "--report-dir", str(tmp_path / "merged")])
    merged = json.loads(next((tmp_path / "merged").rglob("results.json")).read_text())
    assert code == 0 and merged["verdict"] == "inconclusive"  # inconclusive: exit 0, as pytest and python -m harness
    assert [c["spec"] for c in merged["configs"]] == quant.split(",")
    for a, b in zip(single["configs"], merged["configs"]):
        assert _comparable(a) == _comparable(b)
    assert merged["verdict"] == single["verdict"] and merged["baseline"] == single["baseline"]
    assert "quantsink verdict" in capsys.readouterr().out

    # merge refuses: a part missing, a part twice, parts of another run
    err = lambda: capsys.readouterr().err.strip()  # noqa: E731
    runs = sorted(p.name for p in (tmp_path / "merged").iterdir() if p.is_dir())
    assert main(["merge", str(tmp_path / "shards" / "parts"), "--report-dir", str(tmp_path / "merged")]) == 4
    assert "these parts were merged before" in err(), "merging the same parts twice makes one run"
    assert sorted(p.name for p in (tmp_path / "merged").iterdir() if p.is_dir()) == runs
    assert main(["merge", str(parts[0]), "--report-dir", str(tmp_path / "m2")]) == 4
    assert "part(s) 1 of 2 missing" in err()
    assert main(["merge", str(parts[0]), str(parts[0]), str(parts[1])]) == 4 and "given twice" in err()
    other = tiny_run.flags(quant="rtn-w8", report_dir=str(tmp_path / "other"))
    assert main(["shard", "--index", "0", "--count", "2", *other, "--seed", "3"]) == 0
    capsys.readouterr()
    odd = next((tmp_path / "other" / "parts").rglob("part-0-of-2.json"))
    assert main(["merge", str(odd), str(parts[1])]) == 4 and "different runs" in err()
    assert not (tmp_path / "m2").exists(), "a refused merge writes nothing"


def test_shards_share_one_reference_and_merge_like_one_process(tiny_run, tmp_path, isolated_cache):
    from harness.cli import main

    quant = "rtn-w8,rtn-w4g16"
    single, _ = _run(tiny_run, quant, reference=True)
    args = tiny_run.flags(quant=quant, report_dir=str(tmp_path / "shards"), reference=True)
    assert main(["shard", "--index", "0", "--count", "2", *args]) == 0
    assert main(["shard", "--index", "1", "--count", "2", *args]) == 0
    assert main(["merge", str(tmp_path / "shards" / "parts"), "--report-dir", str(tmp_path / "merged")]) == 0
    merged = json.loads(next((tmp_path / "merged").rglob("results.json")).read_text())
    assert len(list((isolated_cache / "references").glob("*/meta.json"))) == 1
    for a, b in zip(single["configs"], merged["configs"]):
        assert b["info"]["reference"]["built_in_this_run"] is False  # the single run built it; shards found it
        assert _comparable(a) == _comparable(b)


def test_bitsandbytes_loads_by_the_device_map(tiny_run):
    """bitsandbytes quantizes while loading, so it is placed by from_pretrained's device_map (not
    dispatched afterwards); on this CPU-only machine everything lands on the CPU, numbers unchanged."""
    pytest.importorskip("bitsandbytes")
    plain, _ = _run(tiny_run, "bnb-int8,bnb-nf4")
    mapped, _ = _run(tiny_run, "bnb-int8,bnb-nf4", device_map="auto")
    for a, b in zip(plain["configs"], mapped["configs"]):
        assert not b.get("error") and "cpu" in b["info"]["placement"], b
        for m in ("ppl_ratio", "kld_mean", "sink_hidden_cos"):
            assert b["metrics"][m] == pytest.approx(a["metrics"][m], rel=1e-6, abs=1e-9), m


def test_device_map_with_disk_offload_equals_in_memory(tiny_run):
    """--max-memory below the model's size forces accelerate's disk offload; the numbers must not move."""
    from harness.models.sources import load_model, resolve_model
    from harness.models.structure import decoder_layers

    model = load_model(resolve_model("tiny-llama").local_dir)
    layer = max(sum(p.numel() * 4 for p in lay.parameters()) for lay in decoder_layers(model))
    assert 1.5 * layer < sum(p.numel() * 4 for p in model.parameters())
    plain, _ = _run(tiny_run, "rtn-w8,rtn-w4g16")
    mapped, lines = _run(tiny_run, "rtn-w8,rtn-w4g16", device_map="auto", max_memory=f"cpu={int(1.5 * layer)}")
    assert "disk" in mapped["baseline"]["placement"] and "device map auto" in lines[0]
    for a, b in zip(plain["configs"], mapped["configs"]):
        assert "disk" in b["info"]["placement"], b["info"]
        for k in ("ppl_ratio", "kld_mean", "top1_agreement"):
            assert b["metrics"][k] == pytest.approx(a["metrics"][k], rel=1e-5, abs=1e-7)
        assert b["metrics"]["sink_hidden_cos"] == pytest.approx(a["metrics"]["sink_hidden_cos"], abs=1e-6)
        assert [g["outcome"] for g in a["gates"]] == [g["outcome"] for g in b["gates"]]


@pytest.fixture
def no_ray_left():
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'quantsink[ray]'")
    yield
    ray.shutdown()


def test_ray_fan_out_on_a_local_cluster_equals_serial(tiny_run, tmp_path, no_ray_left):
    """Both sides in reference mode: the driver builds the reference once, every task finds it by key."""
    quant = "rtn-w8,rtn-w4g16"
    refs = str(tmp_path / "refs")
    serial, _ = _run(tiny_run, quant, reference=True, reference_dir=refs)
    fanned, lines = _run(tiny_run, quant, ray_address="local", reference=True, reference_dir=refs)
    assert [m for m in lines if "sent to Ray" in m] == ["rtn-w8: sent to Ray", "rtn-w4g16: sent to Ray"]
    for a, b in zip(serial["configs"], fanned["configs"]):
        assert not b.get("error"), b["error"]
        assert b["info"]["reference"] == {**a["info"]["reference"], "built_in_this_run": False}
        assert _comparable(a) == _comparable(b)
    assert fanned["verdict"] == serial["verdict"] and fanned["baseline"] == serial["baseline"]
    import ray

    assert not ray.is_initialized(), "a local cluster is stopped when the run ends"


def test_unreachable_ray_address_is_a_usage_error_within_bounded_time(tiny_run, no_ray_left, monkeypatch):
    import time

    from harness.cli import main
    from harness.scale import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 2.0)
    t0 = time.monotonic()
    code = main(tiny_run.flags(quant="rtn-w8", ray_address="127.0.0.1:1"))
    assert code == 4 and time.monotonic() - t0 < 60
