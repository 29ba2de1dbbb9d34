"""KV-cache quantization: the baseline's own weights, read through transformers' QuantizedCache.

The handler returns the model to run; how its cache is made is decided by the measurement
(harness.kvcache.make_cache) from the configuration's KV part, so corpus passes (prefill in
chunks) and generation both go through the quantized cache.
"""
from __future__ import annotations

import importlib.util

from ..errors import MissingBackend, QuantsinkError
from .configs import ComboConfig, KVConfig

_BACKEND_PACKAGES = {"quanto": ("optimum.quanto", "pip install optimum-quanto"), "hqq": ("hqq", "pip install hqq")}


def check_backend(cfg: KVConfig) -> None:
    pkg, install = _BACKEND_PACKAGES[cfg.backend]
    top = pkg.split(".")[0]
    if importlib.util.find_spec(top) is None or importlib.util.find_spec(pkg) is None:
        raise MissingBackend(f"kv-{cfg.backend}", pkg, install)


def check_full_attention(model) -> None:
    """transformers' QuantizedCache supports only full-attention layers (no sliding windows)."""
    from transformers.cache_utils import get_layer_types_and_kwargs

    types, _ = get_layer_types_and_kwargs(model.config.get_text_config(decoder=True))
    bad = set(types) - {"full_attention"}
    if bad:
        raise QuantsinkError(f"{type(model).__name__} has {', '.join(sorted(bad))} layers; transformers' quantized "
                             f"KV cache supports only full attention")


def check_group(model, cfg: KVConfig) -> None:
    """quanto and hqq group the flattened [B, kvH, T, d] tensor of every cache update: the group
    must divide kvH x d, or an update whose B x T is odd fails deep inside the backend."""
    c = model.config.get_text_config(decoder=True)
    heads = getattr(c, "num_attention_heads", None) or getattr(c, "n_head", None)
    kv_heads = getattr(c, "num_key_value_heads", None) or heads
    head_dim = getattr(c, "head_dim", None) or (getattr(c, "hidden_size", None) or c.n_embd) // heads
    width = kv_heads * head_dim
    if width % cfg.group:
        ok = [g for g in (128, 64, 32, 16, 8) if width % g == 0]
        raise QuantsinkError(f"{cfg.spec}: group {cfg.group} does not divide KV heads x head size = {width} of "
                             f"{type(model).__name__}; use a group that does, e.g. "
                             f"{cfg.spec.replace(f'g{cfg.group}', '').replace(f'-w{cfg.nbits}', f'-w{cfg.nbits}g{ok[0]}')}"
                             if ok else f"{cfg.spec}: KV width {width} has no usable group size")


def quantize(cfg: KVConfig, ctx):
    check_backend(cfg)
    model = ctx.shared_baseline() if ctx.shared_baseline is not None else ctx.load_baseline()
    check_full_attention(model)
    check_group(model, cfg)
    ctx.info["kv_cache"] = {"backend": cfg.backend, "nbits": cfg.nbits, "q_group_size": cfg.group,
                            "residual_length": cfg.residual, "weights": "baseline (shared)"}
    return model


def quantize_combo(cfg: ComboConfig, ctx):
    from .registry import METHODS

    check_backend(cfg.kv)
    model = METHODS[cfg.weights.method].load_handler()(cfg.weights, ctx)
    check_full_attention(model)
    check_group(model, cfg.kv)
    ctx.info["kv_cache"] = {"backend": cfg.kv.backend, "nbits": cfg.kv.nbits, "q_group_size": cfg.kv.group,
                            "residual_length": cfg.kv.residual}
    return model
