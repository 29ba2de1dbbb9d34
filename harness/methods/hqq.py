"""Half-quadratic quantization (HQQ) of the weights through the hqq package: calibration-free, on CPU.

Each decoder Linear goes through hqq's own HQQLinear (asymmetric, scale and zero per group of
G input columns, zero and scale optimized by hqq's half-quadratic solver); its dequantized weight is
written back into the Linear. HQQLinear's PyTorch forward is `x @ dequantize().T`, so the numbers
are the same as running the HQQLinear modules, without dequantizing on every call.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.methods.awq import check_group_fit
from harness.methods.base import WG, GroupedWeightConfig, bad_spec
from harness.methods.registry import register_handler, register_method
from harness.methods.rtn import check_groups
from harness.models.structure import linear_modules

HQQ_BITS = (2, 3, 4, 8)


@register_method(
    "hqq",
    examples="hqq-w{2,3,4,8}gGROUP, e.g. hqq-w4g64, hqq-w3g32, hqq-w2g16",
    packages=("hqq",),
    install="pip install 'hqq>=0.2'",
)
@dataclass(frozen=True)
class HQQConfig(GroupedWeightConfig):
    """HQQ weights: b bits, asymmetric, groups of `group` input columns, no calibration data."""

    w_bits: int = 4
    group: int = 64

    @property
    def bits_per_weight(self) -> float:
        """b bits plus a 16-bit scale and a 16-bit zero per group (hqq's usual fp16 metadata)."""
        return self.w_bits + 32 / self.group

    @classmethod
    def parse(cls, spec: str, tokens: list[str]) -> HQQConfig:
        m = WG.match(tokens[0]) if tokens else None
        if not m or len(tokens) != 1:
            raise bad_spec(spec, "expected hqq-wBITS[gGROUP]", cls.examples)
        bits = int(m.group(1))
        if bits not in HQQ_BITS:
            raise bad_spec(spec, f"hqq takes {', '.join(map(str, HQQ_BITS))} bits, not {bits}", cls.examples)
        group = int(m.group(2) or 64)
        if group < 8 or group & (group - 1):
            raise bad_spec(spec, f"hqq groups are powers of two from 8 (e.g. 32, 64, 128), not {group}", cls.examples)
        return cls(w_bits=bits, group=group)

    @classmethod
    def shorthand(cls, bits: int, group: int) -> list[str]:
        return [f"hqq-w{bits}g{group}"] if bits in HQQ_BITS else []

    def preflight(self, model_info) -> None:
        check_group_fit(model_info.meta, self, (8, 16, 32, 64, 128, 256), lambda g: f"hqq-w{self.w_bits}g{g}")


def hqq_dequantized(weight, bits: int, group: int):
    """hqq's quantize-dequantize of one weight [out, in] (float32 compute, groups along the input axis)."""
    import torch
    from hqq.core.quantize import BaseQuantizeConfig, HQQLinear

    lin = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    lin.weight.data = weight.detach().float()
    q = HQQLinear(
        lin,
        BaseQuantizeConfig(nbits=bits, group_size=group, axis=1),
        compute_dtype=torch.float32,
        device=str(weight.device),
        del_orig=True,
    )
    return q.dequantize().reshape(weight.shape).to(weight.dtype)


@register_handler(HQQConfig)
def quantize(cfg: HQQConfig, ctx):
    import torch

    model = ctx.load_baseline()
    check_groups(model, cfg)
    layers = linear_modules(model)
    ctx.progress(f"hqq {cfg.w_bits}-bit, groups of {cfg.group}: {len(layers)} linear layers")
    threads = torch.get_num_threads()
    # hqq's solver runs many small ops: on the 2-core CPU one thread was 8x faster than two (0.37 s vs
    # 3.1 s for a 1536x576 weight), so quantize single-threaded and give the threads back after.
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for _, mod, transposed in layers:
                w = mod.weight.data.t() if transposed else mod.weight.data
                q = hqq_dequantized(w, cfg.w_bits, cfg.group)
                mod.weight.data = q.t().contiguous() if transposed else q
    finally:
        torch.set_num_threads(threads)
    ctx.info["quantized_module_types"] = ["HQQLinear"]
    ctx.info["executed_as"] = f"dense Linear with HQQLinear's dequantized weights ({len(layers)} layers)"
    return model
