"""What corpus passes produce: one batch's statistics (PassStats), and per-sequence results collected over a run
for one model (ModelSummary) or a quantized model against the baseline (PairSummary)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from harness.measure import formulas as M


@dataclass
class PassStats:
    """One model on one batch. B sequences, L layers, H heads, D hidden, T tokens, V vocab."""

    sink_mass: torch.Tensor  # [B,L,H]
    entropy: torch.Tensor  # [B,L,H]
    massive: torch.Tensor  # [B,L]
    sink_hidden: torch.Tensor  # [B,L,D] hidden state of the first sink position after each layer
    sink_k: torch.Tensor  # [B,L,kvH*d] the sink's key as attention reads it from the cache
    sink_v: torch.Tensor  # [B,L,kvH*d]
    logp: torch.Tensor | None  # [B,T,V] float32 log-probabilities (None once reduced)
    votes: torch.Tensor  # [B,T] heads (over all layers) giving a key > 0.3 of their attention
    nonfinite_layer: int | None = None  # first layer whose output had NaN/Inf
    js: torch.Tensor | None = None  # [B,L,H] against the baseline (compared passes only)
    kl: torch.Tensor | None = None  # [B,T] KL(baseline || this model) per position
    top1: torch.Tensor | None = None  # [B,T] bool
    logit_delta_max: float = 0.0
    nll: torch.Tensor | None = None  # [B,T-1] token NLL


@dataclass
class ModelSummary:
    """Per-sequence values of one model over the corpus (N sequences)."""

    nll: list = field(default_factory=list)  # N x [T-1] token NLL
    sink_mass: list = field(default_factory=list)  # N x [L,H]
    entropy: list = field(default_factory=list)  # N x [L,H]
    massive: list = field(default_factory=list)  # N x [L]
    votes: list = field(default_factory=list)  # N x [T]
    ids: list = field(default_factory=list)  # N x [T] token ids
    nonfinite_layer: int | None = None

    def add(self, st: PassStats, ids: torch.Tensor, nll: torch.Tensor) -> None:
        self.nll += list(nll.numpy())
        self.sink_mass += list(st.sink_mass.numpy())
        self.entropy += list(st.entropy.numpy())
        self.massive += list(st.massive.numpy())
        self.votes += list(st.votes.numpy())
        self.ids += list(ids.numpy())
        if st.nonfinite_layer is not None and self.nonfinite_layer is None:
            self.nonfinite_layer = st.nonfinite_layer


@dataclass
class PairSummary:
    """Per-sequence comparison values of a quantized model against the baseline."""

    base: ModelSummary = field(default_factory=ModelSummary)
    quant: ModelSummary = field(default_factory=ModelSummary)
    kl: list = field(default_factory=list)  # N x [T] token KL(base || quant)
    top1: list = field(default_factory=list)  # N x [T] bool
    js: list = field(default_factory=list)  # N x [L,H]
    hidden_cos: list = field(default_factory=list)  # N x [L]
    hidden_relerr: list = field(default_factory=list)  # N x [L]
    key_relerr: list = field(default_factory=list)  # N x [L]
    value_relerr: list = field(default_factory=list)  # N x [L]
    kv_relerr: list = field(default_factory=list)  # N x [L]: key and value together
    logit_delta_max: float = 0.0


def add_pair(ps: PairSummary, b: PassStats, q: PassStats, ids: torch.Tensor, nll_q: torch.Tensor) -> None:
    ps.quant.add(q, ids, nll_q)
    ps.kl += list(q.kl.numpy())
    ps.top1 += list(q.top1.numpy())
    ps.js += list(q.js.numpy())
    ps.hidden_cos += list(M.cosine(b.sink_hidden, q.sink_hidden).numpy())
    ps.hidden_relerr += list(M.relerr(b.sink_hidden, q.sink_hidden).numpy())
    ps.key_relerr += list(M.relerr(b.sink_k, q.sink_k).numpy())
    ps.value_relerr += list(M.relerr(b.sink_v, q.sink_v).numpy())
    ps.kv_relerr += list(M.relerr(torch.cat([b.sink_k, b.sink_v], -1), torch.cat([q.sink_k, q.sink_v], -1)).numpy())
    d = q.logit_delta_max
    ps.logit_delta_max = max(ps.logit_delta_max, d) if np.isfinite(d) else float("nan")
