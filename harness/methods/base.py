"""What every method shares: the config base class, the context a handler receives, bit classes.

Pure Python: importing this never imports torch or a quantization backend.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from harness.errors import UsageError

WG = re.compile(r"^w(\d+)(?:g(\d+))?$")  # the wBITS[gGROUP] token of the spec grammar
BIT_CLASSES = ("8", "6", "5", "4", "3", "2")  # policy classes; "2" holds every width <= 2
CONFIG_CLASSES: dict[str, type] = {}  # method name -> config class (filled by registry.register_method)


def class_of_bits(bits: int) -> str:
    """Policy class of a bit width: 8 (>= 8), 6 (6-7), 5, 4, 3, 2 (<= 2)."""
    if bits >= 8:
        return "8"
    if bits >= 6:
        return "6"
    return str(max(2, bits))


def bad_spec(spec: str, why: str, examples: str) -> UsageError:
    return UsageError(f"bad quantization spec '{spec}': {why}; valid: {examples}")


@dataclass(frozen=True)
class QuantConfig:
    """Base of every method's config: canonical spec, bits, group, bit class, dict round trip.

    A method subclasses it in its own module and registers it with `@register_method`.
    """

    method: ClassVar[str] = ""
    examples: ClassVar[str] = ""

    @property
    def spec(self) -> str:  # canonical spec string, e.g. "rtn-w4g32"
        raise NotImplementedError

    @property
    def bits(self) -> int | None:
        return None

    @property
    def group_size(self) -> int | None:
        return None

    @property
    def bit_class(self) -> str | None:
        """Policy class, or None when it cannot be told (then --bit-class decides)."""
        return class_of_bits(self.bits) if self.bits is not None else None

    @classmethod
    def parse(cls, spec: str, tokens: list[str]) -> QuantConfig:
        """The config for `spec` (tokens: the parts after the method name, split on '-')."""
        raise NotImplementedError

    @classmethod
    def shorthand(cls, bits: int, group: int) -> list[str]:
        """Specs that `--bits B --methods <this>` expands to (none: this method lacks B bits)."""
        return []

    def preflight(self, model_info) -> None:
        """Checks against the model before anything loads (model_info: inputs.ModelInfo)."""

    def to_dict(self) -> dict:
        return {"method": self.method, **dataclasses.asdict(self)}

    def cache_identity(self) -> dict | None:
        """What identifies the quantized weights for the results cache, given the baseline's weights
        (deterministic methods: the config itself); None: never cache this configuration."""
        return self.to_dict()

    @classmethod
    def from_dict(cls, d: dict) -> QuantConfig:
        """The config a to_dict() came from (any registered method when called on the base class)."""
        d = dict(d)
        name = d.pop("method", cls.method)
        klass = CONFIG_CLASSES.get(name) if cls is QuantConfig else cls
        if klass is None:
            raise UsageError(f"no quantization method '{name}' is registered")
        if klass is not cls and klass.from_dict.__func__ is not QuantConfig.from_dict.__func__:
            return klass.from_dict({"method": name, **d})
        return klass(**d)


@dataclass(frozen=True)
class GroupedWeightConfig(QuantConfig):
    """Base of `<method>-w<bits>g<group>` weight methods (GPTQ, AWQ, HQQ): the two fields and what
    they spell; subclasses set their own defaults, parse and bits_per_weight."""

    w_bits: int = 4
    group: int = 128

    @property
    def spec(self) -> str:
        return f"{self.method}-w{self.w_bits}g{self.group}"

    @property
    def bits(self) -> int:
        return self.w_bits

    @property
    def group_size(self) -> int:
        return self.group


@dataclass
class QuantContext:
    """Everything a handler may need; handlers load what they use, lazily."""

    model_dir: Path  # baseline checkpoint (safetensors)
    model_key: str  # identifies the baseline weights for cache keys
    dtype: str = "fp32"
    device: str = "cpu"
    load_baseline: Callable[[], object] | None = None  # fresh baseline copy (eager attention)
    shared_baseline: Callable[[], object] | None = None  # the run's baseline itself (must not be modified)
    tokenizer: object | None = None
    calibration: Callable[[int, int], tuple[list[str], str]] | None = None  # (n, seed) -> texts, sha
    seed: int = 0
    gptq_samples: int = 64
    progress: Callable[[str], None] = print
    allow_pickle: bool = False
    trust_remote_code: bool = False
    placement: dict = field(default_factory=dict)  # --device-map: device_map/max_memory/offload kwargs for loaders
    info: dict = field(default_factory=dict)  # handler notes recorded in results (cache hits...)
