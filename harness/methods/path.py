"""An already quantized checkpoint (its own quantization_config), compared as one configuration.

The format is the config's `quant_method`; each known format's bit width is read from its own
config (FORMATS), so the policy class needs no --bit-class. An unknown format is a usage error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError
from harness.methods.base import QuantConfig, class_of_bits
from harness.methods.registry import register_handler, register_method
from harness.models.sources import (
    HUB_ID,
    check_local_dir,
    checkpoint_sha256,
    load_model,
    resolve_model,
)


@register_method("path", examples="path:DIR_OR_HUB_ID")
@dataclass(frozen=True)
class PathConfig(QuantConfig):
    """An already quantized checkpoint (local directory or Hub id) compared with the baseline."""

    path: str = ""

    @property
    def spec(self) -> str:
        return f"path:{self.path}"

    @property
    def bit_class(self) -> str | None:
        bits = path_bits(self.path)
        return class_of_bits(bits) if bits is not None else None

    def preflight(self, model_info) -> None:
        """A local checkpoint must exist with a config and weights (pickle only when allowed); a Hub id
        is resolved when the configuration runs."""

        p = Path(self.path).expanduser()
        if p.is_dir():
            try:
                check_local_dir(p, model_info.allow_pickle)
            except UsageError as e:
                raise UsageError(f"--quant {self.spec}: {e}") from None
            checkpoint_format(p, self.spec)
            return
        if HUB_ID.match(self.path) and not self.path.startswith((".", "/", "~")):
            return
        raise UsageError(
            f"--quant {self.spec}: no such checkpoint directory ({p}); give path:DIR with a "
            f"config.json and *.safetensors, or path:ORG/NAME for a Hub id"
        )

    def cache_identity(self) -> dict | None:
        """A local checkpoint: the content hash of its files; a Hub id: not cached (not on disk yet)."""

        p = Path(self.path).expanduser()
        return {"method": "path", "sha256": checkpoint_sha256(p)} if p.is_dir() else None

    @classmethod
    def parse(cls, spec: str, tokens: list[str]) -> PathConfig:
        if not tokens or not tokens[0]:
            raise UsageError("path: needs a directory or Hub id, e.g. path:./my-gptq-model")
        return cls(path=tokens[0])


def _ct_bits(q: dict):
    """compressed-tensors: the narrowest weight width over its config groups."""
    widths = [
        g["weights"].get("num_bits")
        for g in (q.get("config_groups") or {}).values()
        if isinstance(g, dict) and isinstance(g.get("weights"), dict)
    ]
    widths = [w for w in widths if isinstance(w, int)]
    return min(widths) if widths else None


def _hqq_bits(q: dict):
    return ((q.get("quant_config") or {}).get("weight_quant_params") or {}).get("nbits") or q.get("nbits")


# quant_method in config.json -> the weight bit width its own config records (None: not recorded)
FORMATS = {
    "awq": lambda q: q.get("bits") or q.get("w_bit"),
    "bitsandbytes": lambda q: 8 if q.get("load_in_8bit") else 4 if q.get("load_in_4bit") else None,
    "compressed-tensors": _ct_bits,
    "fbgemm_fp8": lambda q: 8,
    "fp8": lambda q: 8,
    "gptq": lambda q: q.get("bits"),
    "hqq": _hqq_bits,
    "quanto": lambda q: {"int8": 8, "float8": 8, "int4": 4, "int2": 2}.get(q.get("weights")),
    "torchao": lambda q: None,
}


def _quant_config(path) -> dict | None:
    """The checkpoint's quantization_config ({} for a plain checkpoint), None when config.json is unreadable."""
    cfg = Path(path).expanduser() / "config.json"
    if not cfg.is_file():
        return None
    try:
        return json.loads(cfg.read_text()).get("quantization_config") or {}
    except (OSError, ValueError, AttributeError):
        return None


def _format_of(q: dict) -> str | None:
    method = str(q.get("quant_method") or "").lower()
    if not method and (q.get("load_in_8bit") or q.get("load_in_4bit")):
        return "bitsandbytes"
    return method or None


def checkpoint_format(path, spec: str) -> str | None:
    """The checkpoint's quantization format (None: a plain checkpoint); an unknown one is a usage error."""
    q = _quant_config(path)
    if not q:
        return None
    fmt = _format_of(q)
    if fmt not in FORMATS:
        raise UsageError(
            f"--quant {spec}: the checkpoint's quantization format '{fmt or q}' is not one quantsink "
            f"knows; known formats: {', '.join(sorted(FORMATS))} (or a plain checkpoint)"
        )
    return fmt


def path_bits(path: str) -> int | None:
    """Weight bit width recorded in a local checkpoint's config.json by its format (no model load)."""
    q = _quant_config(path)
    fmt = _format_of(q) if q else None
    if fmt not in FORMATS:
        return None
    b = FORMATS[fmt](q)
    return int(b) if isinstance(b, int) and not isinstance(b, bool) else None


@register_handler(PathConfig)
def quantize(cfg: PathConfig, ctx):
    src = resolve_model(cfg.path, allow_pickle=ctx.allow_pickle)
    ctx.info["path"] = src.to_dict()
    ctx.info["format"] = checkpoint_format(src.local_dir, cfg.spec)
    ctx.progress(f"loading pre-quantized checkpoint {cfg.path}")
    return load_model(
        src.local_dir,
        dtype=ctx.dtype,
        device=ctx.device,
        allow_pickle=ctx.allow_pickle,
        trust_remote_code=ctx.trust_remote_code,
        device_map=ctx.device,
    )
