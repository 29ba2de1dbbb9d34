"""Method registry and the spec grammar `METHOD[-wBITS][gGROUP][-OPTION...]`.

Handlers are "module:attr" strings imported only when a configuration runs, so
parsing specs (and importing the package) never pulls in torch, bitsandbytes or
gptqmodel.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import MissingBackend, UsageError, did_you_mean
from .configs import BnbConfig, ComboConfig, FaultConfig, GPTQConfig, KVConfig, PathConfig, QuantConfig, RTNConfig

_WG = re.compile(r"^w(\d+)(?:g(\d+))?$")


@dataclass(frozen=True)
class Method:
    name: str
    config_class: type
    handler: str  # "module:attr" of a function (model_source, config, ctx) -> model
    parse: Callable[[str, list[str]], QuantConfig]
    examples: str
    packages: tuple[str, ...] = ()  # import names that must be present
    install: str = ""

    def load_handler(self):
        missing = [p for p in self.packages if importlib.util.find_spec(p) is None]
        if missing:
            raise MissingBackend(self.name, missing[0], self.install)
        module, attr = self.handler.split(":")
        return getattr(importlib.import_module(module), attr)


def _bad(spec: str, why: str, examples: str) -> UsageError:
    return UsageError(f"bad quantization spec '{spec}': {why}; valid: {examples}")


def _parse_rtn(spec: str, tokens: list[str]) -> QuantConfig:
    ex = METHODS["rtn"].examples
    m = _WG.match(tokens[0]) if tokens else None
    if not m:
        raise _bad(spec, "expected rtn-wBITS[gGROUP][-asym]", ex)
    bits, group = int(m.group(1)), m.group(2)
    if not 2 <= bits <= 8:
        raise _bad(spec, f"rtn takes 2 to 8 bits, not {bits}", ex)
    if group is not None and int(group) < 1:
        raise _bad(spec, "group size must be positive", ex)
    opts = tokens[1:]
    if any(o != "asym" for o in opts):
        raise _bad(spec, f"unknown option '{[o for o in opts if o != 'asym'][0]}' (rtn knows: asym)", ex)
    return RTNConfig(w_bits=bits, group=int(group) if group else None, asym="asym" in opts)


_BNB_KINDS = {"int8": "int8", "nf4": "nf4", "fp4": "fp4", "w8": "int8"}


def _parse_bnb(spec: str, tokens: list[str]) -> QuantConfig:
    ex = METHODS["bnb"].examples
    if len(tokens) != 1 or tokens[0] not in _BNB_KINDS:
        got = "-".join(tokens) or "nothing"
        m = _WG.match(tokens[0]) if tokens else None
        why = (f"bitsandbytes has no {m.group(1)}-bit mode (8-bit: int8; 4-bit: nf4, fp4)" if m
               else f"unknown bitsandbytes mode '{got}'{did_you_mean(got, ['int8', 'nf4', 'fp4'])}")
        raise _bad(spec, why, ex)
    return BnbConfig(kind=_BNB_KINDS[tokens[0]])


GPTQ_BITS = (2, 3, 4, 8)


def _parse_gptq(spec: str, tokens: list[str]) -> QuantConfig:
    ex = METHODS["gptq"].examples
    m = _WG.match(tokens[0]) if tokens else None
    if not m or len(tokens) != 1:
        raise _bad(spec, "expected gptq-wBITSgGROUP", ex)
    bits = int(m.group(1))
    if bits not in GPTQ_BITS:
        raise _bad(spec, f"GPTQ takes {', '.join(map(str, GPTQ_BITS))} bits, not {bits}", ex)
    group = int(m.group(2) or 128)
    if group < 1:
        raise _bad(spec, "group size must be positive", ex)
    return GPTQConfig(w_bits=bits, group=group)


_KV = re.compile(r"^w(\d+)(?:g(\d+))?$")
KV_BITS = {"quanto": (2, 4), "hqq": (1, 2, 3, 4, 8)}


def _parse_kv(spec: str, tokens: list[str]) -> QuantConfig:
    ex = METHODS["kv"].examples
    if not tokens or tokens[0] not in KV_BITS:
        got = tokens[0] if tokens else "nothing"
        raise _bad(spec, f"unknown KV-cache backend '{got}'{did_you_mean(got, list(KV_BITS))}", ex)
    backend = tokens[0]
    m = _KV.match(tokens[1]) if len(tokens) > 1 else None
    if not m:
        raise _bad(spec, f"expected kv-{backend}-wBITS[gGROUP][-rRESIDUAL]", ex)
    bits, group = int(m.group(1)), int(m.group(2) or 64)
    if bits not in KV_BITS[backend]:
        raise _bad(spec, f"the {backend} KV cache takes {', '.join(map(str, KV_BITS[backend]))} bits, not {bits}", ex)
    residual = 128
    for opt in tokens[2:]:
        if re.fullmatch(r"r\d+", opt):
            residual = int(opt[1:])
        else:
            raise _bad(spec, f"unknown option '{opt}' (kv knows: rRESIDUAL, e.g. r32)", ex)
    if group < 1 or residual < 1:
        raise _bad(spec, "group size and residual length must be positive", ex)
    return KVConfig(backend=backend, nbits=bits, group=group, residual=residual)


def _parse_fault(spec: str, tokens: list[str]) -> QuantConfig:
    kinds = ("nan", "sink", "noop")
    if len(tokens) != 1 or tokens[0] not in kinds:
        raise _bad(spec, "test-only fault kinds", ", ".join(f"fault-{k}" for k in kinds))
    return FaultConfig(kind=tokens[0])


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("rtn", RTNConfig, "harness.quant.rtn:quantize", _parse_rtn,
               "rtn-w{2..8}[gGROUP][-asym], e.g. rtn-w8, rtn-w4g32, rtn-w3g64-asym", ("torch",),
               "pip install torch"),
        Method("bnb", BnbConfig, "harness.quant.bnb:quantize", _parse_bnb,
               "bnb-int8, bnb-nf4, bnb-fp4", ("bitsandbytes",), "pip install 'bitsandbytes>=0.45'"),
        Method("gptq", GPTQConfig, "harness.quant.gptq:quantize", _parse_gptq,
               "gptq-w{2,3,4,8}gGROUP, e.g. gptq-w4g128, gptq-w3g128, gptq-w2g64", ("gptqmodel",),
               "pip install gptqmodel 'torch==<your torch version>'"),
        Method("path", PathConfig, "harness.quant.path:quantize", lambda s, t: PathConfig(),
               "path:DIR_OR_HUB_ID"),
        Method("kv", KVConfig, "harness.quant.kv:quantize", _parse_kv,
               "kv-quanto-w{2,4}, kv-hqq-w{1,2,3,4,8}, optional gGROUP and -rRESIDUAL, e.g. kv-quanto-w4, "
               "kv-hqq-w2g32-r32; combine with weights as gptq-w4g128+kv-quanto-w4"),
        Method("combo", ComboConfig, "harness.quant.kv:quantize_combo", lambda s, t: ComboConfig(),
               "WEIGHT_SPEC+KV_SPEC, e.g. gptq-w4g128+kv-quanto-w4"),
        Method("fault", FaultConfig, "harness.quant.fault:quantize", _parse_fault,
               "fault-nan, fault-sink, fault-noop"),
    ]
}

USER_METHODS = ("bnb", "gptq", "rtn", "kv", "path")
_VALID = ("bnb-int8, bnb-nf4, bnb-fp4, gptq-wBITSgGROUP, rtn-wBITS[gGROUP][-asym], kv-quanto-wBITS, kv-hqq-wBITS, "
          "WEIGHTS+KV, path:DIR")


def parse_spec(spec: str) -> QuantConfig:
    """Parse one spec string into its config; raise UsageError naming the valid choices."""
    spec = spec.strip()
    if not spec:
        raise UsageError(f"empty quantization spec; valid: {_VALID}")
    if "+" in spec and not spec.startswith("path:"):
        parts = [parse_spec(p) for p in spec.split("+")]
        kvs = [p for p in parts if isinstance(p, KVConfig)]
        rest = [p for p in parts if not isinstance(p, KVConfig)]
        if len(parts) != 2 or len(kvs) != 1 or isinstance(rest[0], ComboConfig):
            raise UsageError(f"'{spec}': a combination is one weight method and one KV-cache method; "
                             f"valid: WEIGHTS+KV, e.g. gptq-w4g128+kv-quanto-w4")
        return ComboConfig(weights=rest[0], kv=kvs[0])
    if spec.startswith("path:"):
        target = spec[len("path:"):]
        if not target:
            raise UsageError("path: needs a directory or Hub id, e.g. path:./my-gptq-model")
        return PathConfig(path=target)
    if spec.lower().startswith(("auto-gptq", "autogptq", "auto_gptq")):
        raise UsageError(
            f"'{spec}': auto-gptq is archived upstream and cannot import under transformers 5; "
            f"use 'gptq-...' instead (e.g. gptq-w4g128), which runs GPTQModel, its maintained "
            f"successor; auto-gptq checkpoints load with --quant path:DIR")
    method, *tokens = spec.split("-")
    if method not in METHODS or method == "combo":
        raise UsageError(f"unknown quantization method '{method}' in '{spec}'"
                         f"{did_you_mean(method, USER_METHODS)}; valid: {_VALID}")
    return METHODS[method].parse(spec, tokens)


def parse_specs(text: str) -> list[QuantConfig]:
    """Parse a comma-separated list, dropping duplicates while keeping order."""
    out, seen = [], set()
    for part in text.split(","):
        if not part.strip():
            continue
        cfg = parse_spec(part)
        if cfg.spec not in seen:
            seen.add(cfg.spec)
            out.append(cfg)
    if not out:
        raise UsageError(f"--quant is empty; valid: {_VALID}")
    return out


def expand_shorthand(bits: str, methods: str, group: int = 128) -> list[QuantConfig]:
    """`--bits 8,4 --methods bnb,gptq` -> every valid (method, bits) pair, in the given order."""
    try:
        bit_list = [int(b) for b in bits.split(",") if b.strip()]
    except ValueError:
        raise UsageError(f"--bits takes integers such as 8,4 (got '{bits}')") from None
    names = [m.strip() for m in methods.split(",") if m.strip()]
    for n in names:
        if n not in ("bnb", "gptq", "rtn"):
            raise UsageError(f"unknown method '{n}' in --methods{did_you_mean(n, ['bnb', 'gptq', 'rtn'])};"
                             f" valid: bnb, gptq, rtn")
    specs: list[str] = []
    for n in names:
        for b in bit_list:
            if n == "bnb":
                specs += {8: ["bnb-int8"], 4: ["bnb-nf4", "bnb-fp4"]}.get(b, [])
            elif n == "gptq" and b in GPTQ_BITS:
                specs.append(f"gptq-w{b}g{group}")
            elif n == "rtn" and 2 <= b <= 8:
                specs.append(f"rtn-w{b}g{group}" if b < 8 else "rtn-w8")
    if not specs:
        raise UsageError(f"--bits {bits} --methods {methods} gives no valid pairing "
                         f"(bnb: 8,4; gptq: 2,3,4,8; rtn: 2-8)")
    return parse_specs(",".join(specs))


def path_bits(path: str) -> int | None:
    """Bit-width recorded in a local checkpoint's config.json, if any (no model load)."""
    cfg = Path(path) / "config.json"
    if not cfg.is_file():
        return None
    try:
        q = json.loads(cfg.read_text()).get("quantization_config") or {}
    except (OSError, ValueError):
        return None
    if q.get("load_in_8bit"):
        return 8
    if q.get("load_in_4bit"):
        return 4
    b = q.get("bits") or q.get("nbits") or q.get("weights")
    return int(b) if isinstance(b, int) else None


def bit_class(cfg: QuantConfig) -> str:
    """Policy class of a config: '8', '4', '3' or '2' (<=2); path checkpoints read their config."""
    bits = cfg.bits if not isinstance(cfg, PathConfig) else path_bits(cfg.path)
    if bits is None:
        return "4"
    if bits >= 8:
        return "8"
    if bits >= 4:
        return "4"
    return "3" if bits == 3 else "2"
