"""Round-to-nearest fake quantization in pure torch: the reference that runs everywhere.

Weights are replaced by their dequantized values (same dtype), so the model runs
through the normal kernels; the values lie on the b-bit grid of their group.
"""
from __future__ import annotations

import torch

from ..errors import UsageError
from .base import decoder_layers
from .configs import RTNConfig


def fake_quantize(w: torch.Tensor, bits: int, group: int | None = None, asym: bool = False) -> torch.Tensor:
    """Quantize-dequantize w [out, in] per output row, in groups of `group` input columns.

    Symmetric: scale = max|w| / (2^(b-1) - 1), levels -(2^(b-1)-1) .. 2^(b-1)-1.
    Asymmetric: scale = (max - min) / (2^b - 1) with an integer zero point, levels 0 .. 2^b-1.
    Either way |w - q(w)| <= scale / 2 for every element.
    """
    out_f, in_f = w.shape
    g = group or in_f
    if in_f % g:
        raise ValueError(f"group size {g} does not divide {in_f}")
    x = w.detach().float().reshape(out_f, in_f // g, g)
    if asym:
        lo, hi = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
        qmax = 2 ** bits - 1
        scale = ((hi - lo) / qmax).clamp_min(1e-12)
        zero = torch.round(-lo / scale)
        q = torch.clamp(torch.round(x / scale) + zero, 0, qmax)
        deq = (q - zero) * scale
    else:
        qmax = 2 ** (bits - 1) - 1
        scale = (x.abs().amax(-1, keepdim=True) / qmax).clamp_min(1e-12)
        deq = torch.clamp(torch.round(x / scale), -qmax, qmax) * scale
    return deq.reshape(out_f, in_f).to(w.dtype)


def quantizable_weights(model):
    """(name, module, weight [out,in] view-maker) for every Linear / GPT-2 Conv1D in decoder blocks."""
    import torch.nn as nn

    out = []
    for i, layer in enumerate(decoder_layers(model)):
        for name, mod in layer.named_modules():
            if isinstance(mod, nn.Linear):
                out.append((f"layers.{i}.{name}", mod, False))
            elif type(mod).__name__ == "Conv1D":  # GPT-2 stores weight as [in, out]
                out.append((f"layers.{i}.{name}", mod, True))
    return out


def check_groups(model, cfg: RTNConfig) -> None:
    if not cfg.group:
        return
    for name, mod, transposed in quantizable_weights(model):
        in_f = mod.weight.shape[0] if transposed else mod.weight.shape[1]
        if in_f % cfg.group:
            raise UsageError(f"{cfg.spec}: group size {cfg.group} does not divide the input width "
                             f"{in_f} of {name}; pick a group size that divides {in_f}")


@torch.no_grad()
def apply_rtn(model, cfg: RTNConfig):
    check_groups(model, cfg)
    for _, mod, transposed in quantizable_weights(model):
        w = mod.weight.data
        if transposed:
            mod.weight.data = fake_quantize(w.t(), cfg.w_bits, cfg.group, cfg.asym).t().contiguous()
        else:
            mod.weight.data = fake_quantize(w, cfg.w_bits, cfg.group, cfg.asym)
    return model


def quantize(cfg: RTNConfig, ctx):
    return apply_rtn(ctx.load_baseline(), cfg)
