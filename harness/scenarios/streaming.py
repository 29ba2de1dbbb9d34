"""Streaming with KV eviction (StreamingLLM, Xiao et al. 2024): per-position NLL and KL of several
models over long sequences under three cache policies.

Queries run a chunk of CHUNK tokens at a time through a plain cache that really evicts: after
each chunk every layer keeps only the positions a later query may still read (sink + window: the
first k positions and the last W - 1; window only: the last W - 1; full: everything). Inside a
chunk a 4-D additive mask gives each query exactly its own view: key j is visible from query t
when j <= t and (t - j < W, or j < k under sink + window). Every query therefore sees what
token-by-token decoding with a cache of k + W entries shows it; tests/test_scenarios.py checks
the chunked pass against that decoding and against one full-sequence pass under a hand-built mask.

A KV-cache configuration reads its own quantized cache instead (measure.evicting: the backend's layers,
storing only the positions kept), given the same keep set before each call; tests/scenarios/test_kv_streaming.py
checks it against a hand-built reference.

Positions: every token keeps its position in the original sequence (keys are cached after RoPE at
their true positions), so the distances a query sees are the true ones. StreamingLLM renumbers
positions inside the cache instead; with sequences no longer than the model's context the true
positions are in range, and the comparison isolates what eviction removes.
"""

from __future__ import annotations

import torch

from harness.data.tokens import corpus_sequences
from harness.errors import CaptureError
from harness.measure.evicting import evicting_quantized_cache, quantized_count, set_keep
from harness.measure.formulas import token_kl
from harness.measure.kvcache import cache_kwarg

POLICIES = ("full", "sink_window", "window_only")
CHUNK = 128  # queries per forward call


def visible(q_pos: torch.Tensor, k_pos: torch.Tensor, policy: str, sinks: int, window: int) -> torch.Tensor:
    """[C, S] bool: key position k_pos[j] visible from query position q_pos[i] under the policy."""
    q, k = q_pos[:, None], k_pos[None, :]
    ok = k <= q
    if policy != "full":
        near = (q - k) < window
        if policy == "sink_window":
            near = near | (k < sinks)
        ok = ok & near
    return ok


def kept(positions: torch.Tensor, end: int, policy: str, sinks: int, window: int) -> torch.Tensor:
    """[S] bool: cached positions that some query at position >= end can still read."""
    if policy == "full":
        return torch.ones_like(positions, dtype=torch.bool)
    keep = positions > end - window
    if policy == "sink_window":
        keep = keep | (positions < sinks)
    return keep


def additive(ok: torch.Tensor, dtype, device) -> torch.Tensor:
    """[C, S] bool -> [1, 1, C, S] additive mask (0 visible, the dtype's minimum hidden)."""
    m = torch.zeros(ok.shape, dtype=dtype)
    m.masked_fill_(~ok, torch.finfo(dtype).min)
    return m[None, None].to(device)


def full_attention_cache(model):
    """A plain cache whose every layer keeps what it is given (so eviction is ours alone)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    odd = {type(layer).__name__ for layer in cache.layers} - {"DynamicLayer"}
    if odd:
        raise CaptureError(
            f"streaming needs full-attention cache layers; this model's cache has {', '.join(sorted(odd))}"
            f" (sliding-window layers evict by themselves)"
        )
    return cache


def evict(cache, keep: torch.Tensor) -> None:
    """Drop the cached positions where keep is False, in every layer."""
    if bool(keep.all()):
        return
    for layer in cache.layers:
        idx = keep.nonzero().squeeze(-1).to(layer.keys.device)
        layer.keys = layer.keys.index_select(-2, idx)
        layer.values = layer.values.index_select(-2, idx)


@torch.no_grad()
def stream(
    models: dict,
    ids: torch.Tensor,
    policy: str,
    sinks: int,
    window: int,
    chunk: int = CHUNK,
    kvs: dict | None = None,
    reads: dict | None = None,
) -> dict:
    """{name: (nll [B, T-1], kl [B, T-1] or None)} of each model over ids [B, T] under the policy.

    The first model is the reference: KL(reference || model) per position for the others. The
    models run chunk by chunk together, so no model's full-vocabulary output is held for more
    than one chunk. kvs {name: KVSpec}: those models read their own quantized cache, which evicts
    the same positions (measure.evicting); reads {name: {"quantized", "total"}} then grows by the
    (query, key) reads of each, and of them the reads of quantized K/V.
    """

    B, T = ids.shape
    names = list(models)
    kvs = {n: kv for n, kv in (kvs or {}).items() if kv is not None}
    caches = {
        n: evicting_quantized_cache(m, kvs[n]) if n in kvs else full_attention_cache(m) for n, m in models.items()
    }
    nll = {n: torch.empty(B, T - 1) for n in names}
    kl = {n: torch.empty(B, T - 1) for n in names[1:]}
    cached = torch.empty(0, dtype=torch.long)  # positions held by every cache (the same for all models)
    for a in range(0, T, chunk):
        b = min(a + chunk, T)
        q_pos = torch.arange(a, b)
        k_pos = torch.cat([cached, q_pos])
        ok = visible(q_pos, k_pos, policy, sinks, window)
        hi = min(b, T - 1)  # logits at p predict p + 1: the last position predicts nothing here
        keep = kept(k_pos, b, policy, sinks, window)
        ref = None
        for n in names:
            model = models[n]
            if n in kvs:  # a quantized cache stores only the kept positions as it updates
                set_keep(caches[n], keep)
                if reads is not None:
                    r = reads.setdefault(n, {"quantized": 0, "total": 0})
                    r["quantized"] += B * int(ok[:, : quantized_count(caches[n])].sum())
                    r["total"] += B * int(ok.sum())
            out = model(
                input_ids=ids[:, a:b].to(model.device),
                position_ids=q_pos[None].expand(B, -1).to(model.device),
                attention_mask=additive(ok, model.dtype, model.device),
                use_cache=True,
                **{cache_kwarg(model): caches[n]},
            )
            logp = torch.log_softmax(out.logits[:, : hi - a].float(), dim=-1)
            del out
            tgt = ids[:, a + 1 : hi + 1].to(logp.device)
            nll[n][:, a:hi] = -logp.gather(-1, tgt[..., None]).squeeze(-1).cpu()
            if ref is None:
                ref = logp
            else:
                kl[n][:, a:hi] = token_kl(ref, logp.to(ref.device)).cpu()
            del logp
        for n, c in caches.items():
            if n not in kvs:
                evict(c, keep)
        cached = k_pos[keep]
    return {n: (nll[n], kl.get(n)) for n in names}


def long_sequences(tok, corpus, n: int, length: int, bos: str):
    """[N, length] ids cut from the corpus documents joined by EOS (a long sequence spans several
    documents when they are shorter), the document each starts in, and the documents each spans."""

    ids, docs = corpus_sequences(tok, corpus, n, length, bos, with_docs=True)
    eos = tok.eos_token_id
    spans = [int((row == eos).sum()) + 1 if eos is not None else 1 for row in ids]
    return ids, docs, spans


def per_sequence(out: dict, window: int) -> dict:
    """{name: {"nll": [B] mean NLL over predicted positions t >= window, "kl": [B] or None, "curve": [B, T-1]}}.

    Positions before the window fills see the same keys under every policy; they are left out of
    the means so the figures speak only of positions where eviction removed something.
    """
    res = {}
    for n, (nll, kl) in out.items():
        res[n] = {
            "nll": nll[:, window:].double().mean(-1).numpy(),
            "kl": kl[:, window:].double().mean(-1).numpy() if kl is not None else None,
            "curve": nll.numpy(),
        }
    return res
