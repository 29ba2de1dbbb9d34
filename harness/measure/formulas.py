"""Metric formulas on tensors (SPEC section 4). Pure functions: no models, no hooks.

Shapes are written next to each argument: B batch, H heads, T query/key positions,
V vocabulary, D hidden size.
"""

from __future__ import annotations

import math

import torch

LN2 = math.log(2.0)


def sink_rows(T: int, sink_positions: tuple[int, ...]) -> slice:
    """Query rows that count for sink statistics: those after the last sink position."""
    return slice(max(sink_positions) + 1, T)


def sink_mass_sum(rows: torch.Tensor, sink_positions=(0,)) -> torch.Tensor:
    """rows [B,H,R,T] (query rows after the sinks) -> [B,H]: sum over rows of sum_{s in S} A[t, s]."""
    return rows[..., list(sink_positions)].float().sum(-1).sum(-1)


def sink_mass(attn: torch.Tensor, sink_positions=(0,)) -> torch.Tensor:
    """attn [B,H,T,T] -> [B,H]: mean over query rows t > max(S) of sum_{s in S} A[t, s]."""
    rows = attn[:, :, sink_rows(attn.shape[-1], sink_positions), :]
    return sink_mass_sum(rows, sink_positions) / max(1, rows.shape[2])


def votes_from_columns(col: torch.Tensor, first_row: int, eps: float = 0.3) -> torch.Tensor:
    """col [B,...,H,T]: per head, attention each key received summed over query rows t >= first_row
    -> [B,T]: the number of heads whose visible rows (t >= max(s, first_row)) give the key more than
    eps on average. Causal masking makes rows t < s contribute zero to the sums."""
    T = col.shape[-1]
    n_valid = (T - torch.clamp(torch.arange(T, device=col.device), min=first_row)).clamp_min(1)
    return (col / n_valid > eps).flatten(1, -2).sum(1)


def key_votes(attn: torch.Tensor, rows: slice, eps: float = 0.3) -> torch.Tensor:
    """attn [B,H,T,T] -> [B,T]: for each key position, the number of heads whose query rows
    (those in `rows` that can see the key, t >= s) give it more than eps of attention on average.

    A key with votes from many heads is a sink (Sun et al. 2024 find extra ones on the first
    "." or newline).
    """
    return votes_from_columns(attn[:, :, rows, :].float().sum(2), rows.start or 0, eps)


def entropy_sum(rows: torch.Tensor) -> torch.Tensor:
    """rows [B,H,R,T] -> [B,H]: summed Shannon entropy (nats) of the attention rows."""
    p = rows.float()
    return -(torch.special.xlogy(p, p)).sum(-1).sum(-1)


def row_entropy(attn: torch.Tensor, rows: slice) -> torch.Tensor:
    """attn [B,H,T,T] -> [B,H]: mean Shannon entropy (nats) of the attention rows."""
    sel = attn[:, :, rows, :]
    return entropy_sum(sel) / max(1, sel.shape[2])


def js_divergence(p: torch.Tensor, q: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Jensen-Shannon divergence in nats along dim; in [0, ln 2], symmetric, 0 iff p == q.

    Written as 0.5 * sum m * f(d) with m = (p+q)/2, d = (p-q)/(p+q) and
    f(d) = (1+d) log(1+d) + (1-d) log(1-d). For small |d|, f = 2d atanh(d) + log1p(-d^2)
    avoids the cancellation of the textbook form, so float32 attention maps keep about six
    significant digits even when the two maps barely differ (float64 of the textbook form costs
    twice the time on CPU).
    """
    if not p.is_floating_point():
        p, q = p.double(), q.double()
    dtype = torch.promote_types(p.dtype, q.dtype)
    if dtype not in (torch.float32, torch.float64):
        dtype = torch.float32
    p, q = p.to(dtype), q.to(dtype)
    s = p + q
    d = torch.where(s > 0, (p - q) / s.clamp_min(torch.finfo(dtype).tiny), torch.zeros_like(s))
    small = d.abs() < 0.5
    ds = torch.where(small, d, torch.zeros_like(d))
    f_small = 2 * ds * torch.atanh(ds) + torch.log1p(-ds * ds)
    f_big = torch.special.xlogy(1 + d, 1 + d) + torch.special.xlogy(1 - d, 1 - d)
    f = torch.where(small, f_small, f_big)
    return (0.25 * (s * f).sum(dim)).clamp(0.0, LN2)


def attn_js(p: torch.Tensor, q: torch.Tensor, rows: slice) -> torch.Tensor:
    """p, q [B,H,T,T] -> [B,H]: mean JS divergence over the query rows."""
    return js_divergence(p[:, :, rows, :], q[:, :, rows, :]).mean(-1)


def token_kl(logp_base: torch.Tensor, logp_quant: torch.Tensor) -> torch.Tensor:
    """[..., V] log-probabilities -> [...]: KL(base || quant) per position, >= 0."""
    p = logp_base.exp()
    return (p * (logp_base - logp_quant)).sum(-1).clamp_min(0.0)


def topk_kl(top_lp: torch.Tensor, top_ix: torch.Tensor, logp_quant: torch.Tensor) -> torch.Tensor:
    """KL(base || quant) per position [...] from the baseline's K largest log-probabilities top_lp [..., K]
    (normalized over the whole vocabulary, so the remainder mass 1 - sum exp(top_lp) is exact), their
    token ids top_ix [..., K] and the quantized log-probabilities [..., V]. The K tokens count exactly and
    the rest of the vocabulary as one bucket; by the log-sum inequality this is at most the full KL, short
    by the divergence inside the remainder (measured in docs/scale.md)."""
    lb = top_lp.double()
    lq = logp_quant.gather(-1, top_ix.to(logp_quant.device).long()).double().to(lb.device)
    pb = lb.exp()
    head = (pb * (lb - lq)).sum(-1)
    rb = (1.0 - pb.sum(-1)).clamp_min(0.0)
    rq = (1.0 - lq.exp().sum(-1)).clamp_min(1e-30)
    tail = torch.where(rb > 0, rb * (rb.clamp_min(1e-30).log() - rq.log()), torch.zeros_like(rb))
    return (head + tail).float()


def token_nll(logp: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """logp [B,T,V], ids [B,T] -> [B,T-1]: negative log-likelihood of each next token."""
    return -logp[:, :-1, :].gather(-1, input_ids[:, 1:, None]).squeeze(-1)


def massive_ratio(hidden: torch.Tensor, sink: int = 0) -> torch.Tensor:
    """hidden [B,T,D] -> [B]: max |h| at the sink over median |h| of the other tokens (Sun et al.)."""
    h = hidden.float().abs()
    top = h[:, sink, :].amax(-1)
    others = torch.cat([h[:, :sink, :], h[:, sink + 1 :, :]], dim=1).flatten(1)
    return top / others.median(-1).values.clamp_min(1e-12)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity along the last dim (float64)."""
    a, b = a.double(), b.double()
    return (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-30)


def relerr(ref: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Relative L2 error ||x - ref|| / ||ref|| along the last dim."""
    ref, x = ref.double(), x.double()
    return (x - ref).norm(dim=-1) / ref.norm(dim=-1).clamp_min(1e-30)
