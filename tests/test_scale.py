"""Issue 13: the results cache, shard/merge and device assignment (tiny models, CPU)."""

from __future__ import annotations

import json

import pytest

from harness import cli as api

SMALL = dict(
    model="tiny-llama",
    n_sequences="2",
    seq_len="32",
    max_new_tokens="4",
    n_prompts="6",
    long_new_tokens="4",
    long_n_prompts="1",
    n_stability_prompts="2",
    n_probe_sequences="2",
    batch_size="2",
)


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
    assert not any(c.get("cache") for c in _run(tmp_path, "rtn-w8", scenarios="bos")[0]["configs"])
    assert not any(c.get("cache") for c in _run(tmp_path, "rtn-w8", no_cache=True)[0]["configs"])
    import harness.system.environment as environment

    real = environment.package_version
    monkeypatch.setattr(environment, "package_version", lambda p: "0.0-other" if p == "transformers" else real(p))
    assert not any(c.get("cache") for c in _run(tmp_path, "rtn-w8")[0]["configs"])


def test_every_setting_has_a_role_and_the_measurement_key_follows_it():
    """A setting whose role is baseline or measuring changes the results-cache key; a run setting does not."""
    from types import SimpleNamespace

    from harness.config import identity
    from harness.config.settings import ROLES, SETTINGS, profile_values

    assert all(s.role in ROLES for s in SETTINGS)
    values = profile_values("smoke")
    inputs = SimpleNamespace(
        source=SimpleNamespace(sha256="w", local_dir="d"),
        corpus=SimpleNamespace(sha256="c"),
        prompts=SimpleNamespace(sha256="p"),
    )
    q = SimpleNamespace(method="rtn", cache_identity=lambda: {"spec": "rtn-w8"})

    def key(**over):
        d = {**values, **over}
        spec = SimpleNamespace(**d, to_dict=lambda: d)
        return identity.measurement_key(spec, inputs, q)

    base = key()
    for s in SETTINGS:
        changed = key(**{s.name: "something else"}) != base
        assert changed == (s.role in ("baseline", "measuring")), (s.name, s.role)


def test_cached_measurement_is_gated_under_todays_policy(tmp_path, cache_on):
    _run(tmp_path, "rtn-w4g16")
    strict = tmp_path / "strict.toml"
    strict.write_text("[limits.all]\nlogit_delta_max = { min = 1e9 }\n")
    res, _ = _run(tmp_path, "rtn-w4g16", policy=str(strict))
    c = _configs(res)["rtn-w4g16"]
    assert c.get("cache") and [g["metric"] for g in c["gates"]] == ["logit_delta_max"]
    assert c["gates"][0]["outcome"] == "fail" and c["verdict"] == "fail"


def test_skipped_or_failed_configurations_are_not_cached(tmp_path, cache_on):
    from harness.engine import resultcache

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


def _argv(d: dict) -> list[str]:
    return [a for k, v in d.items() for a in (f"--{k.replace('_', '-')}", str(v))]


def _comparable(c: dict) -> dict:
    """A configuration's measurement and decisions, without wall times (nor who built the reference)."""
    out = {k: v for k, v in c.items() if k not in ("quantize_seconds", "measure_seconds")}
    if (out.get("info") or {}).get("reference"):
        out["info"] = {**out["info"], "reference": {**out["info"]["reference"], "built_in_this_run": None}}
    return out


def test_shard_then_merge_equals_one_process(tmp_path, capsys):
    from harness.cli import main

    quant = "rtn-w8,rtn-w4g16,rtn-w3g16"
    single, _ = _run(tmp_path, quant)
    args = _argv({**SMALL, "quant": quant, "report_dir": tmp_path / "shards"})
    assert main(["shard", "--index", "0", "--count", "2", *args]) == 0
    assert main(["shard", "--index", "1", "--count", "2", *args]) == 0
    parts = sorted((tmp_path / "shards" / "parts").rglob("part-*.json"))
    assert [p.name for p in parts] == ["part-0-of-2.json", "part-1-of-2.json"]
    assert [c["spec"] for c in json.loads(parts[0].read_text())["configs"]] == ["rtn-w8", "rtn-w3g16"]
    code = main(["merge", str(tmp_path / "shards" / "parts"), "--report-dir", str(tmp_path / "merged")])
    merged = json.loads(next((tmp_path / "merged").rglob("results.json")).read_text())
    assert code == (0 if merged["verdict"] == "pass" else 1)
    assert [c["spec"] for c in merged["configs"]] == quant.split(",")
    for a, b in zip(single["configs"], merged["configs"]):
        assert _comparable(a) == _comparable(b)
    assert merged["verdict"] == single["verdict"] and merged["baseline"] == single["baseline"]
    assert "quantsink verdict" in capsys.readouterr().out

    # merge refuses: a part missing, a part twice, parts of another run
    err = lambda: capsys.readouterr().err.strip()  # noqa: E731
    assert main(["merge", str(parts[0]), "--report-dir", str(tmp_path / "m2")]) == 4
    assert "part(s) 1 of 2 missing" in err()
    assert main(["merge", str(parts[0]), str(parts[0]), str(parts[1])]) == 4 and "given twice" in err()
    other = _argv({**SMALL, "quant": "rtn-w8", "report_dir": tmp_path / "other"})
    assert main(["shard", "--index", "0", "--count", "2", *other, "--seed", "3"]) == 0
    capsys.readouterr()
    odd = next((tmp_path / "other" / "parts").rglob("part-0-of-2.json"))
    assert main(["merge", str(odd), str(parts[1])]) == 4 and "different runs" in err()
    assert not (tmp_path / "m2").exists(), "a refused merge writes nothing"


def test_shards_share_one_reference_and_merge_like_one_process(tmp_path, monkeypatch):
    from harness.cli import main

    monkeypatch.setenv("QS_CACHE_DIR", str(tmp_path / "cache"))
    quant = "rtn-w8,rtn-w4g16"
    single, _ = _run(tmp_path, quant, reference=True)
    args = _argv({**SMALL, "quant": quant, "report_dir": tmp_path / "shards"}) + ["--reference"]
    assert main(["shard", "--index", "0", "--count", "2", *args]) == 0
    assert main(["shard", "--index", "1", "--count", "2", *args]) == 0
    main(["merge", str(tmp_path / "shards" / "parts"), "--report-dir", str(tmp_path / "merged")])
    merged = json.loads(next((tmp_path / "merged").rglob("results.json")).read_text())
    assert len(list((tmp_path / "cache" / "references").glob("*/meta.json"))) == 1
    for a, b in zip(single["configs"], merged["configs"]):
        assert b["info"]["reference"]["built_in_this_run"] is False  # the single run built it; shards found it
        assert _comparable(a) == _comparable(b)


def test_shard_index_out_of_range_is_a_usage_error(tmp_path, capsys):
    from harness.cli import main

    args = _argv({**SMALL, "quant": "rtn-w8", "report_dir": tmp_path})
    assert main(["shard", "--index", "2", "--count", "2", *args]) == 4
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "index must lie in 0..count-1" in err
    assert not (tmp_path / "parts").exists()


def test_bitsandbytes_loads_by_the_device_map(tmp_path):
    """bitsandbytes quantizes while loading, so it is placed by from_pretrained's device_map (not
    dispatched afterwards); on this CPU-only machine everything lands on the CPU, numbers unchanged."""
    pytest.importorskip("bitsandbytes")
    plain, _ = _run(tmp_path, "bnb-int8,bnb-nf4")
    mapped, _ = _run(tmp_path, "bnb-int8,bnb-nf4", device_map="auto")
    for a, b in zip(plain["configs"], mapped["configs"]):
        assert not b.get("error") and "cpu" in b["info"]["placement"], b
        for m in ("ppl_ratio", "kld_mean", "sink_hidden_cos"):
            assert b["metrics"][m] == pytest.approx(a["metrics"][m], rel=1e-6, abs=1e-9), m


def test_xdist_workers_get_their_own_gpu():
    from harness.errors import UsageError
    from harness.system.devices import worker_device

    got = [worker_device("cuda", None, f"gw{i}", visible=4) for i in range(6)]
    assert got == ["cuda:0", "cuda:1", "cuda:2", "cuda:3", "cuda:0", "cuda:1"]
    assert [worker_device("cuda", "2,3", f"gw{i}", 4) for i in range(3)] == ["cuda:2", "cuda:3", "cuda:2"]
    assert worker_device("cuda:1", None, "gw3", 4) == "cuda:1"  # explicit device, no list: kept
    assert worker_device("cuda", None, None, 4) == "cuda"  # not a worker
    assert worker_device("cpu", "0,1", "gw1", 0) == "cpu"
    for bad in ("4", "x", "-1"):
        with pytest.raises(UsageError, match="--devices"):
            worker_device("cuda", bad, "gw0", 4)


def test_device_map_with_disk_offload_equals_in_memory(tmp_path):
    """--max-memory below the model's size forces accelerate's disk offload; the numbers must not move."""
    from harness.models.sources import load_model, resolve_model
    from harness.models.structure import decoder_layers

    model = load_model(resolve_model("tiny-llama").local_dir)
    layer = max(sum(p.numel() * 4 for p in lay.parameters()) for lay in decoder_layers(model))
    assert 1.5 * layer < sum(p.numel() * 4 for p in model.parameters())
    plain, _ = _run(tmp_path, "rtn-w8,rtn-w4g16")
    mapped, lines = _run(tmp_path, "rtn-w8,rtn-w4g16", device_map="auto", max_memory=f"cpu={int(1.5 * layer)}")
    assert "disk" in mapped["baseline"]["placement"] and "device map auto" in lines[0]
    for a, b in zip(plain["configs"], mapped["configs"]):
        assert "disk" in b["info"]["placement"], b["info"]
        for k in ("ppl_ratio", "kld_mean", "top1_agreement"):
            assert b["metrics"][k] == pytest.approx(a["metrics"][k], rel=1e-5, abs=1e-7)
        assert b["metrics"]["sink_hidden_cos"] == pytest.approx(a["metrics"]["sink_hidden_cos"], abs=1e-6)
        assert [g["outcome"] for g in a["gates"]] == [g["outcome"] for g in b["gates"]]


@pytest.mark.parametrize(
    "extra, message",
    [
        (dict(device_map="auto", max_memory="cpu=1000"), "one decoder layer needs"),
        (dict(max_memory="cpu=1GiB"), "add --device-map"),
        (dict(device_map="auto", max_memory="cpu:1GiB"), "DEVICE=SIZE pairs"),
    ],
)
def test_bad_memory_limits_are_usage_errors(tmp_path, extra, message):
    from harness.errors import UsageError

    with pytest.raises(UsageError, match=message):
        _run(tmp_path, "rtn-w8", **extra)
    assert not (tmp_path / "reports").exists()


def test_gpu_request_per_task_follows_size_and_bits():
    from harness.scale.cluster import gpus_needed

    assert gpus_needed(135_000_000, 4, None) == 0  # no GPUs in the cluster
    eight_b, seventy_b, h100 = 8_000_000_000, 70_000_000_000, 80 * 2**30
    assert gpus_needed(eight_b, 4, h100) == pytest.approx(8e9 * 2.5 * 1.2 / h100, abs=0.01)  # a fraction
    assert gpus_needed(seventy_b, 4, h100) == 3.0  # 70B: fp16 baseline + 4-bit copy on three GPUs
    assert gpus_needed(seventy_b, 8, h100) > gpus_needed(seventy_b, 4, h100) - 1


@pytest.fixture
def no_ray_left():
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'quantsink[ray]'")
    yield
    ray.shutdown()


def test_ray_fan_out_on_a_local_cluster_equals_serial(tmp_path, no_ray_left):
    """Both sides in reference mode: the driver builds the reference once, every task finds it by key."""
    quant = "rtn-w8,rtn-w4g16"
    refs = str(tmp_path / "refs")
    serial, _ = _run(tmp_path, quant, reference=True, reference_dir=refs)
    fanned, lines = _run(tmp_path, quant, ray_address="local", reference=True, reference_dir=refs)
    assert [m for m in lines if "sent to Ray" in m] == ["rtn-w8: sent to Ray", "rtn-w4g16: sent to Ray"]
    for a, b in zip(serial["configs"], fanned["configs"]):
        assert not b.get("error"), b["error"]
        assert b["info"]["reference"] == {**a["info"]["reference"], "built_in_this_run": False}
        assert _comparable(a) == _comparable(b)
    assert fanned["verdict"] == serial["verdict"] and fanned["baseline"] == serial["baseline"]
    import ray

    assert not ray.is_initialized(), "a local cluster is stopped when the run ends"


def test_unreachable_ray_address_is_a_usage_error_within_bounded_time(tmp_path, no_ray_left, monkeypatch):
    import time

    from harness.cli import main
    from harness.scale import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 2.0)
    t0 = time.monotonic()
    code = main(_argv({**SMALL, "quant": "rtn-w8", "report_dir": tmp_path, "ray_address": "127.0.0.1:1"}))
    assert code == 4 and time.monotonic() - t0 < 60
