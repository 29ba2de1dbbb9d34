"""bitsandbytes LLM.int8 and 4-bit (NF4 / FP4) through transformers' BitsAndBytesConfig."""
from __future__ import annotations

from .configs import BnbConfig


def quantize(cfg: BnbConfig, ctx):
    import torch
    from transformers import BitsAndBytesConfig

    from ..models import load_model

    if cfg.kind == "int8":
        qc = BitsAndBytesConfig(load_in_8bit=True)
    else:
        # fp32 compute on CPU keeps the comparison about weight rounding, not activation dtype
        compute = torch.float32 if ctx.device == "cpu" else torch.float16
        qc = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=cfg.kind,
                                bnb_4bit_compute_dtype=compute)
    ctx.progress(f"bitsandbytes {cfg.kind}: loading {ctx.model_dir.name}")
    return load_model(ctx.model_dir, dtype=ctx.dtype, device=ctx.device, quantization_config=qc,
                      trust_remote_code=ctx.trust_remote_code)
