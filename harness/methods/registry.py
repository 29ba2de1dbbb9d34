"""The method registry and the spec grammar `METHOD[-wBITS][gGROUP][-OPTION...]`.

Methods register themselves with `@register_method` (config class) and `@register_handler`
(function) in their own module. Every module of this package (a new file is a new method) and the
entry-point group `quantsink.methods` are imported on first use; they import no backend until a
configuration runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata

from harness.errors import MissingBackend, UsageError, did_you_mean
from harness.methods.base import BIT_CLASSES, CONFIG_CLASSES, QuantConfig

_NOT_METHODS = ("base", "registry", "footprint", "bnb_int8")  # every other module here registers a method
ENTRY_POINT_GROUP = "quantsink.methods"


@dataclass
class Method:
    name: str
    config_class: type
    examples: str
    packages: tuple[str, ...] = ()  # import names that must be present
    install: str = ""
    user: bool = True  # offered to users (grammar listings, --methods); False: internal
    handler: Callable | None = None
    origin: str = ""  # module that registered it

    def missing(self) -> str | None:
        """The install line when a needed package is absent, else None."""
        check = getattr(self.config_class, "missing_backend", None)
        if check is not None:
            return check()
        gone = [p for p in self.packages if importlib.util.find_spec(p) is None]
        return f"needs '{gone[0]}': {self.install}" if gone else None

    def load_handler(self) -> Callable:
        gone = [p for p in self.packages if importlib.util.find_spec(p) is None]
        if gone:
            raise MissingBackend(self.name, gone[0], self.install)
        if self.handler is None:
            raise UsageError(f"method '{self.name}' has no handler registered (module {self.origin})")
        return self.handler


_METHODS: dict[str, Method] = {}
_loaded = False


def register_method(name: str, *, examples: str, packages: tuple[str, ...] = (), install: str = "", user: bool = True):
    """Class decorator: register a QuantConfig subclass as method `name`."""

    def deco(cls):
        cls.method = name
        cls.examples = examples
        _METHODS[name] = Method(name, cls, examples, tuple(packages), install, user, origin=cls.__module__)
        CONFIG_CLASSES[name] = cls
        return cls

    return deco


def register_handler(config_class: type):
    """Function decorator: fn(config, ctx) -> model quantizes configurations of config_class."""

    def deco(fn):
        method = next((m for m in _METHODS.values() if m.config_class is config_class), None)
        if method is None:
            raise RuntimeError(f"register {config_class.__name__} with @register_method before its handler")
        method.handler = fn
        return fn

    return deco


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import pkgutil
    from pathlib import Path

    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        if info.name not in _NOT_METHODS:
            importlib.import_module(f"{__package__}.{info.name}")
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()  # importing the module registers its methods
        except Exception as e:  # a broken third-party plugin must not break the harness
            import warnings

            warnings.warn(
                f"quantsink method plugin '{ep.name}' ({ep.value}) failed to load: {type(e).__name__}: {e}",
                stacklevel=2,
            )


def methods() -> dict[str, Method]:
    _load()
    return dict(_METHODS)


def get_method(name: str) -> Method:
    _load()
    if name not in _METHODS:
        raise UsageError(
            f"unknown quantization method '{name}'{did_you_mean(name, user_methods())}; valid: {valid_specs()}"
        )
    return _METHODS[name]


def user_methods() -> list[str]:
    return [n for n, m in methods().items() if m.user]


def valid_specs() -> str:
    return ", ".join(m.examples for m in methods().values() if m.user)


def parse_spec(spec: str) -> QuantConfig:
    """Parse one spec string into its config; raise UsageError naming the valid choices."""
    spec = spec.strip()
    if not spec:
        raise UsageError(f"empty quantization spec; valid: {valid_specs()}")
    if spec.startswith("path:"):
        return get_method("path").config_class.parse(spec, [spec[len("path:") :]])
    if "+" in spec:
        return get_method("combo").config_class.parse(spec, [parse_spec(p) for p in spec.split("+")])
    if "-keep:" in spec:  # SPEC-keep:MODULE,... (methods/keep.py)
        inner, names = spec.split("-keep:", 1)
        return get_method("keep").config_class.parse(spec, [parse_spec(inner), names])
    if spec.lower().startswith(("auto-gptq", "autogptq", "auto_gptq")):
        raise UsageError(
            f"'{spec}': auto-gptq is archived upstream and cannot import under transformers 5; "
            f"use 'gptq-...' instead (e.g. gptq-w4g128), which runs GPTQModel, its maintained "
            f"successor; auto-gptq checkpoints load with --quant path:DIR"
        )
    name, *tokens = spec.split("-")
    if name not in methods() or name in ("combo", "path", "keep"):
        hint = _respelled(spec) or did_you_mean(name, user_methods())
        raise UsageError(f"unknown quantization method '{name}' in '{spec}'{hint}; valid: {valid_specs()}")
    try:
        return _METHODS[name].config_class.parse(spec, tokens)
    except UsageError as e:
        hint = _respelled(spec)
        if hint and "did you mean" not in str(e):
            msg = str(e)
            cut = msg.rfind("; valid:")
            raise UsageError(msg[:cut] + hint + msg[cut:] if cut > 0 else msg + hint) from None
        raise


def _respelled(spec: str) -> str:
    """' (did you mean X?)' for a spec that parses once lower-cased or with '-g32' joined to its width."""
    import re

    for cand in dict.fromkeys([spec.lower(), re.sub(r"-(g\d+)", r"\1", spec), re.sub(r"-(g\d+)", r"\1", spec.lower())]):
        if cand == spec:
            continue
        try:
            parse_spec(cand)
        except UsageError:
            continue
        why = " specs are lower case" if cand.lower() == cand and spec != spec.lower() else ""
        return f" (did you mean '{cand}'?{why})"
    return ""


def parse_specs(text: str) -> list[QuantConfig]:
    """Parse a comma-separated list, dropping duplicates while keeping order."""
    out, seen = [], set()
    for part in _keep_joined(text.split(",")):
        if not part.strip():
            continue
        cfg = parse_spec(part)
        if cfg.spec not in seen:
            seen.add(cfg.spec)
            out.append(cfg)
    if not out:
        raise UsageError(f"--quant is empty; valid: {valid_specs()}")
    return out


def _keep_joined(parts: list[str]) -> list[str]:
    """Rejoin a keep: list the comma split cut: `rtn-w3-keep:a,b,bnb-nf4` -> [`rtn-w3-keep:a,b`, `bnb-nf4`]
    (a part that is a module name - no '-' or ':' before any '+' - continues the keep: part before it)."""
    out: list[str] = []
    for part in parts:
        head = part.strip().split("+")[0]
        if out and "-keep:" in out[-1] and head and "-" not in head and ":" not in head:
            out[-1] += "," + part.strip()
        else:
            out.append(part)
    return out


def shorthand_methods() -> list[str]:
    """Methods that take part in --bits/--methods (those that expand at some bit width)."""
    return [
        n
        for n, m in methods().items()
        if m.user and m.config_class.shorthand.__func__ is not QuantConfig.shorthand.__func__
    ]


def expand_shorthand(bits: str, names: str, group: int = 128) -> list[QuantConfig]:
    """`--bits 8,4 --methods bnb,gptq` -> every valid (method, bits) pair, in the given order."""
    try:
        bit_list = [int(b) for b in bits.split(",") if b.strip()]
    except ValueError:
        raise UsageError(f"--bits takes integers such as 8,4 (got '{bits}')") from None
    wanted = [m.strip() for m in names.split(",") if m.strip()]
    offered = shorthand_methods()
    for n in wanted:
        if n not in offered:
            raise UsageError(
                f"unknown method '{n}' in --methods{did_you_mean(n, offered)}; valid: {', '.join(offered)}"
            )
    specs = [s for n in wanted for b in bit_list for s in _METHODS[n].config_class.shorthand(b, group)]
    if not specs:
        raise UsageError(
            f"--bits {bits} --methods {names} gives no valid pairing; each method's widths: "
            + "; ".join(f"{n}: {_widths(n)}" for n in wanted)
        )
    return parse_specs(",".join(specs))


def _widths(name: str) -> str:
    cls = _METHODS[name].config_class
    return ",".join(str(b) for b in range(1, 17) if cls.shorthand(b, 128)) or "none"


def bit_class(cfg: QuantConfig, fallback: str | None = None) -> str:
    """Policy class of a config; a config that cannot tell uses `fallback` (--bit-class) or is a usage error."""
    cls = cfg.bit_class
    if cls is not None:
        return cls
    if fallback is not None:
        if fallback not in BIT_CLASSES:
            raise UsageError(f"--bit-class '{fallback}' is not a class; valid: {', '.join(BIT_CLASSES)}")
        return fallback
    raise UsageError(
        f"{cfg.spec}: its bit width cannot be read, so no policy class applies; "
        f"give one with --bit-class ({', '.join(BIT_CLASSES)})"
    )


def quantize(cfg: QuantConfig, ctx):
    """Quantize (or load) the model for cfg; returns (model, seconds)."""
    handler = get_method(cfg.method).load_handler()
    t0 = time.perf_counter()
    model = handler(cfg, ctx)
    model.eval()
    return model, time.perf_counter() - t0


def backend_modules(cfg: QuantConfig) -> list[str]:
    """Modules a configuration's backend imports (imported up front, quietly: see harness.system.quiet)."""
    own = getattr(cfg, "backend_modules", None)
    if callable(own):
        return list(own())
    return [p for p in get_method(cfg.method).packages if p != "torch"]


def availability() -> list[tuple[str, str, str]]:
    """(method, examples, 'available' or the install line) for every user method."""
    return [(n, m.examples, m.missing() or "available") for n, m in methods().items() if m.user]
