"""Effective bits per weight and model size of a configuration, for every method.

Bits are counted per quantizable Linear of the decoder (structure.linear_modules) from what the
method stores for it: the quantized values plus its scales and zero points, e.g. RTN/GPTQ with
group g store b bits per weight and an fp16 scale (GPTQ also a b-bit zero) per g weights; bnb NF4
4 bits and an fp32 absmax per 64; int8 8 bits and an fp32 scale per output row. A config class may
state its own `bits_per_weight` (a float, or a function of the input width). Kept modules
(`-keep:`) and everything outside the Linears (embeddings, norms, head) count at the baseline's
precision. Methods without quantized weights (KV-cache, faults) count the baseline's bits.
"""

from __future__ import annotations

from harness.methods.keep import kept
from harness.methods.path import path_bits
from harness.models.structure import input_width, linear_modules

_DTYPE_BITS = {"fp32": 32, "fp16": 16, "bf16": 16}


def _weight_config(cfg):
    """(the configuration that quantizes weights or None, names kept at baseline precision)."""

    names = kept(cfg)
    while getattr(cfg, "inner", None) is not None or getattr(cfg, "weights", None) is not None:
        cfg = getattr(cfg, "inner", None) or cfg.weights
    if cfg.method in ("kv", "fault"):
        return None, names
    return cfg, names


def linear_bits(cfg, width: int) -> float | None:
    """Stored bits per weight of one Linear with `width` inputs quantized by cfg (None: not quantized)."""
    own = getattr(cfg, "bits_per_weight", None)
    if own is not None:
        return float(own(width) if callable(own) else own)
    m = cfg.method
    if m == "bnb":
        return 8 + 32 / width if cfg.kind == "int8" else 4 + 32 / 64
    if m == "path":
        b = path_bits(cfg.path)
        return float(b) if b is not None else None
    b = cfg.bits
    if b is None:
        return None
    g = cfg.group_size if cfg.group_size and cfg.group_size > 0 else width
    extra = 16 + (b if m == "gptq" or getattr(cfg, "asym", False) else 0)  # fp16 scale (+ a b-bit zero point)
    return b + extra / g


def footprint(cfg, model, dtype: str = "fp32") -> dict:
    """bits_per_weight (over the decoder's Linears) and model_size_mb (all parameters) of cfg, counted on
    the baseline model's shapes; quantized_params: Linear weights the method quantizes."""

    base_bits = _DTYPE_BITS.get(dtype, 32)
    wcfg, names = _weight_config(cfg)
    prefixes = tuple(n + "." for n in names)
    lin_params = lin_bits = quantized = 0
    seen = set()
    for name, mod, transposed in linear_modules(model):
        n = mod.weight.numel()
        seen.add(id(mod.weight))
        lin_params += n
        per = linear_bits(wcfg, input_width(mod, transposed)) if wcfg is not None else None
        keep = name in names or name.startswith(prefixes)
        if per is None or keep:
            lin_bits += n * base_bits
        else:
            lin_bits += n * per
            quantized += n
    other = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values() if id(p) not in seen)
    total_bits = lin_bits + other * base_bits
    return {
        "bits_per_weight": lin_bits / lin_params if lin_params else None,
        "model_size_mb": total_bits / 8 / 1e6,
        "quantized_params": quantized,
        "linear_params": lin_params,
    }


def module_params(model) -> dict[str, int]:
    """Weights of each Linear in the decoder, by keep name."""

    return {name: mod.weight.numel() for name, mod, _ in linear_modules(model)}


def params_of(names, sizes: dict[str, int]) -> int:
    """Linear weights covered by keep names (a layer or a parent module covers every Linear inside it)."""
    cover = set()
    for n in names:
        cover |= {k for k in sizes if k == n or k.startswith(n + ".")}
    return sum(sizes[k] for k in cover)
