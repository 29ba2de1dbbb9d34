"""Test-only helpers: fault configurations and a hook to measure one configuration as another.

Nothing here is registered unless this module is imported (`-p harness.testing` for pytest):

    QS_MEASURE_AS="rtn-w4g32=rtn-w3g32" pytest suites -p harness.testing ...

measures rtn-w3g32 under the name rtn-w4g32 (results.json records `measured_as`), to show that
regression gates catch a worse model. The fault methods plant known damage:

fault-nan : one weight of decoder layer 1 becomes NaN -> NaN logits from layer 1 on.
fault-sink: damages only the sink token (position 0) after decoder layer 2: its largest
            hidden-state dimensions (the massive activations, 1/64 of them) are scaled by 0.8.
            On smollm2-135m that leaves perplexity within 1-2% but turns the sink's hidden
            state (cosine ~0.7) and moves attention off it (scale 0.1 destroyed the model:
            ppl x14; 0.7 gave ppl 1.057).
fault-noop: returns the baseline unchanged (a quantizer that does nothing).
fault-bf16: the baseline's weights rounded to bfloat16 and back (computed in the baseline dtype): a
            benign change, far smaller than any quantizer's, that every default gate must pass.

The fault zoo (harness/testing/zoo.py) plants damage with a known place and strength:
`fault-KIND[-lLAYER[hHEAD]][-nSTEPS][-sSTRENGTH]`, e.g. fault-neuron-s0.5, fault-query-l3h2-s0.5,
fault-key-l2h1, fault-mlp-l2-s0.3, fault-kvsink-s0.9, fault-late-n24-s1, fault-diffuse-s0.5, fault-fp16;
each records its ground truth in results.json (info.planted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.errors import UsageError
from harness.methods.base import QuantConfig, bad_spec
from harness.methods.registry import register_handler, register_method
from harness.models.structure import decoder_layers
from harness.system.environment import env

SINK_LAYER = 2
SINK_SCALE = 0.8
ZOO_KINDS = ("neuron", "query", "key", "mlp", "kvsink", "late", "diffuse", "fp16")
FAULT_KINDS = ("nan", "sink", "noop", "bf16", *ZOO_KINDS)
NEEDS_LAYER = ("query", "key", "mlp")
LATE_AFTER = 24  # fault-late: decoded tokens before the damage starts (default)
_OPTION = re.compile(r"l(\d+)(?:h(\d+))?|n(\d+)|s(\d*\.?\d+)")


@register_method(
    "fault",
    examples="fault-nan, fault-sink, fault-noop, fault-bf16; zoo: fault-KIND[-lLAYER[hHEAD]][-nSTEPS][-sSTRENGTH] "
    f"with KIND one of {', '.join(ZOO_KINDS)}",
    user=False,
)
@dataclass(frozen=True)
class FaultConfig(QuantConfig):
    """Test-only faults (not for users): NaN logits, a sink-only damage, a no-op, and the zoo's planted faults."""

    kind: str = "nan"
    layer: int | None = None
    head: int | None = None
    strength: float = 1.0
    after: int = LATE_AFTER

    @property
    def bits(self) -> int:
        # fault-sink stands for a precise quantizer that damages only the sink: judged by the
        # 8-bit limits, where its perplexity change alone would pass; the others stand for 4-bit ones.
        return {"sink": 8, "bf16": 16, "fp16": 16}.get(self.kind, 4)

    @property
    def spec(self) -> str:
        out = f"fault-{self.kind}"
        if self.layer is not None:
            out += f"-l{self.layer}" + (f"h{self.head}" if self.head is not None else "")
        if self.kind == "late" and self.after != LATE_AFTER:
            out += f"-n{self.after}"
        if self.kind in ZOO_KINDS and self.kind not in ("fp16",) and self.strength != 1.0:
            out += f"-s{self.strength:g}"
        return out

    @classmethod
    def parse(cls, spec: str, tokens: list[str]) -> FaultConfig:
        if not tokens or tokens[0] not in FAULT_KINDS or (len(tokens) > 1 and tokens[0] not in ZOO_KINDS):
            raise bad_spec(spec, "test-only fault kinds", cls.examples)
        kw: dict = {"kind": tokens[0]}
        for tok in tokens[1:]:
            m = _OPTION.fullmatch(tok)
            if m is None:
                raise bad_spec(spec, f"fault option '{tok}' (lN, lNhM, nN or sX)", cls.examples)
            if m.group(1):
                kw["layer"] = int(m.group(1))
                kw["head"] = int(m.group(2)) if m.group(2) else None
            elif m.group(3):
                kw["after"] = int(m.group(3))
            else:
                kw["strength"] = float(m.group(4))
        if kw["kind"] in NEEDS_LAYER and "layer" not in kw:
            raise bad_spec(spec, f"fault-{kw['kind']} needs its layer (-lN)", cls.examples)
        if not 0 < kw.get("strength", 1.0) <= 1:
            raise bad_spec(spec, "fault strength (-sX with 0 < X <= 1)", cls.examples)
        return cls(**kw)


def _sink_hook(module, args, output):
    hidden = output[0] if isinstance(output, tuple) else output
    if hidden.shape[1] < 2:  # a decode step: its one token is not the sink
        return output
    h0 = hidden[:, 0, :]
    top = h0.abs().topk(k=max(1, h0.shape[-1] // 64), dim=-1).indices  # massive dims
    hidden[:, 0, :] = h0.scatter(-1, top, h0.gather(-1, top) * SINK_SCALE)
    return output


@register_handler(FaultConfig)
def quantize(cfg: FaultConfig, ctx):
    import torch

    model = ctx.load_baseline()
    if cfg.kind in ZOO_KINDS:
        from harness.testing.zoo import plant

        try:
            ctx.info["planted"] = plant(cfg, model, ctx.tokenizer)
        except ValueError as e:
            raise UsageError(str(e)) from None
        return model
    layers = decoder_layers(model)
    with torch.no_grad():
        if cfg.kind == "nan":
            lin = next(
                m
                for m in layers[min(1, len(layers) - 1)].modules()
                if hasattr(m, "weight") and m.weight is not None and m.weight.dim() == 2
            )
            lin.weight[0, 0] = float("nan")
        elif cfg.kind == "sink":
            layers[min(SINK_LAYER, len(layers) - 1)].register_forward_hook(_sink_hook)
        elif cfg.kind == "bf16":
            for p in model.parameters():
                if p.is_floating_point():
                    p.copy_(p.to(torch.bfloat16).to(p.dtype))
    at = {"nan": min(1, len(layers) - 1), "sink": min(SINK_LAYER, len(layers) - 1)}.get(cfg.kind)
    family = {"nan": "non-finite", "sink": "sink damage"}.get(cfg.kind, "no damage")
    ctx.info["planted"] = {"family": family, "layer": at, "module": None, "heads": []}
    return model


def pytest_quantsink_measure_as(qconfig):
    pairs = dict(p.split("=", 1) for p in (env("QS_MEASURE_AS") or "").split(",") if "=" in p)
    return pairs.get(qconfig.spec)
