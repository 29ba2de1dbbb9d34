"""A weight method and a KV-cache method together, e.g. gptq-w4g128+kv-quanto-w4."""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import UsageError
from harness.methods.base import QuantConfig
from harness.methods.kv import KVConfig, check_backend, prepare_kv
from harness.methods.registry import (
    backend_modules,
    get_method,
    register_handler,
    register_method,
)


@register_method("combo", examples="WEIGHTS+KV, e.g. gptq-w4g128+kv-quanto-w4")
@dataclass(frozen=True)
class ComboConfig(QuantConfig):
    """A weight method and a KV-cache method together."""

    weights: QuantConfig = None  # type: ignore[assignment]
    kv: KVConfig = None  # type: ignore[assignment]

    @property
    def spec(self) -> str:
        return f"{self.weights.spec}+{self.kv.spec}"

    @property
    def bits(self) -> int | None:
        wb = self.weights.bits
        return min(wb, self.kv.bits) if wb is not None else self.kv.bits

    @property
    def group_size(self) -> int | None:
        return self.weights.group_size

    @classmethod
    def parse(cls, spec: str, parts: list) -> ComboConfig:
        kvs = [p for p in parts if isinstance(p, KVConfig)]
        rest = [p for p in parts if not isinstance(p, KVConfig)]
        if len(parts) != 2 or len(kvs) != 1 or isinstance(rest[0], ComboConfig):
            raise UsageError(
                f"'{spec}': a combination is one weight method and one KV-cache method; "
                f"valid: WEIGHTS+KV, e.g. gptq-w4g128+kv-quanto-w4"
            )
        return cls(weights=rest[0], kv=kvs[0])

    def preflight(self, model_info) -> None:
        self.weights.preflight(model_info)
        self.kv.preflight(model_info)

    def backend_modules(self) -> list[str]:
        return backend_modules(self.weights) + backend_modules(self.kv)

    def to_dict(self) -> dict:
        return {"method": self.method, "weights": self.weights.to_dict(), "kv": self.kv.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> ComboConfig:
        return cls(weights=QuantConfig.from_dict(d["weights"]), kv=QuantConfig.from_dict(d["kv"]))


@register_handler(ComboConfig)
def quantize(cfg: ComboConfig, ctx):
    check_backend(cfg.kv)
    model = get_method(cfg.weights.method).load_handler()(cfg.weights, ctx)
    prepare_kv(model, cfg.kv, ctx)
    return model
