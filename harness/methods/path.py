"""An already quantized checkpoint (its own quantization_config), compared as one configuration."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError
from .base import QuantConfig, class_of_bits
from .registry import register_handler, register_method


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
        from ..models import HUB_ID, check_local_dir

        p = Path(self.path).expanduser()
        if p.is_dir():
            try:
                check_local_dir(p, model_info.allow_pickle)
            except UsageError as e:
                raise UsageError(f"--quant {self.spec}: {e}") from None
            return
        if HUB_ID.match(self.path) and not self.path.startswith((".", "/", "~")):
            return
        raise UsageError(f"--quant {self.spec}: no such checkpoint directory ({p}); give path:DIR with a "
                         f"config.json and *.safetensors, or path:ORG/NAME for a Hub id")

    def cache_identity(self) -> dict | None:
        """A local checkpoint: the content hash of its files; a Hub id: not cached (not on disk yet)."""
        from ..models import checkpoint_sha256

        p = Path(self.path).expanduser()
        return {"method": "path", "sha256": checkpoint_sha256(p)} if p.is_dir() else None

    @classmethod
    def parse(cls, spec: str, tokens: list[str]) -> "PathConfig":
        if not tokens or not tokens[0]:
            raise UsageError("path: needs a directory or Hub id, e.g. path:./my-gptq-model")
        return cls(path=tokens[0])


def path_bits(path: str) -> int | None:
    """Bit-width recorded in a local checkpoint's config.json, if any (no model load)."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return None
    try:
        q = json.loads(cfg.read_text()).get("quantization_config") or {}
    except (OSError, ValueError):
        return None
    if q.get("load_in_8bit"):
        return 8
    if q.get("load_in_4bit"):
        return 4
    b = q.get("bits") or q.get("nbits") or q.get("w_bit") or q.get("weights")
    return int(b) if isinstance(b, int) else None


@register_handler(PathConfig)
def quantize(cfg: PathConfig, ctx):
    from ..models import load_model, resolve_model

    src = resolve_model(cfg.path, allow_pickle=ctx.allow_pickle)
    ctx.info["path"] = src.to_dict()
    ctx.progress(f"loading pre-quantized checkpoint {cfg.path}")
    return load_model(src.local_dir, dtype=ctx.dtype, device=ctx.device,
                      allow_pickle=ctx.allow_pickle, trust_remote_code=ctx.trust_remote_code,
                      device_map=ctx.device)
