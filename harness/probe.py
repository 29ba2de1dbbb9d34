"""Capture of per-layer attention probabilities and hidden states through forward hooks.

Hooks live only inside the `capture` context manager and are always removed. Each
layer's tensors go to a callback as soon as the layer has run, so the caller can
reduce them on the spot: attention maps are never held for all layers at once.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import torch

from .errors import CaptureError
from .quant.base import decoder_layers

_ATTN_NAMES = ("self_attn", "attn", "attention", "self_attention")


def attention_modules(model) -> list[torch.nn.Module]:
    out = []
    for i, layer in enumerate(decoder_layers(model)):
        mod = next((getattr(layer, n) for n in _ATTN_NAMES if hasattr(layer, n)), None)
        if mod is None:
            raise CaptureError(f"{type(model).__name__}: decoder layer {i} has no attention module "
                               f"named one of {_ATTN_NAMES}; this architecture is not supported")
        out.append(mod)
    return out


def ensure_eager(model) -> None:
    """Attention probabilities come back only from eager attention (SDPA returns none)."""
    impl = getattr(model.config, "_attn_implementation", None)
    if impl != "eager":
        model.set_attn_implementation("eager")


@contextlib.contextmanager
def capture(model, on_attn: Callable[[int, torch.Tensor], None] | None = None,
            on_hidden: Callable[[int, torch.Tensor], None] | None = None):
    """Call on_attn(layer, probs [B,H,T,T]) and on_hidden(layer, hidden [B,T,D]) during forwards.

    Raises CaptureError if a layer ran without returning attention probabilities.
    """
    handles = []
    seen: set[int] = set()

    def attn_hook(idx):
        def hook(module, args, output):
            probs = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if not isinstance(probs, torch.Tensor) or probs.dim() != 4:
                raise CaptureError(
                    f"layer {idx} ({type(module).__name__}) returned no attention probabilities "
                    f"(attn_implementation={getattr(model.config, '_attn_implementation', '?')}); "
                    f"eager attention is required")
            seen.add(idx)
            on_attn(idx, probs)
        return hook

    def hidden_hook(idx):
        def hook(module, args, output):
            on_hidden(idx, output[0] if isinstance(output, tuple) else output)
        return hook

    try:
        if on_attn is not None:
            ensure_eager(model)
            for i, mod in enumerate(attention_modules(model)):
                handles.append(mod.register_forward_hook(attn_hook(i)))
        if on_hidden is not None:
            for i, layer in enumerate(decoder_layers(model)):
                handles.append(layer.register_forward_hook(hidden_hook(i)))
        yield seen
    finally:
        for h in handles:
            h.remove()
