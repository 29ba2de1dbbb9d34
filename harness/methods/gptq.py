"""GPTQ through transformers' GPTQConfig with GPTQModel, calibrated on seeded corpus samples.

The quantized checkpoint is cached on disk, keyed by baseline weights, spec,
calibration hash and library versions: a second run loads it instead of
quantizing again.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

from harness.methods.base import WG, GroupedWeightConfig, bad_spec
from harness.methods.registry import register_handler, register_method
from harness.models.sources import load_model
from harness.system.environment import env
from harness.system.files import cache_root, cached_dir

GPTQ_BITS = (2, 3, 4, 8)


@register_method(
    "gptq",
    examples="gptq-w{2,3,4,8}gGROUP, e.g. gptq-w4g128, gptq-w3g128, gptq-w2g64",
    packages=("gptqmodel",),
    install="pip install gptqmodel 'torch==<your torch version>'",
)
@dataclass(frozen=True)
class GPTQConfig(GroupedWeightConfig):
    """GPTQ through transformers' GPTQConfig and GPTQModel, calibrated on corpus samples."""

    w_bits: int = 4
    group: int = 128

    @classmethod
    def parse(cls, spec: str, tokens: list[str]) -> GPTQConfig:
        m = WG.match(tokens[0]) if tokens else None
        if not m or len(tokens) != 1:
            raise bad_spec(spec, "expected gptq-wBITSgGROUP", cls.examples)
        bits = int(m.group(1))
        if bits not in GPTQ_BITS:
            raise bad_spec(spec, f"GPTQ takes {', '.join(map(str, GPTQ_BITS))} bits, not {bits}", cls.examples)
        group = int(m.group(2) or 128)
        if group < 1:
            raise bad_spec(spec, "group size must be positive", cls.examples)
        return cls(w_bits=bits, group=group)

    @classmethod
    def shorthand(cls, bits: int, group: int) -> list[str]:
        return [f"gptq-w{bits}g{group}"] if bits in GPTQ_BITS else []


def _prepare_env(ctx) -> None:
    # Two cores: one worker. The C++ packer's first build takes minutes on 2 cores and
    # TorchLinear's torch.compile of its dequantizer even longer; the pure-torch paths
    # give the same packed weights, so they are the default (override via env).
    os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "1")
    os.environ.setdefault("GPTQMODEL_DISABLE_PACK_EXT", "1")
    if env("QS_GPTQ_COMPILE") != "1":
        import torch._dynamo

        torch._dynamo.config.disable = True
    keep_logs_out_of_cwd()


def keep_logs_out_of_cwd() -> None:
    """GPTQModel's processors write per-module JSON logs to ./logs of whatever directory the user runs
    in (a module-level relative path in gptqmodel.looper.loop_processor): point it into the cache."""
    from gptqmodel.looper import loop_processor

    loop_processor._PROJECT_LOG_DIR = cache_root() / "gptqmodel-logs"


def densify(model) -> list[str]:
    """Swap each GPTQ TorchLinear for an nn.Linear holding the kernel's own dequantized weights.

    TorchLinear computes `x @ dequantize_weight()` (plus bias), so the swap gives the same
    numbers while dequantizing once instead of on every call (on CPU that re-dequantization
    made measurement and generation several times slower). Returns the swapped module names.
    """
    import torch
    import torch.nn as nn

    dtype = model.get_input_embeddings().weight.dtype  # TorchLinear casts its weights to the input's dtype
    swapped = []
    for name, mod in list(model.named_modules()):
        if not hasattr(mod, "dequantize_weight") or not hasattr(mod, "qweight"):
            continue
        with torch.no_grad():
            w = mod.dequantize_weight().to(dtype)  # [in, out], as TorchLinear multiplies it
            dense = nn.Linear(
                mod.in_features, mod.out_features, bias=mod.bias is not None, device=w.device, dtype=w.dtype
            )
            dense.weight.copy_(w.T)
            if mod.bias is not None:
                dense.bias.copy_(mod.bias.to(w.dtype))
        dense.requires_grad_(False)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, dense)
        swapped.append(name)
    return swapped


def cache_key(cfg: GPTQConfig, ctx, calib_sha: str) -> str:
    import gptqmodel
    import transformers

    blob = json.dumps(
        {
            "model": ctx.model_key,
            "spec": cfg.spec,
            "calib": calib_sha,
            "n": ctx.gptq_samples,
            "seed": ctx.seed,
            "gptqmodel": gptqmodel.__version__,
            "transformers": transformers.__version__,
            "dtype": ctx.dtype,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


@register_handler(GPTQConfig)
def quantize(cfg: GPTQConfig, ctx):
    _prepare_env(ctx)
    from transformers import GPTQConfig as HFGPTQConfig

    # Reloads must name the torch backend: with the saved 'auto', 4-bit checkpoints come back
    # as plain Linear layers with missing weights on CPU (seen with gptqmodel 7.6).
    load_qc = HFGPTQConfig(bits=cfg.w_bits, group_size=cfg.group, backend="torch", desc_act=False)
    texts, calib_sha = ctx.calibration(ctx.gptq_samples, ctx.seed)
    target = cache_root() / "gptq" / f"{cfg.spec}-{cache_key(cfg, ctx, calib_sha)}"
    ctx.info["cache_dir"] = str(target)

    def build(tmp):
        ctx.progress(f"calibrating GPTQ on {len(texts)} corpus samples (sha {calib_sha[:12]})")
        qc = HFGPTQConfig(
            bits=cfg.w_bits,
            group_size=cfg.group,
            dataset=texts,
            tokenizer=ctx.tokenizer,
            backend="torch",
            desc_act=False,
        )
        model = load_model(ctx.model_dir, dtype=ctx.dtype, device=ctx.device, quantization_config=qc)
        model.save_pretrained(tmp)
        ctx.tokenizer.save_pretrained(tmp)
        del model

    # A cached checkpoint is checked against its manifest (sha256 of every file); a corrupt one
    # is reported and calibrated again. Both paths then measure the saved artifact, so a cold
    # and a warm run see the same model (freshly packed and reloaded modules differed slightly).
    ctx.info["cache_hit"] = cached_dir(target, build, full_check=True)
    if ctx.info["cache_hit"]:
        ctx.progress(f"loading cached GPTQ model from {target}")
    model = load_model(target, dtype=ctx.dtype, device=ctx.device, quantization_config=load_qc)
    return _for_measurement(model, ctx)


def _for_measurement(model, ctx):
    """Record the kernel module types, then run on dense dequantized weights (QS_GPTQ_KERNEL=1 keeps the kernel)."""
    ctx.info["quantized_module_types"] = sorted({type(m).__name__ for m in model.modules() if hasattr(m, "qweight")})
    if env("QS_GPTQ_KERNEL") != "1":
        ctx.info["executed_as"] = f"dense Linear with the kernel's dequantized weights ({len(densify(model))} layers)"
    return model
