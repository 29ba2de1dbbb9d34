"""`SPEC-keep:MODULE[,MODULE...]`: a weight configuration with some modules kept at baseline precision.

The kept modules are swapped in from the baseline (a copy of the baseline's own module at the same
path), so it works for every weight method, including `path:` checkpoints whose modules have baseline
counterparts. Names are `layers.<i>` (a whole decoder layer) or `layers.<i>.<path>` (a module inside
it, e.g. `layers.1.mlp.down_proj`), as harness.models.structure.linear_modules names them.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass

from harness.errors import UsageError
from harness.methods.base import QuantConfig
from harness.methods.combo import ComboConfig
from harness.methods.kv import KVConfig
from harness.methods.registry import (
    backend_modules,
    get_method,
    register_handler,
    register_method,
)
from harness.models.structure import decoder_layers, linear_modules

MARK = "-keep:"
_NAME = re.compile(r"^layers\.\d+(\.[A-Za-z_][A-Za-z0-9_]*)*$")
EXAMPLE = "rtn-w3g32-keep:layers.1.mlp.down_proj,layers.2"


@register_method("keep", examples=f"SPEC-keep:MODULE[,MODULE...], e.g. {EXAMPLE}", user=False)
@dataclass(frozen=True)
class KeepConfig(QuantConfig):
    """A weight configuration whose named modules stay at baseline precision."""

    inner: QuantConfig = None  # type: ignore[assignment]
    keep: tuple = ()

    @property
    def spec(self) -> str:
        return f"{self.inner.spec}{MARK}{','.join(self.keep)}"

    @property
    def bits(self) -> int | None:
        return self.inner.bits

    @property
    def group_size(self) -> int | None:
        return self.inner.group_size

    @property
    def bit_class(self) -> str | None:
        return self.inner.bit_class

    @classmethod
    def parse(cls, spec: str, tokens: list) -> KeepConfig:
        """tokens: [inner config, names text]."""
        inner, text = tokens
        if not keeps_modules(inner):
            raise UsageError(
                f"'{spec}': {inner.spec} cannot keep modules: its weights already are the baseline's "
                f"(a KV-cache method); put keep: on the weight part, e.g. "
                f"rtn-w4g32-keep:layers.1.mlp.down_proj+kv-quanto-w4"
            )
        if isinstance(inner, KeepConfig):
            raise UsageError(f"'{spec}': one keep: list per configuration; list every module once, e.g. {EXAMPLE}")
        names = [n.strip() for n in text.split(",")]
        if not any(names) or not all(names):
            raise UsageError(f"'{spec}': keep: needs comma-separated module names, e.g. {EXAMPLE}")
        bad = [n for n in names if not _NAME.match(n)]
        if bad:
            raise UsageError(
                f"'{spec}': '{bad[0]}' is not a module name: names are layers.<i> or "
                f"layers.<i>.<module path>, e.g. layers.1.mlp.down_proj"
            )
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise UsageError(f"'{spec}': '{dup}' is listed twice in keep:; list each module once")
        return cls(inner=inner, keep=tuple(names))

    def preflight(self, model_info) -> None:
        self.inner.preflight(model_info)
        check_names(self.keep, module_names(model_info.meta), self.spec)

    def backend_modules(self) -> list[str]:
        return backend_modules(self.inner)

    def to_dict(self) -> dict:
        return {"method": self.method, "inner": self.inner.to_dict(), "keep": list(self.keep)}

    @classmethod
    def from_dict(cls, d: dict) -> KeepConfig:
        return cls(inner=QuantConfig.from_dict(d["inner"]), keep=tuple(d["keep"]))


def keeps_modules(cfg: QuantConfig) -> bool:
    """Whether a configuration has quantized weights whose modules can be kept (not a KV-cache-only method)."""

    return not isinstance(cfg, KVConfig) and getattr(cfg, "keeps_modules", True)


def with_keep(cfg: QuantConfig, names) -> QuantConfig:
    """cfg with `names` kept at baseline precision (a combination keeps them in its weight part)."""

    if isinstance(cfg, ComboConfig):
        return ComboConfig(weights=with_keep(cfg.weights, names), kv=cfg.kv)
    if isinstance(cfg, KeepConfig):
        return KeepConfig(cfg.inner, tuple(dict.fromkeys([*cfg.keep, *names])))
    return KeepConfig(cfg, tuple(names))


def kept(cfg: QuantConfig) -> tuple:
    """The module names a configuration keeps at baseline precision (none for plain configurations)."""
    if isinstance(cfg, KeepConfig):
        return cfg.keep
    return kept(cfg.weights) if getattr(cfg, "weights", None) is not None else ()


def module_names(model) -> list[str]:
    """Every name keep: accepts for a model: each decoder layer and each module inside one that holds a Linear."""

    out = [f"layers.{i}" for i in range(len(decoder_layers(model)))]
    for name, _, _ in linear_modules(model):
        parts = name.split(".")
        out += [".".join(parts[:k]) for k in range(3, len(parts) + 1)]
    return list(dict.fromkeys(out))


def check_names(names, valid: list[str], spec: str) -> None:
    """UsageError for the first name the model lacks, listing the closest valid names."""
    import difflib

    have = set(valid)
    for n in names:
        if n not in have:
            close = difflib.get_close_matches(n, valid, n=4, cutoff=0.5) or valid[:4]
            raise UsageError(
                f"'{spec}': the model has no module '{n}' to keep; closest: {', '.join(close)} "
                f"(names are layers.<i>[.<module path>])"
            )


def _parent(model, name: str):
    """(container, attribute) of a keep name inside model."""

    layers = decoder_layers(model)
    parts = name.split(".")
    i = int(parts[1])
    if len(parts) == 2:
        return layers, str(i)
    return layers[i].get_submodule(".".join(parts[2:-1])) if len(parts) > 3 else layers[i], parts[-1]


def get_module(model, name: str):
    parent, attr = _parent(model, name)
    return parent[int(attr)] if attr.isdigit() else getattr(parent, attr)


def swap_in(model, source, names) -> dict:
    """Replace each named module of model by a copy of source's; returns {name: the module it replaced}."""
    old = {}
    for n in names:
        parent, attr = _parent(model, n)
        mod = get_module(model, n)
        new = copy.deepcopy(get_module(source, n))
        ref = next(mod.parameters(), None)
        if ref is not None and ref.device.type != "meta":
            new = new.to(ref.device)
        old[n] = mod
        if attr.isdigit():
            parent[int(attr)] = new
        else:
            setattr(parent, attr, new)
    return old


def restore(model, old: dict) -> None:
    """Undo swap_in (latest first)."""
    for n, mod in reversed(list(old.items())):
        parent, attr = _parent(model, n)
        if attr.isdigit():
            parent[int(attr)] = mod
        else:
            setattr(parent, attr, mod)


@register_handler(KeepConfig)
def quantize(cfg: KeepConfig, ctx):
    model = get_method(cfg.inner.method).load_handler()(cfg.inner, ctx)
    check_names(cfg.keep, module_names(model), cfg.spec)
    source = ctx.shared_baseline() if ctx.shared_baseline is not None else ctx.load_baseline()
    swap_in(model, source, cfg.keep)
    ctx.info["kept_modules"] = list(cfg.keep)
    ctx.progress(f"kept {len(cfg.keep)} module(s) at baseline precision: {', '.join(cfg.keep)}")
    return model
