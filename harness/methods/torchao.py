"""torchao's weight quantization: int8 weight-only, int4 weight-only in groups, int8 dynamic activations.

The model runs on torchao's own tensor subclasses (quantize_ on every decoder Linear). torchao 0.18
has no CPU layout for Int4WeightOnlyConfig (plain and preshuffled need the mslk CUDA kernels,
tile_packed_to_4d needs CUDA, plain_int32 refuses the CPU), so on CPU int4 runs through torchao's
IntxWeightOnlyConfig with torch.int4, PerGroup(G) and asymmetric scales, its CPU int4 path; the
results record which config ran (`info.torchao_config`).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import did_you_mean
from harness.methods.awq import check_group_fit
from harness.methods.base import QuantConfig, bad_spec
from harness.methods.registry import register_handler, register_method
from harness.models.structure import linear_modules

KINDS = ("int8wo", "int4wo", "int8dq")
INT4_GROUPS = (32, 64, 128)


@register_method(
    "torchao",
    examples="torchao-int8wo, torchao-int4wo-g{32,64,128}, torchao-int8dq",
    packages=("torchao",),
    install="pip install 'torchao>=0.18'",
)
@dataclass(frozen=True)
class TorchAOConfig(QuantConfig):
    """torchao int8 weight-only, int4 weight-only (group G) or int8 dynamic-activation int8-weight."""

    kind: str = "int8wo"
    group: int | None = None  # int4wo only

    @property
    def spec(self) -> str:
        return f"torchao-{self.kind}" + (f"-g{self.group}" if self.group else "")

    @property
    def bits(self) -> int:
        return 4 if self.kind == "int4wo" else 8

    @property
    def group_size(self) -> int | None:
        return self.group

    @property
    def bits_per_weight(self):
        """int4: 4 bits plus a 16-bit scale and zero per group; int8: 8 plus an fp32 scale per output row
        (a function of the input width)."""
        return 4 + 32 / self.group if self.kind == "int4wo" else (lambda width: 8 + 32 / width)

    @classmethod
    def parse(cls, spec: str, tokens: list[str]) -> TorchAOConfig:
        kind = tokens[0] if tokens else "nothing"
        if kind not in KINDS:
            raise bad_spec(
                spec,
                f"unknown torchao mode '{kind}'{did_you_mean(kind, KINDS)} (modes: {', '.join(KINDS)})",
                cls.examples,
            )
        rest = tokens[1:]
        if kind != "int4wo":
            if rest:
                raise bad_spec(spec, f"torchao-{kind} takes no options (got '{'-'.join(rest)}')", cls.examples)
            return cls(kind=kind)
        if not rest:
            return cls(kind=kind, group=128)
        if (
            len(rest) != 1
            or not rest[0].startswith("g")
            or not rest[0][1:].isdigit()
            or int(rest[0][1:]) not in INT4_GROUPS
        ):
            raise bad_spec(
                spec,
                f"torchao int4 weight-only takes groups {', '.join(map(str, INT4_GROUPS))} (e.g. torchao-int4wo-g128)",
                cls.examples,
            )
        return cls(kind=kind, group=int(rest[0][1:]))

    @classmethod
    def shorthand(cls, bits: int, group: int) -> list[str]:
        if bits == 8:
            return ["torchao-int8wo"]
        return [f"torchao-int4wo-g{group}"] if bits == 4 and group in INT4_GROUPS else []

    def preflight(self, model_info) -> None:
        if self.group:
            check_group_fit(model_info.meta, self, INT4_GROUPS, lambda g: f"torchao-int4wo-g{g}")


def torchao_config(cfg: TorchAOConfig, device: str, dtype: str):
    """The torchao config object that runs cfg on this device (see the module docstring for int4 on CPU)."""
    import torch
    from torchao.quantization import (
        Int4WeightOnlyConfig,
        Int8DynamicActivationInt8WeightConfig,
        Int8WeightOnlyConfig,
        IntxWeightOnlyConfig,
    )
    from torchao.quantization.granularity import PerGroup
    from torchao.quantization.quant_primitives import MappingType

    if cfg.kind == "int8wo":
        return Int8WeightOnlyConfig()
    if cfg.kind == "int8dq":
        return Int8DynamicActivationInt8WeightConfig()
    if device.startswith("cuda") and dtype == "bf16":  # tinygemm layout: CUDA and bf16 only
        return Int4WeightOnlyConfig(group_size=cfg.group, int4_packing_format="tile_packed_to_4d")
    return IntxWeightOnlyConfig(
        weight_dtype=torch.int4, granularity=PerGroup(cfg.group), mapping_type=MappingType.ASYMMETRIC
    )


@register_handler(TorchAOConfig)
def quantize(cfg: TorchAOConfig, ctx):
    from torchao.quantization import quantize_

    model = ctx.load_baseline()
    targets = {id(m) for _, m, _ in linear_modules(model)}
    qc = torchao_config(cfg, ctx.device, ctx.dtype)
    ctx.progress(f"torchao {type(qc).__name__} on {len(targets)} linear layers")
    quantize_(model, qc, filter_fn=lambda mod, fqn: id(mod) in targets)
    ctx.info["torchao_config"] = repr(qc)
    ctx.info["quantized_module_types"] = sorted({type(m.weight).__name__ for _, m, _ in linear_modules(model)})
    return model
