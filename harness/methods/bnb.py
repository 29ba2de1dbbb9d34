"""bitsandbytes LLM.int8 and 4-bit (NF4 / FP4) through transformers' BitsAndBytesConfig."""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import did_you_mean
from harness.methods.base import WG, QuantConfig, bad_spec
from harness.methods.registry import register_handler, register_method
from harness.models.sources import load_model

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
    return load_model(
        ctx.model_dir,
        dtype=ctx.dtype,
        device=ctx.device,
        quantization_config=qc,
        trust_remote_code=ctx.trust_remote_code,
        **ctx.placement,
    )  # --device-map: placed as loaded
