"""Task scoring on a loaded model: log-likelihood of continuations (multiple-choice) and greedy exact match.

Context and continuation are tokenized as lm-evaluation-harness does (trailing spaces of the context move to the
continuation; the continuation's tokens are those of context + continuation after the context's own), so the
native path and lm-eval's path over our wrapper score the same tokens. Batched with right padding, shortest rows
first; through a quantized KV cache (kv) one row at a time, like measure/answers.py.
"""

from __future__ import annotations

import re

import torch

from harness.measure.generation import attention_impl, encode_prompt, generate
from harness.measure.kvcache import cache_kwarg, make_cache

CHUNK = 16  # tokens per forward call through a quantized KV cache


def encode_pair(tok, context: str, continuation: str, bos: str = "auto") -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) split as lm-eval's HFLM splits them."""
    n = len(context) - len(context.rstrip())
    if n:
        context, continuation = context[:-n], context[-n:] + continuation
    head = encode_prompt(tok, context, bos)
    whole = encode_prompt(tok, context + continuation, bos)
    if not head:  # an empty context: the continuation is scored after the BOS/EOS token
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        return [start], whole
    return head, whole[len(head) :]


@torch.no_grad()
def _row_scores(model, rows: list[list[int]], starts: list[int], kv=None) -> list[tuple[float, bool]]:
    """For each row, (sum of log p of its tokens from `start` on, every one of them the greedy choice)."""
    out = []
    if kv is not None:
        kw = cache_kwarg(model)
        for row, s in zip(rows, starts):
            cache = make_cache(model, kv)
            t = torch.tensor([row], device=model.device)
            logits = torch.cat(
                [
                    model(input_ids=t[:, a : a + CHUNK], use_cache=True, **{kw: cache}).logits.float()
                    for a in range(0, len(row), CHUNK)
                ],
                dim=1,
            )[0]
            out.append(_score(logits, t[0], s))
        return out
    rows_t = [torch.tensor(r) for r in rows]
    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for k, r in enumerate(rows_t):
        ids[k, : len(r)] = r
        mask[k, : len(r)] = 1
    with attention_impl(model, "sdpa"):
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device), use_cache=False).logits
    for k, (r, s) in enumerate(zip(rows_t, starts)):
        out.append(_score(logits[k, : len(r)].float(), r.to(logits.device), s))
    return out


def _score(logits: torch.Tensor, row: torch.Tensor, start: int) -> tuple[float, bool]:
    lp = torch.log_softmax(logits[start - 1 : len(row) - 1], -1)
    target = row[start:]
    ll = float(lp.gather(-1, target[:, None]).sum())
    return ll, bool((lp.argmax(-1) == target).all())


def loglikelihoods(model, tok, pairs, bos: str = "auto", batch_size: int = 16, kv=None) -> list[tuple[float, bool]]:
    """(log-likelihood, greedy) of each (context, continuation) under the model, in order."""
    enc = [encode_pair(tok, c, x, bos) for c, x in pairs]
    rows = [h + t for h, t in enc]
    starts = [len(h) for h, _ in enc]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # little padding per batch
    out: list = [None] * len(rows)
    step = 1 if kv is not None else batch_size
    for a in range(0, len(order), step):
        idx = order[a : a + step]
        for i, r in zip(idx, _row_scores(model, [rows[i] for i in idx], [starts[i] for i in idx], kv)):
            out[i] = r
    return out


def normalise(text: str) -> str:
    """An answer as exact match compares it: its first line with text, lower case, single spaces, no end stop."""
    line = next((ln for ln in str(text).splitlines() if ln.strip()), "")
    return re.sub(r"\s+", " ", line).strip().lower().rstrip(".!?").strip()


def exact_match(output: str, accepted) -> bool:
    return normalise(output) in {normalise(a) for a in accepted}


def greedy(model, tok, prompts: list[str], new_tokens: int, bos: str = "auto", batch_size: int = 16, kv=None):
    """Greedy continuations, each stopped at the end of its first line (what exact match reads)."""
    return generate(model, tok, prompts, new_tokens, batch_size, bos, kv=kv, first_line=True)
