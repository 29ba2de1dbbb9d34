"""Round-to-nearest fake quantization in pure torch: the reference that runs everywhere.

Weights are replaced by their dequantized values (same dtype), so the model runs through the
normal kernels; the values lie on the b-bit grid of their group.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import UsageError
from harness.methods.base import WG, QuantConfig, bad_spec
from harness.methods.registry import register_handler, register_method
from harness.models.structure import input_width, linear_modules


@register_method(
    "rtn",
    examples="rtn-w{2..8}[gGROUP][-asym], e.g. rtn-w8, rtn-w4g32, rtn-w3g64-asym",
    packages=("torch",),
    install="pip install torch",
)
@dataclass(frozen=True)
class RTNConfig(QuantConfig):
    """Pure-torch round-to-nearest fake quantization of every decoder Linear weight."""

    w_bits: int = 4
    group: int | None = None  # None: one scale per output channel
    asym: bool = False

    @property
    def spec(self) -> str:
        g = f"g{self.group}" if self.group else ""
        return f"rtn-w{self.w_bits}{g}" + ("-asym" if self.asym else "")

    @property
    def bits(self) -> int:
        return self.w_bits

    @property
    def group_size(self) -> int | None:
        return self.group

    @classmethod
    def parse(cls, spec: str, tokens: list[str]) -> RTNConfig:
        m = WG.match(tokens[0]) if tokens else None
        if not m:
            raise bad_spec(spec, "expected rtn-wBITS[gGROUP][-asym]", cls.examples)
        bits, group = int(m.group(1)), m.group(2)
        if not 2 <= bits <= 8:
            raise bad_spec(spec, f"rtn takes 2 to 8 bits, not {bits}", cls.examples)
        if group is not None and int(group) < 1:
            raise bad_spec(spec, "group size must be positive", cls.examples)
        opts = tokens[1:]
        if any(o != "asym" for o in opts):
            raise bad_spec(
                spec, f"unknown option '{[o for o in opts if o != 'asym'][0]}' (rtn knows: asym)", cls.examples
            )
        return cls(w_bits=bits, group=int(group) if group else None, asym="asym" in opts)

    @classmethod
    def shorthand(cls, bits: int, group: int) -> list[str]:
        if not 2 <= bits <= 8:
            return []
        return [f"rtn-w{bits}g{group}" if bits < 8 else "rtn-w8"]

    def preflight(self, model_info) -> None:
        """Group sizes must divide every quantized layer's input width."""
        if self.group:
            check_groups(model_info.meta, self)


def fake_quantize(w, bits: int, group: int | None = None, asym: bool = False):
    """Quantize-dequantize w [out, in] per output row, in groups of `group` input columns.

    Symmetric: scale = max|w| / (2^(b-1) - 1), levels -(2^(b-1)-1) .. 2^(b-1)-1.
    Asymmetric: scale = (max - min) / (2^b - 1) with an integer zero point, levels 0 .. 2^b-1.
    Either way |w - q(w)| <= scale / 2 for every element.
    """
    import torch

    out_f, in_f = w.shape
    g = group or in_f
    if in_f % g:
        raise ValueError(f"group size {g} does not divide {in_f}")
    x = w.detach().float().reshape(out_f, in_f // g, g)
    if asym:
        lo, hi = x.amin(-1, keepdim=True), x.amax(-1, keepdim=True)
        qmax = 2**bits - 1
        scale = ((hi - lo) / qmax).clamp_min(1e-12)
        zero = torch.round(-lo / scale)
        q = torch.clamp(torch.round(x / scale) + zero, 0, qmax)
        deq = (q - zero) * scale
    else:
        qmax = 2 ** (bits - 1) - 1
        scale = (x.abs().amax(-1, keepdim=True) / qmax).clamp_min(1e-12)
        deq = torch.clamp(torch.round(x / scale), -qmax, qmax) * scale
    return deq.reshape(out_f, in_f).to(w.dtype)


def check_groups(model, cfg: RTNConfig) -> None:
    if not cfg.group:
        return
    for name, mod, transposed in linear_modules(model):
        width = input_width(mod, transposed)
        if width % cfg.group:
            raise UsageError(
                f"{cfg.spec}: group size {cfg.group} does not divide the input width "
                f"{width} of {name}; use a group size that divides {width}"
            )


def apply_rtn(model, cfg: RTNConfig):
    import torch

    check_groups(model, cfg)
    with torch.no_grad():
        for _, mod, transposed in linear_modules(model):
            w = mod.weight.data
            if transposed:
                mod.weight.data = fake_quantize(w.t(), cfg.w_bits, cfg.group, cfg.asym).t().contiguous()
            else:
                mod.weight.data = fake_quantize(w, cfg.w_bits, cfg.group, cfg.asym)
    return model


@register_handler(RTNConfig)
def quantize(cfg: RTNConfig, ctx):
    return apply_rtn(ctx.load_baseline(), cfg)
