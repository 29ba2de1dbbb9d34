"""AWQ (activation-aware weight quantization, Lin et al. 2023) through GPTQModel's AWQ, on CPU.

Calibrated on the run's seeded calibration split (the same samples GPTQ uses, --gptq-samples),
tokenized, joined and cut into blocks of equal length (AutoAWQ's layout): per layer, GPTQModel
searches per-input-channel scales that protect the channels with large activations, then a
clipping range, then quantizes in groups with a zero point (the GEMM format vLLM and transformers
load). The checkpoint is cached on disk like GPTQ's, keyed by baseline weights, spec, calibration
hash and library versions, and every run measures the saved artifact.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UsageError
from harness.methods.base import WG, GroupedWeightConfig, bad_spec
from harness.methods.gptq import keep_logs_out_of_cwd
from harness.methods.registry import register_handler, register_method
from harness.methods.rtn import check_groups
from harness.models.sources import load_model
from harness.models.structure import input_width, linear_modules
from harness.system.environment import env
from harness.system.files import cache_root, cached_dir

AWQ_BITS = (2, 3, 4, 8)
AWQ_GROUPS = (16, 32, 64, 128)  # GPTQModel's AWQ kernels' group sizes
ROW_BLOCK = 64  # GPTQModel's clip search walks output rows in blocks of 64 (or 256)
CALIB_BLOCK = 512  # tokens per calibration block (AutoAWQ's and llm-awq's max_seq_len)
CALIB_RECORD = "quantsink-awq-calibration.json"  # what the scale search saw, kept with the checkpoint


@register_method(
    "awq",
    examples="awq-w{2,3,4,8}g{16,32,64,128}, e.g. awq-w4g128, awq-w4g64, awq-w3g128",
    packages=("gptqmodel",),
    install="pip install gptqmodel 'torch==<your torch version>'",
)
@dataclass(frozen=True)
class AWQConfig(GroupedWeightConfig):
    """AWQ weights (asymmetric, zero point per group) through GPTQModel, calibrated on corpus samples."""

    w_bits: int = 4
    group: int = 128

    @property
    def bits_per_weight(self) -> float:
        """b bits plus an fp16 scale and a b-bit zero per group (the GEMM checkpoint's layout)."""
        return self.w_bits + (16 + self.w_bits) / self.group

    @classmethod
    def parse(cls, spec: str, tokens: list[str]) -> AWQConfig:
        m = WG.match(tokens[0]) if tokens else None
        if not m or len(tokens) != 1:
            raise bad_spec(spec, "expected awq-wBITSgGROUP", cls.examples)
        bits, group = int(m.group(1)), int(m.group(2) or 128)
        if bits not in AWQ_BITS:
            raise bad_spec(spec, f"AWQ takes {', '.join(map(str, AWQ_BITS))} bits, not {bits}", cls.examples)
        if group not in AWQ_GROUPS:
            raise bad_spec(spec, f"AWQ takes groups {', '.join(map(str, AWQ_GROUPS))}, not {group}", cls.examples)
        return cls(w_bits=bits, group=group)

    @classmethod
    def shorthand(cls, bits: int, group: int) -> list[str]:
        return [f"awq-w{bits}g{group}"] if bits in AWQ_BITS and group in AWQ_GROUPS else []

    def preflight(self, model_info) -> None:
        check_shapes(model_info.meta, self)


def check_group_fit(model, cfg, offered, respec) -> None:
    """The group must divide every input width; the error names the offered groups that fit this model."""

    try:
        check_groups(model, cfg)
    except UsageError as e:
        widths = {input_width(m, t) for _, m, t in linear_modules(model)}
        fits = [g for g in sorted(offered, reverse=True) if all(w % g == 0 for w in widths)]
        hint = (
            f"; {cfg.method} groups that fit this model: {', '.join(map(str, fits))} (e.g. {respec(fits[0])})"
            if fits
            else f"; no {cfg.method} group ({', '.join(map(str, offered))}) fits this model"
        )
        raise UsageError(str(e) + hint) from None


def check_shapes(model, cfg: AWQConfig) -> None:
    """Groups must divide every input width and output widths must be multiples of 64 (GPTQModel's AWQ)."""

    check_group_fit(model, cfg, AWQ_GROUPS, lambda g: f"awq-w{cfg.w_bits}g{g}")
    for name, mod, transposed in linear_modules(model):
        out = mod.weight.shape[1] if transposed else mod.weight.shape[0]
        if out % ROW_BLOCK:
            raise UsageError(
                f"{cfg.spec}: GPTQModel's AWQ needs output widths that are multiples of {ROW_BLOCK}; "
                f"{name} has {out}; use gptq-w{cfg.w_bits}g{cfg.group} or hqq-w{cfg.w_bits}g{cfg.group}"
            )


def cache_key(cfg: AWQConfig, ctx, calib_sha: str) -> str:
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
            "calib_dtype": "fp16",
            "calib_layout": f"blocks of {CALIB_BLOCK}",  # before: one ragged sample per batch (only the last was used)
            "transformers": transformers.__version__,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def calibration_blocks(tokenizer, texts: list[str], max_positions: int) -> list[list[int]]:
    """The calibration texts as token blocks of one length: tokenized, joined and cut into blocks of
    min(512, the model's positions) tokens (the remainder dropped), each opened by BOS when the tokenizer adds one.

    GPTQModel's AWQ stacks a layer's captured inputs only when every calibration batch has the same shape; with
    ragged samples it keeps the last batch alone (its "latest_batch" aggregation), so the scale and clip searches
    would see one sample (after its longest-first sort, the shortest) instead of all of them.
    """
    with_special = tokenizer("a")["input_ids"]
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    bos = with_special[0] if len(with_special) > len(bare) and with_special[0] == tokenizer.bos_token_id else None
    stream = [t for text in texts for t in tokenizer(text, add_special_tokens=False)["input_ids"]]
    body = min(min(CALIB_BLOCK, max_positions) - (bos is not None), len(stream))
    if body < 1:
        raise UsageError("AWQ calibration: the calibration samples hold no tokens")
    blocks = [stream[i : i + body] for i in range(0, len(stream) - body + 1, body)]
    return [[bos, *b] for b in blocks] if bos is not None else blocks


def max_positions(model_dir) -> int:
    """The model's context length from its config.json (CALIB_BLOCK when it names none)."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    cfg = {**cfg.get("text_config", {}), **cfg}
    return int(cfg.get("max_position_embeddings") or cfg.get("n_positions") or CALIB_BLOCK)


def scale_search_tokens(quant_log: dict, expected: int) -> int:
    """The fewest calibration tokens any Linear's scale search saw (GPTQModel's own log); an error below
    `expected` (a layer that kept one batch of ragged captures), before anything is cached."""
    rows = (quant_log or {}).get("awq") or []
    seen = min((int(r.get("scale_retained_tokens", 0)) for r in rows), default=0)
    if seen < expected:
        short = [r.get("module") for r in rows if int(r.get("scale_retained_tokens", 0)) < expected]
        modes = sorted({str(r.get("scale_aggregation")) for r in rows})
        raise RuntimeError(
            f"GPTQModel's AWQ searched scales on {seen} of {expected} calibration tokens "
            f"(aggregation {', '.join(modes)}; e.g. {short[:3]}): the checkpoint would be calibrated on part "
            f"of the samples"
        )
    return seen


def _calibrate(cfg: AWQConfig, ctx, texts: list[str], out_dir) -> None:
    """GPTQModel's AWQ on CPU: fp16 calibration (its packers refuse fp32), the portable torch kernel."""
    import torch

    # The model-loader pool asks the CPU pool for 2 workers; 1 (the GPTQ handler's default) fails.
    old = os.environ.get("GPTQMODEL_CPU_WORKERS")
    os.environ["GPTQMODEL_CPU_WORKERS"] = str(max(2, int(old or 0)))
    os.environ.setdefault("GPTQMODEL_DISABLE_PACK_EXT", "1")
    if env("QS_GPTQ_COMPILE") != "1":
        import torch._dynamo

        torch._dynamo.config.disable = True

    keep_logs_out_of_cwd()
    try:
        from gptqmodel import BACKEND, GPTQModel
        from gptqmodel.quantization.config import AWQConfig as GMAWQConfig

        qc = GMAWQConfig(bits=cfg.w_bits, group_size=cfg.group, sym=False, offload_to_disk=False)
        blocks = calibration_blocks(ctx.tokenizer, texts, max_positions(ctx.model_dir))
        model = GPTQModel.load(str(ctx.model_dir), qc, device=ctx.device, dtype=torch.float16)
        quant_log = model.quantize(
            [{"input_ids": b, "attention_mask": [1] * len(b)} for b in blocks],
            tokenizer=ctx.tokenizer,
            batch_size=1,
            backend=BACKEND.AWQ_TORCH if ctx.device == "cpu" else BACKEND.AUTO,
        )
        total = sum(map(len, blocks))
        record = dict(samples=len(texts), blocks=len(blocks), block_tokens=len(blocks[0]), tokens=total)
        record["scale_search_tokens"] = scale_search_tokens(quant_log, total)
        model.save(str(out_dir))
        ctx.tokenizer.save_pretrained(out_dir)
        (Path(out_dir) / CALIB_RECORD).write_text(json.dumps(record, sort_keys=True))
        del model
    finally:
        if old is None:
            os.environ.pop("GPTQMODEL_CPU_WORKERS", None)
        else:
            os.environ["GPTQMODEL_CPU_WORKERS"] = old


def densify(model) -> int:
    """Swap each AWQ quantized Linear for an nn.Linear holding its dequantized weights ((q - zero) * scale, fp32)."""
    import torch
    import torch.nn as nn
    from gptqmodel.quantization.awq.utils.packing_utils import dequantize_gemm

    dtype = model.get_input_embeddings().weight.dtype
    n = 0
    for name, mod in list(model.named_modules()):
        if not (hasattr(mod, "qweight") and hasattr(mod, "qzeros") and hasattr(mod, "scales")):
            continue
        with torch.no_grad():
            w = dequantize_gemm(mod.qweight, mod.qzeros, mod.scales.float(), mod.bits, mod.group_size)  # [in, out]
            dense = nn.Linear(
                mod.in_features, mod.out_features, bias=mod.bias is not None, device=w.device, dtype=dtype
            )
            dense.weight.copy_(w.T.to(dtype))
            if mod.bias is not None:
                dense.bias.copy_(mod.bias.to(dtype))
        dense.requires_grad_(False)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, dense)
        n += 1
    return n


@register_handler(AWQConfig)
def quantize(cfg: AWQConfig, ctx):
    texts, calib_sha = ctx.calibration(ctx.gptq_samples, ctx.seed)
    target = cache_root() / "awq" / f"{cfg.spec}-{cache_key(cfg, ctx, calib_sha)}"
    ctx.info["cache_dir"] = str(target)

    def build(tmp):
        ctx.progress(f"calibrating AWQ on {len(texts)} corpus samples (sha {calib_sha[:12]})")
        _calibrate(cfg, ctx, texts, tmp)

    ctx.info["cache_hit"] = cached_dir(target, build, full_check=True)
    if ctx.info["cache_hit"]:
        ctx.progress(f"loading cached AWQ model from {target}")
    ctx.info["calibration"] = json.loads((target / CALIB_RECORD).read_text())
    model = load_model(target, dtype=ctx.dtype, device=ctx.device, device_map=ctx.device)
    ctx.info["quantized_module_types"] = sorted({type(m).__name__ for m in model.modules() if hasattr(m, "qweight")})
    if env("QS_AWQ_KERNEL") != "1":
        ctx.info["executed_as"] = f"dense Linear with the checkpoint's dequantized weights ({densify(model)} layers)"
    return model
