"""BOS policy: per-sequence loss and sink mass with BOS always, never, and as the tokenizer decides.

The same body tokens are scored under each policy (behaviour.bos_variants): always = [BOS] + body,
never = body; the first body token is left out of the loss (unpredictable without BOS). `auto` is
whichever of the two the tokenizer's own rule picks (no third pass: it is the same input).
A model trained with BOS first can collapse without it (Barbero et al. 2025: Gemma 7B's RULER
82.6 -> 0.0); the gate asks whether quantization makes the model more sensitive to its removal.
"""

from __future__ import annotations

import numpy as np

POLICIES = ("always", "never", "auto")


def measure(model, ids, bos_id: int, kv=None, batch: int = 4) -> dict:
    """{"always"|"never": {"nll": [N], "mass": [N, L, H]}} on the sequences ids [N, T]."""
    from harness.measure.behaviour import bos_variants
    from harness.measure.passes import forward_stats

    out = {p: {"nll": [], "mass": []} for p in ("always", "never")}
    for a in range(0, ids.shape[0], batch):
        with_bos, without = bos_variants(ids[a : a + batch], bos_id)
        s_with = forward_stats(model, with_bos, (0,), kv=kv)
        s_without = forward_stats(model, without, (0,), kv=kv)
        # with: nll[:, k] predicts with_bos[k + 1] = body[k]; body[0] is left out in both
        out["always"]["nll"].append(s_with.nll[:, 1:].double().mean(-1).numpy())
        out["always"]["mass"].append(s_with.sink_mass.numpy())
        out["never"]["nll"].append(s_without.nll.double().mean(-1).numpy())
        out["never"]["mass"].append(s_without.sink_mass.numpy())
    return {p: {k: np.concatenate(v) for k, v in d.items()} for p, d in out.items()}
