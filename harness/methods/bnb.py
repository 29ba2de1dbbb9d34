"""bitsandbytes LLM.int8 and 4-bit (NF4 / FP4) through transformers' BitsAndBytesConfig."""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import did_you_mean
from harness.methods.base import WG, QuantConfig, bad_spec
from harness.methods.registry import register_handler, register_method
from harness.models.sources import load_model
from harness.system.environment import env

_KINDS = {"int8": "int8", "nf4": "nf4", "fp4": "fp4", "w8": "int8"}


@register_method(
    "bnb", examples="bnb-int8, bnb-nf4, bnb-fp4", packages=("bitsandbytes",), install="pip install 'bitsandbytes>=0.45'"
)
@dataclass(frozen=True)
class BnbConfig(QuantConfig):
    """bitsandbytes LLM.int8 or 4-bit (NF4 / FP4) weights, loaded through transformers."""

    kind: str = "int8"  # int8 | nf4 | fp4

    @property
    def spec(self) -> str:
        return f"bnb-{self.kind}"

    @property
    def bits(self) -> int:
        return 8 if self.kind == "int8" else 4

    @property
    def group_size(self) -> int | None:
        return None if self.kind == "int8" else 64  # bitsandbytes' 4-bit blocksize

    @classmethod
    def parse(cls, spec: str, tokens: list[str]) -> BnbConfig:
        if len(tokens) != 1 or tokens[0] not in _KINDS:
            got = "-".join(tokens) or "nothing"
            m = WG.match(tokens[0]) or re.fullmatch(r"int(\d+)", tokens[0]) if tokens else None
            if m and m.group(1) == "4":
                why = "bitsandbytes' 4-bit modes are nf4 and fp4 (did you mean 'bnb-nf4'?)"
            elif m:
                why = f"bitsandbytes has no {m.group(1)}-bit mode (8-bit: int8; 4-bit: nf4, fp4)"
            else:
                why = f"unknown bitsandbytes mode '{got}'{did_you_mean(got, ['int8', 'nf4', 'fp4'])}"
            raise bad_spec(spec, why, cls.examples)
        return cls(kind=_KINDS[tokens[0]])

    @classmethod
    def shorthand(cls, bits: int, group: int) -> list[str]:
        return {8: ["bnb-int8"], 4: ["bnb-nf4", "bnb-fp4"]}.get(bits, [])


@register_handler(BnbConfig)
def quantize(cfg: BnbConfig, ctx):
    import torch
    from transformers import BitsAndBytesConfig

    if cfg.kind == "int8":
        # a device map may leave layers on the CPU: bitsandbytes keeps those in fp32 only when told to
        qc = BitsAndBytesConfig(load_in_8bit=True, llm_int8_enable_fp32_cpu_offload=bool(ctx.placement))
    else:
        # fp32 compute on CPU keeps the comparison about weight rounding, not activation dtype
        compute = torch.float32 if ctx.device == "cpu" else torch.float16
        qc = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=cfg.kind, bnb_4bit_compute_dtype=compute)
    ctx.progress(f"bitsandbytes {cfg.kind}: loading {ctx.model_dir.name}")
    model = load_model(
        ctx.model_dir,
        dtype=ctx.dtype,
        device=ctx.device,
        quantization_config=qc,
        trust_remote_code=ctx.trust_remote_code,
        **ctx.placement,
    )  # --device-map: placed as loaded
    ctx.info["quantized_module_types"] = sorted(
        {
            type(m).__name__
            for m in model.modules()
            if hasattr(m, "weight") and type(m).__module__.startswith("bitsandbytes")
        }
    )
    if ctx.device == "cpu" and env("QS_BNB_KERNEL") != "1":
        if cfg.kind != "int8":
            ctx.info["executed_as"] = (
                f"dense Linear with bitsandbytes' own dequantized weights ({densify_4bit(model)} layers)"
            )
        elif int8_in_torch_is_faithful():
            ctx.info["executed_as"] = (
                "Int8MixedLinear: bitsandbytes' CPU LLM.int8 forward op for op, the int8 weight held as float32 "
                f"({int8_in_torch(model)} layers)"
            )
    return model


def densify_4bit(model) -> int:
    """Swap each bitsandbytes Linear4bit for an nn.Linear holding bitsandbytes' own dequantization of its weight.

    The layer then computes x @ dequantize_4bit(W) in float32, the compute dtype this method asks for: bitsandbytes'
    CPU path instead repacks the weight at its first forward and multiplies in bfloat16 activations (logits of a
    tiny model moved by up to 0.01 against the dense float32 product), and re-dequantizes at every call, which made
    generation the slowest part of a run. Must run before the model's first forward (the repacking changes the
    stored layout). LLM.int8 cannot be swapped this way (its outlier columns depend on each input): `int8_in_torch`
    swaps it for a module that runs bitsandbytes' own CPU computation.
    """
    import bitsandbytes as bnb
    import torch
    import torch.nn as nn

    n = 0
    for name, mod in list(model.named_modules()):
        if not isinstance(mod, bnb.nn.Linear4bit):
            continue
        with torch.no_grad():
            w = bnb.functional.dequantize_4bit(mod.weight.data, mod.weight.quant_state).to(
                mod.compute_dtype or torch.float32
            )
            dense = nn.Linear(
                mod.in_features, mod.out_features, bias=mod.bias is not None, device=w.device, dtype=w.dtype
            )
            dense.weight.copy_(w.reshape(mod.out_features, mod.in_features))
            if mod.bias is not None:
                dense.bias.copy_(mod.bias.to(w.dtype))
        dense.requires_grad_(False)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, dense)
        n += 1
    return n


# bitsandbytes ops MatMul8bitLt calls on the CPU; Int8MixedLinear reproduces their "default" (pure torch) kernels.
_INT8_OPS = (
    "int8_vectorwise_quant",
    "int8_mixed_scaled_mm",
    "int8_scaled_mm",
    "int8_mm_dequant",
    "int8_vectorwise_dequant",
)


def _bnb_cpu_kernel(op: str) -> bool:
    """Whether bitsandbytes registered a CPU-specific kernel for `op` (else its pure-torch default runs)."""
    import bitsandbytes  # noqa: F401  (registers the ops)
    import torch

    return torch._C._dispatch_has_kernel_for_dispatch_key(f"bitsandbytes::{op}", "CPU")


def int8_in_torch_is_faithful() -> bool:
    """Int8MixedLinear reproduces the default kernels; a bitsandbytes build with CPU kernels of its own for them
    (none in 0.50) keeps its Linear8bitLt."""
    return not any(_bnb_cpu_kernel(op) for op in _INT8_OPS)


def int8_in_torch(model) -> int:
    """Swap each CPU bitsandbytes Linear8bitLt for an Int8MixedLinear holding the same CB / SCB; returns the count."""
    import bitsandbytes as bnb

    from harness.methods.bnb_int8 import Int8MixedLinear

    int_mm = _bnb_cpu_kernel("int8_linear_matmul")  # bitsandbytes' torch._int_mm kernel (AVX-512 CPUs only)
    n = 0
    for name, mod in list(model.named_modules()):
        # a module accelerate dispatches (a hook moves its weights in) stays as it is
        if isinstance(mod, bnb.nn.Linear8bitLt) and mod.weight.device.type == "cpu" and not hasattr(mod, "_hf_hook"):
            parent, _, child = name.rpartition(".")
            swap = Int8MixedLinear.of(mod, int_mm=int_mm).train(mod.training)
            setattr(model.get_submodule(parent) if parent else model, child, swap)
            n += 1
    return n
