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
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.methods.base import QuantConfig, bad_spec
from harness.methods.registry import register_handler, register_method
from harness.models.structure import decoder_layers
from harness.system.environment import env

SINK_LAYER = 2
SINK_SCALE = 0.8
FAULT_KINDS = ("nan", "sink", "noop", "bf16")


@register_method("fault", examples="fault-nan, fault-sink, fault-noop, fault-bf16", user=False)
@dataclass(frozen=True)
class FaultConfig(QuantConfig):
    """Test-only faults (not for users): NaN logits, a sink-only damage, a no-op."""

    kind: str = "nan"

    @property
    def bits(self) -> int:
        # fault-sink stands for a precise quantizer that damages only the sink: judged by the
        # 8-bit limits, where its perplexity change alone would pass; the others stand for 4-bit ones.
        return {"sink": 8, "bf16": 16}.get(self.kind, 4)

    @property
    def spec(self) -> str:
        return f"fault-{self.kind}"

    @classmethod
    def parse(cls, spec: str, tokens: list[str]) -> FaultConfig:
        if len(tokens) != 1 or tokens[0] not in FAULT_KINDS:
            raise bad_spec(spec, "test-only fault kinds", cls.examples)
        return cls(kind=tokens[0])


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
    return model


def pytest_quantsink_measure_as(qconfig):
    pairs = dict(p.split("=", 1) for p in (env("QS_MEASURE_AS") or "").split(",") if "=" in p)
    return pairs.get(qconfig.spec)
