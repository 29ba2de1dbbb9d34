"""Model structure in one place: decoder layers, attention modules, quantizable linears, shape.

A small table per `model_type` names where each architecture keeps its decoder layers and
attention; an unknown architecture falls back to a guess (the first ModuleList as long as the
layer count, an attention child with a usual name). Everything else asks this module.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import CaptureError


@dataclass(frozen=True)
class Layout:
    """Where an architecture keeps its blocks: dotted path of the layer list, attention child name."""

    layers: str
    attention: str


LAYOUTS: dict[str, Layout] = {
    "llama": Layout("model.layers", "self_attn"),
    "qwen2": Layout("model.layers", "self_attn"),
    "qwen3": Layout("model.layers", "self_attn"),
    "mistral": Layout("model.layers", "self_attn"),
    "gemma": Layout("model.layers", "self_attn"),
    "gemma2": Layout("model.layers", "self_attn"),
    "phi3": Layout("model.layers", "self_attn"),
    "gpt2": Layout("transformer.h", "attn"),
}
_ATTN_NAMES = ("self_attn", "attn", "attention", "self_attention")


@dataclass(frozen=True)
class ModelShape:
    """Counts read from a config (text part for multimodal configs)."""

    num_layers: int | None
    num_heads: int | None
    num_kv_heads: int | None
    head_dim: int | None
    hidden_size: int | None

    def to_dict(self) -> dict:
        return {"num_layers": self.num_layers, "num_heads": self.num_heads}


def _first(cfg, *names):
    for n in names:
        v = getattr(cfg, n, None)
        if v is not None:
            return v
    return None


def shape_of(config) -> ModelShape:
    """Layer, head, KV-head counts, head size and width of a transformers config."""
    cfg = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    layers = _first(cfg, "num_hidden_layers", "n_layer")
    heads = _first(cfg, "num_attention_heads", "n_head")
    hidden = _first(cfg, "hidden_size", "n_embd")
    kv = _first(cfg, "num_key_value_heads") or heads
    head_dim = _first(cfg, "head_dim") or (hidden // heads if hidden and heads else None)
    return ModelShape(layers, heads, kv, head_dim, hidden)


def _get_path(model, dotted: str):
    obj = model
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def decoder_layers(model):
    """The ModuleList of decoder blocks (length == number of hidden layers)."""
    import torch.nn as nn

    n = shape_of(model.config).num_layers
    layout = LAYOUTS.get(getattr(model.config, "model_type", ""))
    if layout is not None:
        found = _get_path(model, layout.layers)
        if isinstance(found, nn.ModuleList) and len(found) == n:
            return found
    for _, mod in model.named_modules():  # fallback: the first list as long as the layer count
        if isinstance(mod, nn.ModuleList) and len(mod) == n:
            return mod
    raise CaptureError(f"cannot find the decoder layers of {type(model).__name__}")


def attention_modules(model) -> list:
    """The attention module of every decoder layer, in order."""
    layout = LAYOUTS.get(getattr(model.config, "model_type", ""))
    names = (layout.attention,) if layout is not None else _ATTN_NAMES
    out = []
    for i, layer in enumerate(decoder_layers(model)):
        mod = next((getattr(layer, n) for n in names if hasattr(layer, n)), None)
        if mod is None:
            raise CaptureError(
                f"{type(model).__name__}: decoder layer {i} has no attention module "
                f"named one of {names}; this architecture is not supported"
            )
        out.append(mod)
    return out


def linear_modules(model) -> list[tuple[str, object, bool]]:
    """(name, module, transposed) for every Linear / GPT-2 Conv1D in the decoder blocks.

    Names are `layers.<i>.<path in the block>`; transposed means the weight is stored [in, out].
    """
    import torch.nn as nn

    out = []
    for i, layer in enumerate(decoder_layers(model)):
        for name, mod in layer.named_modules():
            if isinstance(mod, nn.Linear):
                out.append((f"layers.{i}.{name}", mod, False))
            elif type(mod).__name__ == "Conv1D":  # GPT-2 stores weight as [in, out]
                out.append((f"layers.{i}.{name}", mod, True))
    return out


def input_width(mod, transposed: bool) -> int:
    """Input features of a linear module (the axis quantization groups run along)."""
    return mod.weight.shape[0] if transposed else mod.weight.shape[1]


def meta_model(local_dir, trust_remote_code: bool = False):
    """The checkpoint's architecture on the meta device (no weights read): for shape checks."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(local_dir, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(cfg, trust_remote_code=trust_remote_code)
