"""Capture of per-layer attention probabilities and hidden states through forward hooks.

Hooks live only inside the `capture` context manager and are always removed. Each
layer's tensors go to a callback as soon as the layer has run, so the caller can
reduce them on the spot: attention maps are never held for all layers at once.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import torch

from harness.errors import CaptureError
from harness.models.structure import attention_modules, decoder_layers


def ensure_eager(model) -> None:
    """Attention probabilities come back only from eager attention (SDPA returns none)."""
    impl = getattr(model.config, "_attn_implementation", None)
    if impl != "eager":
        model.set_attn_implementation("eager")


@contextlib.contextmanager
def capture(
    model,
    on_attn: Callable[[int, torch.Tensor], None] | None = None,
    on_hidden: Callable[[int, torch.Tensor], None] | None = None,
):
    """Call on_attn(layer, probs [B,H,T,T]) and on_hidden(layer, hidden [B,T,D]) during forwards.

    Raises CaptureError if a layer ran without returning attention probabilities.
    """
    handles = []

    def attn_hook(idx):
        def hook(module, args, output):
            probs = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if not isinstance(probs, torch.Tensor) or probs.dim() != 4:
                raise CaptureError(
                    f"layer {idx} ({type(module).__name__}) returned no attention probabilities "
                    f"(attn_implementation={getattr(model.config, '_attn_implementation', '?')}); "
                    f"eager attention is required"
                )
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
        yield
    finally:
        for h in handles:
            h.remove()


# ---- per-thread routing: one set of hooks per model, each thread sees its own context ----

_TLS = threading.local()


def current():
    """The calling thread's capture context (None outside a measurement)."""
    return getattr(_TLS, "ctx", None)


@contextlib.contextmanager
def bound(ctx):
    """Bind ctx to the calling thread for the duration of the block."""
    old = current()
    _TLS.ctx = ctx
    try:
        yield ctx
    finally:
        _TLS.ctx = old


def _cache_of(kwargs):
    c = kwargs.get("cache")
    return c if c is not None else kwargs.get("past_key_values")


@contextlib.contextmanager
def routed(model, attention: bool = True):
    """Install hooks on model that forward to the calling thread's context:
    ctx.on_call(row0) before each model call (row0 = positions already in the cache),
    ctx.on_attn(layer, probs) and ctx.on_hidden(layer, hidden) as each layer runs."""

    def pre(module, args, kwargs):
        ctx = current()
        if ctx is not None:
            cache = _cache_of(kwargs)
            ctx.on_call(int(cache.get_seq_length()) if cache is not None else 0)

    def on_attn(i, probs):
        ctx = current()
        if ctx is not None:
            ctx.on_attn(i, probs)

    def on_hidden(i, h):
        ctx = current()
        if ctx is not None:
            ctx.on_hidden(i, h)

    handle = model.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        with capture(model, on_attn if attention else None, on_hidden):
            yield
    finally:
        handle.remove()
