"""The `quantize` entry point and what every method handler receives."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .configs import QuantConfig
from .registry import METHODS


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
    info: dict = field(default_factory=dict)  # handler notes recorded in results (cache hits...)


def quantize(cfg: QuantConfig, ctx: QuantContext):
    """Quantize (or load) the model for cfg; returns (model, seconds)."""
    handler = METHODS[cfg.method].load_handler()
    t0 = time.perf_counter()
    model = handler(cfg, ctx)
    model.eval()
    return model, time.perf_counter() - t0


def decoder_layers(model):
    """The ModuleList of decoder blocks (length == number of hidden layers)."""
    import torch.nn as nn

    n = getattr(model.config, "num_hidden_layers", None) or getattr(model.config, "n_layer", None)
    best = None
    for _, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and len(mod) == n:
            if best is None:
                best = mod
    if best is None:
        from ..errors import CaptureError

        raise CaptureError(f"cannot find the decoder layers of {type(model).__name__}")
    return best
