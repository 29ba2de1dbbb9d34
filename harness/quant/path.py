"""An already quantized checkpoint (its own quantization_config), compared as one configuration."""
from __future__ import annotations

from .configs import PathConfig


def quantize(cfg: PathConfig, ctx):
    from ..models import load_model, resolve_model

    src = resolve_model(cfg.path, allow_pickle=ctx.allow_pickle)
    ctx.info["path"] = src.to_dict()
    ctx.progress(f"loading pre-quantized checkpoint {cfg.path}")
    return load_model(src.local_dir, dtype=ctx.dtype, device=ctx.device,
                      allow_pickle=ctx.allow_pickle, trust_remote_code=ctx.trust_remote_code,
                      device_map=ctx.device)
