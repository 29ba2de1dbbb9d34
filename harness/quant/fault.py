"""Test-only configurations that plant known faults, so tests can show the gates catch them.

fault-nan : one weight of decoder layer 1 becomes NaN -> NaN logits from layer 1 on.
fault-sink: damages only the sink token (position 0) after decoder layer 2: its largest
            hidden-state dimensions (the massive activations, 1/64 of them) are scaled by 0.8.
            On smollm2-135m that leaves perplexity within 1-2% but turns the sink's hidden
            state (cosine ~0.7) and moves attention off it (scale 0.1 destroyed the model:
            ppl x14; 0.7 gave ppl 1.057).
fault-noop: returns the baseline unchanged (a quantizer that does nothing).
"""
from __future__ import annotations

import torch

from .base import decoder_layers
from .configs import FaultConfig

SINK_LAYER = 2
SINK_SCALE = 0.8


def _sink_hook(module, args, output):
    hidden = output[0] if isinstance(output, tuple) else output
    if hidden.shape[1] < 2:  # a decode step: its one token is not the sink
        return output
    h0 = hidden[:, 0, :]
    top = h0.abs().topk(k=max(1, h0.shape[-1] // 64), dim=-1).indices  # massive dims
    hidden[:, 0, :] = h0.scatter(-1, top, h0.gather(-1, top) * SINK_SCALE)
    return output


@torch.no_grad()
def quantize(cfg: FaultConfig, ctx):
    model = ctx.load_baseline()
    layers = decoder_layers(model)
    if cfg.kind == "nan":
        lin = next(m for m in layers[min(1, len(layers) - 1)].modules() if hasattr(m, "weight")
                   and getattr(m, "weight") is not None and m.weight.dim() == 2)
        lin.weight[0, 0] = float("nan")
    elif cfg.kind == "sink":
        layers[min(SINK_LAYER, len(layers) - 1)].register_forward_hook(_sink_hook)
    return model
