"""A quantized KV cache that evicts (StreamingLLM's sink + window over a KIVI-style quantized cache).

transformers' QuantizedCache cannot drop positions: its older tokens live in one backend tensor
(quanto or hqq) whose groups span the flattened [B, kvH, T, d] layout (quanto: runs of `group`
consecutive elements, across tokens when the group exceeds the head size; hqq: `group` elements
strided through the whole tensor), so a token's quantized form depends on its neighbours.
Each layer here keeps the backend's own `_quantize`/`_dequantize` and its update rule
(QuantizedLayer.update: attention reads [dequantized older tokens, full-precision residual, new];
once residual + new reach `residual_length` everything is quantized again as one tensor, else the
new tokens join the residual) and applies eviction where the layer stores: the caller names, before
each forward call, which of the positions attention is about to read stay (`set_keep`); the layer
returns all of them to attention and stores only those. A flush quantizes the kept positions;
without a flush, quantized positions that are dropped make the layer quantize its kept older
positions again from their dequantized values (the same call a flush makes on them).
With nothing evicted the layer is transformers' QuantizedLayer exactly (tests/scenarios checks it
against QuantizedCache, and the eviction against a hand-built reference).
"""

from __future__ import annotations

import torch

from harness.measure.kvcache import KVSpec, make_cache


def evicting_quantized_cache(model, kv: KVSpec):
    """transformers' QuantizedCache for kv whose layers store only the positions set_keep names."""
    cache = make_cache(model, kv)
    for layer in cache.layers:
        if not hasattr(layer, "residual_length"):
            raise TypeError(f"{type(layer).__name__} is not a group-wise quantized cache layer")
        layer._keep = None
        layer._n_quantized = 0
        layer.update = _bind(layer)
    return cache


def kv_record(kv: KVSpec) -> dict:
    """How a scenario's quantized cache was built, for its results record."""
    return {
        "backend": kv.backend,
        "nbits": kv.nbits,
        "q_group_size": kv.group,
        "residual_length": kv.residual,
        "cache": "transformers' quantized cache layers (the backend's own quantize/dequantize, residual and "
        "flush rule) storing only the positions the policy keeps (harness.measure.evicting)",
    }


def set_keep(cache, keep: torch.Tensor | None) -> None:
    """keep [S] bool over the positions the next update returns (cached ones, then the new ones):
    which of them every layer stores afterwards (None: all)."""
    for layer in cache.layers:
        layer._keep = keep


def quantized_count(cache) -> int:
    """Cached positions the next update hands attention dequantized (the oldest ones, the same in every layer)."""
    return int(cache.layers[0]._n_quantized)


def _bind(layer):
    def update(key_states, value_states, *args, **kwargs):
        return _update(layer, key_states, value_states)

    return update


def _update(layer, key_states: torch.Tensor, value_states: torch.Tensor):
    """QuantizedLayer.update with the stored positions cut to layer._keep (see the module's docstring)."""
    first = not layer.is_initialized
    if first:
        layer.lazy_initialization(key_states, value_states)
    n_q = layer._n_quantized
    if n_q:
        dk, dv = layer._dequantize(layer._quantized_keys), layer._dequantize(layer._quantized_values)
        dk, dv = layer._apply_pending_reorder(dk, dv)
    else:
        dk = dv = key_states[..., :0, :]
    res_k = layer.keys if layer.keys.dim() == 4 else key_states[..., :0, :]
    res_v = layer.values if layer.values.dim() == 4 else value_states[..., :0, :]
    keys = torch.cat([dk.to(key_states.dtype), res_k, key_states], dim=-2)
    values = torch.cat([dv.to(value_states.dtype), res_v, value_states], dim=-2)
    S = keys.shape[-2]
    keep = layer._keep
    if keep is None:
        keep = torch.ones(S, dtype=torch.bool)
    if keep.shape != (S,):
        raise ValueError(f"keep names {tuple(keep.shape)} positions, the layer returns {S}")
    keep = keep.to(keys.device)
    n_r = res_k.shape[-2]
    kq, kr, kn = keep[:n_q], keep[n_q : n_q + n_r], keep[n_q + n_r :]
    n_fp = int(kr.sum()) + int(kn.sum())
    if first or n_fp >= layer.residual_length:  # transformers quantizes the first update whole, and on every flush
        k_store, v_store = keys[..., keep, :], values[..., keep, :]
        _store(layer, k_store, v_store)
        layer.keys = key_states.new_empty(0)
        layer.values = value_states.new_empty(0)
    else:
        if not bool(kq.all()):
            _store(layer, dk[..., kq, :].to(key_states.dtype), dv[..., kq, :].to(value_states.dtype))
        layer.keys = torch.cat([res_k[..., kr, :], key_states[..., kn, :]], dim=-2)
        layer.values = torch.cat([res_v[..., kr, :], value_states[..., kn, :]], dim=-2)
    layer._pending_beam_idx = None
    layer.cumulative_length = int(keep.sum())  # what the model's mask sizes count: the positions held
    return keys, values


def _store(layer, k: torch.Tensor, v: torch.Tensor) -> None:
    """Quantize k, v [B, kvH, S, d] as the layer's older positions (none when S is 0)."""
    layer._n_quantized = k.shape[-2]
    if k.shape[-2] == 0:
        layer._quantized_keys = layer._quantized_values = None
        return
    layer._quantized_keys = layer._quantize(k.contiguous(), axis=layer.axis_key)
    layer._quantized_values = layer._quantize(v.contiguous(), axis=layer.axis_value)
