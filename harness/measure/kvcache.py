"""KV caches for measurement passes and generation: plain, or transformers' quantized cache.

Every pass the harness makes goes through a cache object it created itself, so it can
watch what attention reads from the cache (the sink's key and value) and, for the
sink-protected variant, put the baseline's sink K/V back after the cache has quantized it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class KVSpec:
    """transformers' QuantizedCache settings (KIVI-style: the newest `residual` tokens stay
    in full precision, older ones are quantized per channel in groups)."""

    backend: str  # quanto | hqq
    nbits: int
    group: int = 64
    residual: int = 128  # transformers' default residual_length


def cache_kwarg(model) -> str:
    """transformers 5 renamed past_key_values to cache; older model classes keep the old name."""
    params = inspect.signature(model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def make_cache(model, kv: KVSpec | None):
    """A fresh cache for one pass or one generate call."""
    from transformers import DynamicCache, QuantizedCache

    if kv is None:
        return DynamicCache(config=model.config)
    # Keys and values are quantized along the channel axis of [B, H, T, d] as in KIVI;
    # quanto wants axis 0/-1, hqq 0/1: 0 is valid for both and is transformers' default.
    return QuantizedCache(
        backend=kv.backend, config=model.config, nbits=kv.nbits, q_group_size=kv.group, residual_length=kv.residual
    )


def quantized_positions(layer) -> int:
    """Positions a quantized cache layer will hand back dequantized on its next update (0 for a
    plain layer, or before its first update, which returns its input as it is).

    transformers' QuantizedLayer returns [dequantized older tokens, full-precision residual, new]."""
    if not hasattr(layer, "residual_length") or not getattr(layer, "is_initialized", False):
        return 0
    residual = layer.keys.shape[-2] if layer.keys is not None and layer.keys.dim() == 4 else 0
    return int(layer.cumulative_length) - residual


def watch(cache, on_update: Callable[..., tuple | None], keep: bool = True, reads: dict | None = None) -> None:
    """Wrap each layer's update: on_update(layer, keys, values, n_new) sees what attention will
    read ([B, kvH, S, d]) and how many positions this call added, and may return replacements.

    keep=False (a pass of one call that will never read the cache again): each layer drops its
    stored keys and values once attention has them, so the cache never holds all layers.
    reads: a dict whose "quantized" and "total" counts grow by the (query, key) reads of each update
    (causal within the new positions), so a run can say how much of attention read quantized K/V.
    """
    for i, layer in enumerate(cache.layers):
        orig = layer.update

        def update(key_states, value_states, *args, _orig=orig, _i=i, _layer=layer, **kwargs):
            q_old = quantized_positions(_layer) if reads is not None else 0
            k, v = _orig(key_states, value_states, *args, **kwargs)
            if reads is not None:
                c = key_states.shape[-2]
                reads["quantized"] = reads.get("quantized", 0) + c * q_old
                reads["total"] = reads.get("total", 0) + c * (k.shape[-2] - c) + c * (c + 1) // 2
            new = on_update(_i, k, v, key_states.shape[-2])
            if not keep:
                _layer.keys = _layer.values = None
            return new if new is not None else (k, v)

        layer.update = update
