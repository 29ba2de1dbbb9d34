"""One config object per quantization method (pure Python: importing this never imports torch).

Each config knows its canonical spec string, its bit-width class and how to
round-trip through a dict, so results and caches can record exactly what ran.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class QuantConfig:
    method: ClassVar[str] = ""

    @property
    def spec(self) -> str:  # canonical spec string, e.g. "rtn-w4g32"
        raise NotImplementedError

    @property
    def bits(self) -> int | None:
        return None

    @property
    def group_size(self) -> int | None:
        return None

    def to_dict(self) -> dict:
        return {"method": self.method, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "QuantConfig":
        from .registry import METHODS

        d = dict(d)
        klass = METHODS[d.pop("method")].config_class
        if klass.from_dict.__func__ is not QuantConfig.from_dict.__func__:
            return klass.from_dict({"method": klass.method, **d})
        return klass(**d)


@dataclass(frozen=True)
class RTNConfig(QuantConfig):
    """Pure-torch round-to-nearest fake quantization of every decoder Linear weight."""

    method: ClassVar[str] = "rtn"
    w_bits: int = 4
    group: int | None = None  # None: one scale per output channel
    asym: bool = False

    @property
    def spec(self) -> str:
        g = f"g{self.group}" if self.group else ""
        return f"rtn-w{self.w_bits}{g}" + ("-asym" if self.asym else "")

    @property
    def bits(self) -> int:
        return self.w_bits

    @property
    def group_size(self) -> int | None:
        return self.group


@dataclass(frozen=True)
class BnbConfig(QuantConfig):
    """bitsandbytes LLM.int8 or 4-bit (NF4 / FP4) weights, loaded through transformers."""

    method: ClassVar[str] = "bnb"
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


@dataclass(frozen=True)
class GPTQConfig(QuantConfig):
    """GPTQ through transformers' GPTQConfig and GPTQModel, calibrated on corpus samples."""

    method: ClassVar[str] = "gptq"
    w_bits: int = 4
    group: int = 128

    @property
    def spec(self) -> str:
        return f"gptq-w{self.w_bits}g{self.group}"

    @property
    def bits(self) -> int:
        return self.w_bits

    @property
    def group_size(self) -> int:
        return self.group


@dataclass(frozen=True)
class PathConfig(QuantConfig):
    """An already quantized checkpoint (local directory or Hub id) compared with the baseline."""

    method: ClassVar[str] = "path"
    path: str = ""

    @property
    def spec(self) -> str:
        return f"path:{self.path}"


@dataclass(frozen=True)
class FaultConfig(QuantConfig):
    """Test-only faults (not for users): NaN logits, a sink-only damage, a no-op."""

    method: ClassVar[str] = "fault"
    kind: str = "nan"

    @property
    def bits(self) -> int | None:
        # fault-sink stands for a precise quantizer that damages only the sink: judged by the
        # 8-bit limits, where its perplexity change alone would pass.
        return 8 if self.kind == "sink" else None

    @property
    def spec(self) -> str:
        return f"fault-{self.kind}"


@dataclass(frozen=True)
class KVConfig(QuantConfig):
    """Weights at baseline precision; keys and values read through transformers' quantized
    KV cache (backend quanto or hqq; the newest `residual` tokens stay in full precision)."""

    method: ClassVar[str] = "kv"
    backend: str = "quanto"
    nbits: int = 4
    group: int = 64
    residual: int = 128

    @property
    def spec(self) -> str:
        g = f"g{self.group}" if self.group != 64 else ""
        r = f"-r{self.residual}" if self.residual != 128 else ""
        return f"kv-{self.backend}-w{self.nbits}{g}{r}"

    @property
    def bits(self) -> int:
        return self.nbits

    @property
    def group_size(self) -> int:
        return self.group


@dataclass(frozen=True)
class ComboConfig(QuantConfig):
    """A weight method and a KV-cache method together, e.g. gptq-w4g128+kv-quanto-w4."""

    method: ClassVar[str] = "combo"
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

    def to_dict(self) -> dict:
        return {"method": self.method, "weights": self.weights.to_dict(), "kv": self.kv.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "ComboConfig":
        return cls(weights=QuantConfig.from_dict(d["weights"]), kv=QuantConfig.from_dict(d["kv"]))


def kv_part(cfg: QuantConfig) -> KVConfig | None:
    """The KV-cache part of a configuration, if it has one."""
    if isinstance(cfg, KVConfig):
        return cfg
    if isinstance(cfg, ComboConfig):
        return cfg.kv
    return None
