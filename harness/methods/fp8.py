"""FP8 weights (E4M3 or E5M2, per-channel or per-tensor scales) and W8A8-FP8 (dynamic per-token activations).

On a CUDA device with float8 matmuls (compute capability >= 8.9) the model goes through torchao's
float8 tensors, the kernel path PyTorch-native stacks serve. Everywhere else the method is an exact
simulation with torch's float8 dtypes: each weight row (or the whole tensor) is scaled so its largest
magnitude meets the format's maximum, cast to float8 and back, and the matmul runs in the baseline
dtype; W8A8 does the same to every Linear's input per token, on every call. Results record
`info.simulated = true` and `info.executed_as`, so no one mistakes the simulation for the kernel.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import did_you_mean
from harness.methods.base import QuantConfig, bad_spec
from harness.methods.registry import register_handler, register_method
from harness.models.structure import linear_modules

FORMATS = {"e4m3": "float8_e4m3fn", "e5m2": "float8_e5m2"}  # spec token -> torch dtype name


@register_method(
    "fp8",
    examples="fp8-e4m3, fp8-e5m2, with -pc (per-channel scales, the default) or -pt "
    "(one per-tensor scale), e.g. fp8-e4m3-pt",
    packages=("torch",),
    install="pip install torch",
)
@dataclass(frozen=True)
class FP8Config(QuantConfig):
    """Weight-only FP8: every decoder Linear weight on the float8 grid times an fp32 scale."""

    fmt: str = "e4m3"
    per_tensor: bool = False

    @property
    def spec(self) -> str:
        return f"fp8-{self.fmt}" + ("-pt" if self.per_tensor else "")

    @property
    def bits(self) -> int:
        return 8

    @property
    def bits_per_weight(self):
        """Stored bits per weight: 8, plus an fp32 scale per output row (a function of the input width)
        or one per tensor (negligible)."""
        return 8.0 if self.per_tensor else (lambda width: 8 + 32 / width)

    @classmethod
    def parse(cls, spec: str, tokens: list[str]) -> FP8Config:
        if not tokens or tokens[0] not in FORMATS:
            got = tokens[0] if tokens else "nothing"
            why = (
                f"FP8 has no {got[1:]}-bit mode (it is 8-bit; formats e4m3, e5m2)"
                if got.startswith("w")
                else f"unknown FP8 format '{got}'{did_you_mean(got, list(FORMATS))} (formats: e4m3, e5m2)"
            )
            raise bad_spec(spec, why, cls.examples)
        opts = tokens[1:]
        unknown = [o for o in opts if o not in ("pc", "pt")]
        if unknown or len(opts) > 1:
            why = (
                f"unknown option '{unknown[0]}' (fp8 knows: pc, pt)"
                if unknown
                else "give one scale granularity: -pc or -pt"
            )
            raise bad_spec(spec, why, cls.examples)
        return cls(fmt=tokens[0], per_tensor=opts == ["pt"])

    @classmethod
    def shorthand(cls, bits: int, group: int) -> list[str]:
        return ["fp8-e4m3"] if bits == 8 else []


@register_method(
    "w8a8",
    examples="w8a8-fp8 (E4M3 weights per channel, E4M3 activations per token, dynamic)",
    packages=("torch",),
    install="pip install torch",
)
@dataclass(frozen=True)
class W8A8FP8Config(QuantConfig):
    """FP8 weights (E4M3, per channel) and FP8 activations (E4M3, scale per token, computed on every call)."""

    @property
    def spec(self) -> str:
        return "w8a8-fp8"

    @property
    def bits(self) -> int:
        return 8

    @property
    def bits_per_weight(self):
        """8 bits plus an fp32 scale per output row (activation scales are not stored)."""
        return lambda width: 8 + 32 / width

    @classmethod
    def parse(cls, spec: str, tokens: list[str]) -> W8A8FP8Config:
        if tokens != ["fp8"]:
            why = (
                "w8a8 here is FP8 only (int8 activations: torchao-int8dq)"
                if tokens and tokens[0].startswith("int")
                else "expected w8a8-fp8"
            )
            raise bad_spec(spec, why, cls.examples)
        return cls()

    @classmethod
    def shorthand(cls, bits: int, group: int) -> list[str]:
        return ["w8a8-fp8"] if bits == 8 else []


def fp8_round_trip(x, fmt: str = "e4m3", per_tensor: bool = False):
    """(values, scale): x on the float8 grid times an fp32 scale, in x's dtype.

    The scale is max|x| / the format's largest value, per row (last dim) or over the whole tensor;
    x / scale is cast to float8 (round to nearest even, subnormals kept) and multiplied back.
    """
    import torch

    f8 = getattr(torch, FORMATS[fmt])
    fmax = torch.finfo(f8).max
    v = x.detach().float()
    amax = v.abs().amax() if per_tensor else v.abs().amax(dim=-1, keepdim=True)
    scale = (amax / fmax).clamp_min(1e-12)
    q = (v / scale).clamp(-fmax, fmax).to(f8)
    return (q.float() * scale).to(x.dtype), scale


_ACT_CLASS = None


def act_linear_class():
    """nn.Linear whose input is put on the E4M3 grid per token (dynamic scale) before the matmul."""
    global _ACT_CLASS
    if _ACT_CLASS is None:
        import torch.nn as nn
        import torch.nn.functional as F

        class SimulatedFP8ActLinear(nn.Linear):
            """A Linear with FP8 (E4M3) weights and FP8 activations quantized per token, simulated."""

            def forward(self, x):
                return F.linear(fp8_round_trip(x)[0], self.weight, self.bias)

        _ACT_CLASS = SimulatedFP8ActLinear
    return _ACT_CLASS


def _fp8_kernel_device(device: str) -> bool:
    import torch

    return (
        device.startswith("cuda")
        and torch.cuda.is_available()
        and torch.cuda.get_device_capability(torch.device(device)) >= (8, 9)
    )


def simulate(model, fmt: str, per_tensor: bool, activations: bool, ctx) -> object:
    """Round-trip every decoder Linear weight through float8 (and, for W8A8, swap in the activation class)."""
    import torch

    klass = act_linear_class() if activations else None
    n = 0
    with torch.no_grad():
        for _, mod, transposed in linear_modules(model):
            w = mod.weight.data.t() if transposed else mod.weight.data
            q, _ = fp8_round_trip(w, fmt, per_tensor)
            mod.weight.data = q.t().contiguous() if transposed else q
            if klass is not None and type(mod) is torch.nn.Linear:
                mod.__class__ = klass  # same parameters, forward quantizes the input first
            n += 1
    scales = "one fp32 per-tensor scale" if per_tensor else "fp32 per-channel scales"
    acts = ", inputs per token through float8_e4m3fn (dynamic scales)" if activations else ""
    ctx.info["simulated"] = True
    ctx.info["executed_as"] = (
        f"simulated: {n} weights round-tripped through torch.{FORMATS[fmt]} with {scales}"
        f"{acts}; matmuls in {ctx.dtype} (no float8 kernel on {ctx.device})"
    )
    return model


def _torchao_fp8(model, cfg, ctx):
    import torch
    from torchao.quantization import (
        Float8DynamicActivationFloat8WeightConfig,
        Float8WeightOnlyConfig,
        quantize_,
    )
    from torchao.quantization.granularity import PerRow, PerTensor

    if isinstance(cfg, W8A8FP8Config):
        qc = Float8DynamicActivationFloat8WeightConfig(granularity=PerRow())
    else:
        qc = Float8WeightOnlyConfig(
            weight_dtype=getattr(torch, FORMATS[cfg.fmt]), granularity=PerTensor() if cfg.per_tensor else PerRow()
        )
    quantize_(model, qc, filter_fn=_decoder_linear_filter(model))
    ctx.info["simulated"] = False
    ctx.info["executed_as"] = f"torchao {type(qc).__name__} on {ctx.device}"
    return model


def _decoder_linear_filter(model):
    wanted = {id(m) for _, m, _ in linear_modules(model)}
    return lambda mod, fqn: id(mod) in wanted


@register_handler(FP8Config)
def quantize(cfg: FP8Config, ctx):
    model = ctx.load_baseline()
    if _fp8_kernel_device(ctx.device):
        return _torchao_fp8(model, cfg, ctx)
    return simulate(model, cfg.fmt, cfg.per_tensor, False, ctx)


@register_handler(W8A8FP8Config)
def quantize_w8a8(cfg: W8A8FP8Config, ctx):
    model = ctx.load_baseline()
    if _fp8_kernel_device(ctx.device):
        return _torchao_fp8(model, cfg, ctx)
    return simulate(model, "e4m3", False, True, ctx)
