"""GGUF quant types (llama.cpp's weight formats) that the `gguf` package quantizes itself, in numpy.

Each decoder Linear weight goes through gguf.quants.quantize with the type and back through
gguf.quants.dequantize, so the model measured holds exactly the values a llama.cpp file of that type
would (for the tensors quantized here; embeddings and the output head stay at baseline precision).
K-quants (Q4_K, Q6_K, ...) are left out: the gguf package cannot quantize them, and a
reimplementation could not be checked block for block against llama.cpp's own output here.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import UsageError, did_you_mean
from harness.methods.base import QuantConfig, bad_spec
from harness.methods.registry import register_handler, register_method
from harness.models.structure import input_width, linear_modules

# spec token -> (GGMLQuantizationType name, weights per block, bytes per block, policy bits)
TYPES = {
    "q4_0": ("Q4_0", 32, 18, 4),
    "q4_1": ("Q4_1", 32, 20, 4),
    "q5_0": ("Q5_0", 32, 22, 5),
    "q5_1": ("Q5_1", 32, 24, 5),
    "q8_0": ("Q8_0", 32, 34, 8),
    "mxfp4": ("MXFP4", 32, 17, 4),
    "tq1_0": ("TQ1_0", 256, 54, 2),
    "tq2_0": ("TQ2_0", 256, 66, 2),
}
K_QUANTS = ("q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q8_k")


@register_method(
    "gguf",
    examples="gguf-{q4_0,q4_1,q5_0,q5_1,q8_0,mxfp4,tq1_0,tq2_0}, e.g. gguf-q4_0, gguf-q8_0",
    packages=("gguf",),
    install="pip install 'gguf>=0.10'",
)
@dataclass(frozen=True)
class GGUFTypeConfig(QuantConfig):
    """One GGUF quant type applied to every decoder Linear weight (quantize, dequantize, measure)."""

    qtype: str = "q4_0"

    @property
    def spec(self) -> str:
        return f"gguf-{self.qtype}"

    @property
    def bits(self) -> int:
        return TYPES[self.qtype][3]

    @property
    def group_size(self) -> int:
        return TYPES[self.qtype][1]

    @property
    def bits_per_weight(self) -> float:
        """The type's own size: bytes per block * 8 / weights per block (Q4_0: 4.5, MXFP4: 4.25)."""
        _, block, nbytes, _ = TYPES[self.qtype]
        return nbytes * 8 / block

    @classmethod
    def parse(cls, spec: str, tokens: list[str]) -> GGUFTypeConfig:
        t = "_".join(tokens).lower() if tokens else "nothing"  # gguf-q4-0 reads as q4_0
        if t in K_QUANTS or t.startswith(tuple(k + "_" for k in K_QUANTS)):
            raise bad_spec(
                spec,
                f"K-quants ({t.upper()}) are not offered: the gguf package cannot quantize "
                f"them and a reimplementation is unchecked against llama.cpp",
                cls.examples,
            )
        if t not in TYPES:
            raise bad_spec(spec, f"unknown GGUF type '{t}'{did_you_mean(t, TYPES)}", cls.examples)
        return cls(qtype=t)

    @classmethod
    def shorthand(cls, bits: int, group: int) -> list[str]:
        return {8: ["gguf-q8_0"], 5: ["gguf-q5_0"], 4: ["gguf-q4_0"]}.get(bits, [])

    def preflight(self, model_info) -> None:
        check_rows(model_info.meta, self)


def check_rows(model, cfg: GGUFTypeConfig) -> None:
    """Every quantized weight's rows must hold whole blocks (32 weights; 256 for TQ1_0/TQ2_0)."""

    block = TYPES[cfg.qtype][1]
    for name, mod, transposed in linear_modules(model):
        width = input_width(mod, transposed)
        if width % block:
            raise UsageError(
                f"{cfg.spec}: {TYPES[cfg.qtype][0]} stores blocks of {block} weights, which do not "
                f"divide the input width {width} of {name}; use a 32-weight type such as gguf-q4_0"
            )


def gguf_round_trip(weight, qtype: str):
    """gguf's dequantize(quantize(weight)) for one weight [out, in] (numpy float32 in between)."""
    import numpy as np
    import torch
    from gguf import GGMLQuantizationType, quants

    t = GGMLQuantizationType[TYPES[qtype][0]]
    w = weight.detach().float().cpu().numpy().astype(np.float32)
    deq = quants.dequantize(quants.quantize(w, t), t)
    return torch.from_numpy(np.ascontiguousarray(deq)).to(device=weight.device, dtype=weight.dtype)


@register_handler(GGUFTypeConfig)
def quantize(cfg: GGUFTypeConfig, ctx):
    import torch

    model = ctx.load_baseline()
    check_rows(model, cfg)
    layers = linear_modules(model)
    ctx.progress(f"gguf {TYPES[cfg.qtype][0]}: {len(layers)} linear layers")
    with torch.no_grad():
        for _, mod, transposed in layers:
            w = mod.weight.data.t() if transposed else mod.weight.data
            q = gguf_round_trip(w, cfg.qtype)
            mod.weight.data = q.t().contiguous() if transposed else q
    ctx.info["executed_as"] = (
        f"dense Linear with gguf.quants' dequantized {TYPES[cfg.qtype][0]} weights ({len(layers)} layers)"
    )
    return model
