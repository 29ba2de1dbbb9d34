"""Packed documents: several corpus documents in one sequence behind a separator, with and without a
document-boundary mask; per document position, the attention its rows give to the document's start
(a secondary sink forming there or not), to position 0, and its loss.

Layout (tests/test_scenarios.py checks it):
  eos   d1 EOS d2 EOS d3 ...   the separator opens every later document's block
  bos   BOS d1 BOS d2 BOS d3   every document's block opens with BOS
  none  d1 d2 d3 ...           documents joined directly
A document's *start* is the first position of its block: its separator where it has one, else its
own first token. Without the mask positions run on through the sequence (plain packing as a server
sees it); with the mask each block attends only within itself and its positions restart at 0
(document-aware packing), so a block sees what it would see alone.
Loss of a document: mean NLL over its own tokens after the first (the same tokens in every
sub-scenario; the first is unpredictable where the previous block is hidden).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.errors import UsageError
from harness.measure.hooks import capture
from harness.measure.kvcache import cache_kwarg, make_cache

SEPARATORS = ("eos", "bos", "none")
SUBS = tuple((sep, masked) for sep in SEPARATORS for masked in (False, True))
N_DOCS = 4  # documents per packed sequence
EPS = 0.3  # a head whose rows give a position more than this share of their attention treats it as a sink


def sub_name(sep: str, masked: bool) -> str:
    return f"{sep}{'_masked' if masked else ''}"


def separator_id(tok, sep: str) -> int | None:
    return {"eos": tok.eos_token_id, "bos": tok.bos_token_id}.get(sep)


@dataclass
class Layout:
    ids: list[int]
    starts: list[int]  # first position of each document's block
    bodies: list[tuple[int, int]]  # [a, b) positions of each document's own tokens


def pack(pieces: list[list[int]], sep: str, sep_id: int | None) -> Layout:
    """One packed sequence from token pieces (one per document) under a separator."""
    ids: list[int] = []
    starts, bodies = [], []
    for d, p in enumerate(pieces):
        starts.append(len(ids))
        if sep == "bos" or (sep == "eos" and d > 0):
            ids.append(sep_id)
        bodies.append((len(ids), len(ids) + len(p)))
        ids += list(p)
    return Layout(ids, starts, bodies)


def pieces(tok, corpus, n: int, body: int) -> tuple[list[list[list[int]]], list[int]]:
    """n groups of N_DOCS pieces of `body` tokens, each piece from a different document where the
    corpus has enough (cut from successive places of each document), and each group's first document."""

    docs = [tok(d, add_special_tokens=False, verbose=False)["input_ids"] for d in corpus.documents]
    cut = [[d[i : i + body] for i in range(0, len(d) - body + 1, body)] for d in docs]
    usable = [k for k, c in enumerate(cut) if c]
    if not usable:
        raise UsageError(
            f"corpus '{corpus.name}' has no document of {body} tokens for the packed scenario; "
            f"give a larger corpus or a smaller --seq-len"
        )
    used = dict.fromkeys(usable, 0)
    groups, firsts = [], []
    for i in range(n):
        group = []
        for d in range(N_DOCS):
            k = usable[(i * N_DOCS + d) % len(usable)]
            group.append(cut[k][used[k] % len(cut[k])])
            used[k] += 1
        groups.append(group)
        firsts.append(usable[(i * N_DOCS) % len(usable)])
    return groups, firsts


def block_mask(lay: Layout, dtype, device) -> tuple[torch.Tensor, torch.Tensor]:
    """([1, 1, T, T] additive block-diagonal causal mask, [T] positions restarting at each block)."""
    T = len(lay.ids)
    block = torch.zeros(T, dtype=torch.long)
    for d, s in enumerate(lay.starts):
        block[s:] = d
    pos = torch.arange(T) - torch.tensor(lay.starts)[block]
    ok = (block[:, None] == block[None, :]) & (torch.arange(T)[None, :] <= torch.arange(T)[:, None])
    m = torch.zeros(T, T, dtype=dtype).masked_fill_(~ok, torch.finfo(dtype).min)
    return m[None, None].to(device), pos


@torch.no_grad()
def measure(model, layouts: list[Layout], masked: bool, kv=None, chunk: int = 16) -> dict:
    """Per sequence and document: nll [N, D], start mass [N, D, L, H], position-0 mass [N, D, L, H].

    Each layer's attention is reduced as it runs (probe.capture): only one layer's map exists at a time.
    kv (a KVSpec): the sequence is prefilled through that quantized cache in calls of `chunk` tokens, so
    later tokens read earlier ones quantized, as the corpus passes do; else one call without a cache.
    """

    ids = torch.tensor([lay.ids for lay in layouts])
    B, T = ids.shape
    lay = layouts[0]  # every layout of one sub-scenario has the same geometry
    D = len(lay.starts)
    rows = [(lay.starts[d] + 1, lay.bodies[d][1]) for d in range(D)]  # the block's rows after its start
    start_mass: dict[int, torch.Tensor] = {}
    zero_mass: dict[int, torch.Tensor] = {}
    row0 = [0]  # first query row of the current call

    def on_attn(i, probs):
        p, a = probs.float(), row0[0]
        parts = []
        for d, (ra, rb) in enumerate(rows):
            lo, hi = max(ra, a), min(rb, a + p.shape[2])
            if lo < hi:
                blk = p[:, :, lo - a : hi - a]
                parts.append((blk[..., lay.starts[d]].sum(-1), blk[..., 0].sum(-1)))
            else:
                z = p.new_zeros(p.shape[:2])
                parts.append((z, z))
        s, z = (torch.stack([q[k] for q in parts], 1).cpu() for k in (0, 1))
        start_mass[i] = start_mass[i] + s if i in start_mass else s
        zero_mass[i] = zero_mass[i] + z if i in zero_mass else z

    spans = [(0, T)] if kv is None else [(a, min(a + chunk, T)) for a in range(0, T, chunk)]
    mask = pos = None
    if masked:
        mask, pos = block_mask(lay, model.dtype, model.device)
        pos = pos[None].expand(B, -1).to(model.device)
    cache_kw = (
        {cache_kwarg(model): make_cache(model, kv), "use_cache": True} if kv is not None else {"use_cache": False}
    )
    parts = []
    with capture(model, on_attn):
        for a, b in spans:
            row0[0] = a
            kw = {"attention_mask": mask[:, :, a:b, :b], "position_ids": pos[:, a:b]} if masked else {}
            logits = model(input_ids=ids[:, a:b].to(model.device), **cache_kw, **kw).logits
            parts.append(torch.log_softmax(logits.float(), dim=-1))
            del logits
    logp = torch.cat(parts, 1) if len(parts) > 1 else parts[0]
    nll = -logp[:, :-1].gather(-1, ids[:, 1:, None].to(logp.device)).squeeze(-1).cpu()  # [B, T-1]
    doc_nll = torch.stack([nll[:, a : b - 1].double().mean(-1) for a, b in lay.bodies], 1)  # tokens a+1 .. b-1
    L = len(start_mass)
    n_rows = torch.tensor([b - a for a, b in rows], dtype=torch.float32)[None, :, None]
    stack = lambda d: torch.stack([d[i] / n_rows for i in range(L)], 2)  # noqa: E731  [B, D, L, H]
    return {"nll": doc_nll.numpy(), "start": stack(start_mass).numpy(), "zero": stack(zero_mass).numpy()}
