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


def quantize(cfg: KVConfig, ctx):
    check_backend(cfg)
    model = ctx.shared_baseline() if ctx.shared_baseline is not None else ctx.load_baseline()
    check_full_attention(model)
    ctx.info["kv_cache"] = {"backend": cfg.backend, "nbits": cfg.nbits, "q_group_size": cfg.group,
                            "residual_length": cfg.residual, "weights": "baseline (shared)"}
    return model


def quantize_combo(cfg: ComboConfig, ctx):
    from .registry import METHODS

    check_backend(cfg.kv)
    model = METHODS[cfg.weights.method].load_handler()(cfg.weights, ctx)
    check_full_attention(model)
    ctx.info["kv_cache"] = {"backend": cfg.kv.backend, "nbits": cfg.kv.nbits, "q_group_size": cfg.kv.group,
                            "residual_length": cfg.kv.residual}
    return model
