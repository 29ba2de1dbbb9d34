"""Streaming measurement passes over corpus batches: one model alone, or quantized against baseline.

The baseline pass keeps the current batch's attention maps (one batch only); the
quantized pass compares each layer's map with the baseline's as soon as that
layer has run, then drops it.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from . import metrics as M
from .probe import capture


@dataclass
class PassStats:
    """One model on one batch. B sequences, L layers, H heads, D hidden, T tokens, V vocab."""

    sink_mass: torch.Tensor  # [B,L,H]
    entropy: torch.Tensor  # [B,L,H]
    massive: torch.Tensor  # [B,L]
    sink_hidden: torch.Tensor  # [B,L,D] hidden state of the first sink position after each layer
    logp: torch.Tensor  # [B,T,V] float32 log-probabilities
    nonfinite_layer: int | None = None  # first layer whose output had NaN/Inf
    maps: list | None = None  # L x [B,H,T,T] (baseline pass only)
    js: torch.Tensor | None = None  # [B,L,H] against ref maps (quantized pass only)
    votes: torch.Tensor | None = None  # [B,T] heads (over all layers) giving a key > 0.3 of attention


@torch.no_grad()
def forward_stats(model, input_ids: torch.Tensor, sink_positions=(0,), keep_maps=False,
                  ref_maps=None) -> PassStats:
    L = len(ref_maps) if ref_maps is not None else None
    rows = M.sink_rows(input_ids.shape[1], sink_positions)
    mass, ent, js, maps, hid, mass_ratio, bad = {}, {}, {}, {}, {}, {}, []
    votes = torch.zeros(input_ids.shape, dtype=torch.long)
    s0 = sink_positions[0]

    def on_attn(i, probs):
        probs = probs.float()
        mass[i] = M.sink_mass(probs, sink_positions)
        ent[i] = M.row_entropy(probs, rows)
        votes.add_(M.key_votes(probs, rows).cpu())
        if keep_maps:
            maps[i] = probs
        if ref_maps is not None:
            js[i] = M.attn_js(ref_maps[i], probs, rows).float()

    def on_hidden(i, h):
        if not bad and not torch.isfinite(h).all():
            bad.append(i)
        hid[i] = h[:, s0, :].float().cpu()
        mass_ratio[i] = M.massive_ratio(h, s0).cpu()

    with capture(model, on_attn, on_hidden) as seen:
        out = model(input_ids=input_ids.to(model.device), use_cache=False)
    n = len(hid)
    if len(seen) != n:
        from .errors import CaptureError

        raise CaptureError(f"attention came back from {len(seen)} of {n} layers")
    if L is not None and L != n:
        raise ValueError(f"baseline has {L} layers, quantized model {n}")
    stack = lambda d: torch.stack([d[i] for i in range(n)], dim=1).cpu()  # noqa: E731
    return PassStats(
        sink_mass=stack(mass), entropy=stack(ent), massive=stack(mass_ratio), sink_hidden=stack(hid),
        logp=torch.log_softmax(out.logits.float(), dim=-1).cpu(),
        nonfinite_layer=bad[0] if bad else None,
        maps=[maps[i] for i in range(n)] if keep_maps else None,
        js=stack(js) if ref_maps is not None else None, votes=votes)


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

    def add(self, st: PassStats, ids: torch.Tensor) -> None:
        self.nll += list(M.token_nll(st.logp, ids).numpy())
        self.sink_mass += list(st.sink_mass.numpy())
        self.entropy += list(st.entropy.numpy())
        self.massive += list(st.massive.numpy())
        self.votes += list(st.votes.numpy())
        self.ids += list(ids.numpy())
        if st.nonfinite_layer is not None and self.nonfinite_layer is None:
            self.nonfinite_layer = st.nonfinite_layer


@dataclass
class PairSummary:
    """Per-sequence comparison values of quantized against baseline."""

    base: ModelSummary = field(default_factory=ModelSummary)
    quant: ModelSummary = field(default_factory=ModelSummary)
    kl: list = field(default_factory=list)  # N x [T] token KL(base || quant)
    top1: list = field(default_factory=list)  # N x [T] bool
    js: list = field(default_factory=list)  # N x [L,H]
    hidden_cos: list = field(default_factory=list)  # N x [L]
    hidden_relerr: list = field(default_factory=list)  # N x [L]
    logit_delta_max: float = 0.0


def run_single(model, batches, sink_positions) -> ModelSummary:
    s = ModelSummary()
    for ids in batches:
        s.add(forward_stats(model, ids, sink_positions), ids)
    return s


def _add_pair(ps: PairSummary, b: PassStats, q: PassStats, ids: torch.Tensor) -> None:
    ps.quant.add(q, ids)
    ps.kl += list(M.token_kl(b.logp, q.logp).numpy())
    ps.top1 += list((b.logp.argmax(-1) == q.logp.argmax(-1)).numpy())
    ps.js += list(q.js.numpy())
    ps.hidden_cos += list(M.cosine(b.sink_hidden, q.sink_hidden).numpy())
    ps.hidden_relerr += list(M.relerr(b.sink_hidden, q.sink_hidden).numpy())
    d = (q.logp - b.logp).abs().max().item()
    ps.logit_delta_max = max(ps.logit_delta_max, d) if np.isfinite(d) else float("nan")


def run_multi(base_model, quant_models: dict, batches, sink_positions, progress=None,
              on_error=None) -> dict[str, PairSummary]:
    """Compare several quantized models with the baseline, running the baseline once per batch.

    quant_models maps a name to a model. A model whose forward raises is reported through
    on_error(name, exc) and dropped (without on_error the exception propagates).
    """
    out = {name: PairSummary() for name in quant_models}
    live = dict(quant_models)
    base = ModelSummary()
    for k, ids in enumerate(batches):
        b = forward_stats(base_model, ids, sink_positions, keep_maps=True)
        base.add(b, ids)
        for name, model in list(live.items()):
            try:
                q = forward_stats(model, ids, sink_positions, ref_maps=b.maps)
            except Exception as e:
                if on_error is None:
                    raise
                on_error(name, e)
                del live[name], out[name]
                continue
            _add_pair(out[name], b, q, ids)
        b.maps = None
        if progress:
            progress(f"corpus batch {k + 1}/{len(batches)} ({', '.join(live) or 'no model left'})")
    for ps in out.values():
        ps.base = base
    return out


def run_pair(base_model, quant_model, batches, sink_positions, progress=None) -> PairSummary:
    return run_multi(base_model, {"quantized": quant_model}, batches, sink_positions, progress)["quantized"]
