"""Behavioural probes beyond the corpus pass: prompt variants (stability), continuation
perplexity under the baseline (readability), the over-mixing probe (perturbation spread)
and the BOS variants of a sequence (the BOS policy scenario, harness/scenarios/bos.py, uses them).
Each takes a model (and its KV-cache spec) and returns raw per-item values; summarize.py turns them
into metrics.
"""

from __future__ import annotations

import inspect

import torch

from harness.measure.generation import attention_impl, encode_prompt
from harness.measure.kvcache import cache_kwarg, make_cache


def prompt_variants(text: str) -> list[str]:
    """Three neutral variants: an extra space, a trailing newline, the first letter's case flipped."""
    spaced = text.replace(" ", "  ", 1) if " " in text else " " + text
    k = next((i for i, ch in enumerate(text) if ch.isalpha()), None)
    flipped = text if k is None else text[:k] + text[k].swapcase() + text[k + 1 :]
    return [spaced, text + "\n", flipped]


@torch.no_grad()
def continuation_nll(
    model, tok, prompts: list[str], conts: list[list[int]], bos: str = "auto", batch_size: int = 16
) -> list[tuple[float, int]]:
    """(summed NLL, token count) of each continuation given its prompt, under model (teacher forced)."""

    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    keep = "logits_to_keep" in inspect.signature(model.forward).parameters
    out: list[tuple[float, int]] = [(0.0, 0)] * len(prompts)
    items = [(i, encode_prompt(tok, p, bos), list(c)) for i, (p, c) in enumerate(zip(prompts, conts)) if c]
    items.sort(key=lambda x: len(x[1]) + len(x[2]))  # similar lengths batch together: less padding, fewer logits
    for a in range(0, len(items), batch_size):
        chunk = items[a : a + batch_size]
        width = max(len(p) + len(c) for _, p, c in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, (_, p, c) in enumerate(chunk):  # right padding: positions start at 0 in every row
            ids[r, : len(p) + len(c)] = torch.tensor(p + c)
            mask[r, : len(p) + len(c)] = 1
        # Only positions from the shortest prompt's last token on predict continuation tokens: keep just
        # those logits, and normalise row by row (full [B, T, V] logits plus their log-softmax were the
        # peak of a reference-mode run).
        lo = min(len(p) for _, p, _ in chunk) - 1
        kw = {"logits_to_keep": width - lo} if keep else {}
        with attention_impl(model, "sdpa"):
            logits = model(
                input_ids=ids.to(model.device), attention_mask=mask.to(model.device), use_cache=False, **kw
            ).logits
        off = lo if keep else 0  # logits[:, j] is position j + off
        for r, (i, p, c) in enumerate(chunk):
            pos = torch.arange(len(p) - 1, len(p) + len(c) - 1) - off  # logits at pos predict token pos + 1
            logp = torch.log_softmax(logits[r, pos].float(), dim=-1).cpu()
            nll = -logp[torch.arange(len(c)), torch.tensor(c)].sum().item()
            out[i] = (nll, len(c))
        del logits
    return out


@torch.no_grad()
def final_hidden(model, ids: torch.Tensor, kv=None, chunk: int = 32) -> torch.Tensor:
    """[B,T,D] last hidden states (the model's own hidden_states[-1]), through kv's cache if given."""

    cache = make_cache(model, kv)
    spans = (
        [(0, ids.shape[1])]
        if kv is None
        else [(a, min(a + chunk, ids.shape[1])) for a in range(0, ids.shape[1], chunk)]
    )
    parts = []
    with attention_impl(model, "sdpa"):
        for a, b in spans:
            out = model(
                input_ids=ids[:, a:b].to(model.device),
                use_cache=True,
                output_hidden_states=True,
                **{cache_kwarg(model): cache},
            )
            parts.append(out.hidden_states[-1].float().cpu())
    return torch.cat(parts, dim=1)


def swap_early(ids: torch.Tensor, pos: int) -> torch.Tensor:
    """ids with the tokens at pos and pos + 1 swapped."""
    out = ids.clone()
    out[:, pos], out[:, pos + 1] = ids[:, pos + 1], ids[:, pos]
    return out


def perturbation_spread(model, ids: torch.Tensor, pos: int, kv=None) -> torch.Tensor:
    """[B]: mean over later positions t > pos + 1 of ||h'_t - h_t|| / ||h_t||, h' after swapping
    the tokens at pos and pos + 1 (Barbero et al. 2025's over-mixing probe). NaN for rows
    where the two tokens are equal (the swap changes nothing)."""
    h = final_hidden(model, ids, kv)
    h2 = final_hidden(model, swap_early(ids, pos), kv)
    later = slice(pos + 2, ids.shape[1])
    rel = (h2[:, later] - h[:, later]).double().norm(dim=-1) / h[:, later].double().norm(dim=-1).clamp_min(1e-30)
    spread = rel.mean(-1)
    spread[ids[:, pos] == ids[:, pos + 1]] = float("nan")
    return spread


def bos_variants(ids: torch.Tensor, bos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(with BOS, without BOS) versions of corpus rows, holding the same body tokens.

    body = the row without a leading BOS; with = [BOS] + body[:T-1]; without = body[:T-1].
    """
    body = ids[:, 1:] if bool((ids[:, 0] == bos_id).all()) else ids[:, :-1]
    with_bos = torch.cat([torch.full((ids.shape[0], 1), bos_id, dtype=ids.dtype), body], dim=1)
    return with_bos, body
