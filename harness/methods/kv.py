"""KV-cache quantization: the baseline's own weights, read through transformers' QuantizedCache.

The handler returns the model to run; how its cache is made is decided by the measurement
(harness.measure.kvcache.make_cache) from the configuration's KV part, so corpus passes (prefill in
chunks) and generation both go through the quantized cache.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass

from harness.errors import MissingBackend, QuantsinkError, UsageError, did_you_mean
from harness.methods.base import WG, QuantConfig, bad_spec
from harness.methods.registry import register_handler, register_method
from harness.models.structure import shape_of

KV_BITS = {"quanto": (2, 4), "hqq": (1, 2, 3, 4, 8)}
# Full-precision residual (newest tokens). transformers' default is 128, but with the corpus prefilled
# in chunks of 16 (measure.CHUNK) a 128-token sequence would then read only its first chunk back
# quantized (37% of attention's key reads); residual 32 makes 78% of reads quantized at 128 tokens,
# 88% at 256 and 94% at 512, near long-context serving (4k tokens with residual 128: 97%).
# Each KV configuration records the share it really had (info.kv_cache.corpus_quantized_read_share).
RESIDUAL = 32
_BACKEND_PACKAGES = {"quanto": ("optimum.quanto", "pip install optimum-quanto"), "hqq": ("hqq", "pip install hqq")}


@register_method(
    "kv",
    examples="kv-quanto-w{2,4}, kv-hqq-w{1,2,3,4,8}, optional gGROUP and -rRESIDUAL, e.g. "
    "kv-quanto-w4, kv-hqq-w2g32-r16",
)
@dataclass(frozen=True)
class KVConfig(QuantConfig):
    """Weights at baseline precision; keys and values read through transformers' quantized
    KV cache (backend quanto or hqq; the newest `residual` tokens stay in full precision)."""

    backend: str = "quanto"
    nbits: int = 4
    group: int = 64
    residual: int = RESIDUAL

    @property
    def spec(self) -> str:
        g = f"g{self.group}" if self.group != 64 else ""
        r = f"-r{self.residual}" if self.residual != RESIDUAL else ""
        return f"kv-{self.backend}-w{self.nbits}{g}{r}"

    @property
    def bits(self) -> int:
        return self.nbits

    @property
    def group_size(self) -> int:
        return self.group

    @classmethod
    def parse(cls, spec: str, tokens: list[str]) -> KVConfig:
        ex = cls.examples
        if not tokens or tokens[0] not in KV_BITS:
            got = tokens[0] if tokens else "nothing"
            raise bad_spec(spec, f"unknown KV-cache backend '{got}'{did_you_mean(got, list(KV_BITS))}", ex)
        backend = tokens[0]
        m = WG.match(tokens[1]) if len(tokens) > 1 else None
        if not m:
            raise bad_spec(spec, f"expected kv-{backend}-wBITS[gGROUP][-rRESIDUAL]", ex)
        bits, group = int(m.group(1)), int(m.group(2) or 64)
        if bits not in KV_BITS[backend]:
            raise bad_spec(
                spec, f"the {backend} KV cache takes {', '.join(map(str, KV_BITS[backend]))} bits, not {bits}", ex
            )
        residual = RESIDUAL
        for opt in tokens[2:]:
            if re.fullmatch(r"r\d+", opt):
                residual = int(opt[1:])
            else:
                raise bad_spec(spec, f"unknown option '{opt}' (kv knows: rRESIDUAL, e.g. r16)", ex)
        if group < 1 or residual < 1:
            raise bad_spec(spec, "group size and residual length must be positive", ex)
        return cls(backend=backend, nbits=bits, group=group, residual=residual)

    def preflight(self, model_info) -> None:
        """The group must divide the model's KV width and every layer be full attention: found before a
        model loads (a spec that cannot run is a usage error, not a failed run in the history)."""
        try:
            check_full_attention(model_info.meta)
            check_group(model_info.meta, self)
        except QuantsinkError as e:
            raise UsageError(str(e)) from None

    def backend_modules(self) -> list[str]:
        return [_BACKEND_PACKAGES[self.backend][0]]

    @classmethod
    def missing_backend(cls) -> str | None:
        gone = [b for b, (pkg, _) in _BACKEND_PACKAGES.items() if not _present(pkg)]
        return "; ".join(f"{b}: {_BACKEND_PACKAGES[b][1]}" for b in gone) or None


def _present(pkg: str) -> bool:
    return importlib.util.find_spec(pkg.split(".")[0]) is not None and importlib.util.find_spec(pkg) is not None


def kv_part(cfg: QuantConfig) -> KVConfig | None:
    """The KV-cache part of a configuration, if it has one."""
    if isinstance(cfg, KVConfig):
        return cfg
    return getattr(cfg, "kv", None) if isinstance(getattr(cfg, "kv", None), KVConfig) else None


def check_backend(cfg: KVConfig) -> None:
    pkg, install = _BACKEND_PACKAGES[cfg.backend]
    if not _present(pkg):
        raise MissingBackend(f"kv-{cfg.backend}", pkg, install)


def check_full_attention(model) -> None:
    """transformers' QuantizedCache supports only full-attention layers (no sliding windows)."""
    from transformers.cache_utils import get_layer_types_and_kwargs

    types, _ = get_layer_types_and_kwargs(model.config.get_text_config(decoder=True))
    bad = set(types) - {"full_attention"}
    if bad:
        raise QuantsinkError(
            f"{type(model).__name__} has {', '.join(sorted(bad))} layers; transformers' quantized "
            f"KV cache supports only full attention"
        )


def check_group(model, cfg: KVConfig) -> None:
    """quanto and hqq group the flattened [B, kvH, T, d] tensor of every cache update: the group
    must divide kvH x d, or an update whose B x T is odd fails deep inside the backend."""

    shape = shape_of(model.config)
    width = shape.num_kv_heads * shape.head_dim
    if width % cfg.group:
        ok = [g for g in (128, 64, 32, 16, 8) if width % g == 0]
        raise QuantsinkError(
            f"{cfg.spec}: group {cfg.group} does not divide KV heads x head size = {width} of "
            f"{type(model).__name__}; use a group that does, e.g. "
            f"{cfg.spec.replace(f'g{cfg.group}', '').replace(f'-w{cfg.nbits}', f'-w{cfg.nbits}g{ok[0]}')}"
            if ok
            else f"{cfg.spec}: KV width {width} has no usable group size"
        )


def prepare_kv(model, cfg: KVConfig, ctx, **extra) -> None:
    """Checks a model against a KV config and records the cache settings in ctx.info."""
    check_full_attention(model)
    check_group(model, cfg)
    ctx.info["kv_cache"] = {
        "backend": cfg.backend,
        "nbits": cfg.nbits,
        "q_group_size": cfg.group,
        "residual_length": cfg.residual,
        **extra,
    }


@register_handler(KVConfig)
def quantize(cfg: KVConfig, ctx):
    check_backend(cfg)
    model = ctx.shared_baseline() if ctx.shared_baseline is not None else ctx.load_baseline()
    prepare_kv(model, cfg, ctx, weights="baseline (shared)")
    return model
