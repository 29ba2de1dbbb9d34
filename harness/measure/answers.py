"""Teacher-forced answer margins: how close each correct answer came to going another way, for any model.

For a prompt the baseline answers correctly, the baseline's own greedy continuation is fed back (teacher forcing)
and, at every token of the answer (the continuation up to its first newline), the log-probability margin of that
token over the best other token is read: margin = log p(token) - max over other tokens of log p. The *deciding*
position is where the baseline's margin is smallest: the token its correct answer hung on. A quantized model is
read at the same position for the same token, so its margin is negative exactly where its greedy decoding would
leave the baseline's answer there. One forward pass per text, no generation: a continuous, paired measure of how
much an answer is at risk, where a flip is only the binary end of it.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch

from harness.measure.generation import attention_impl, encode_prompt
from harness.measure.kvcache import cache_kwarg, make_cache

CHUNK = 16  # tokens per forward call through a quantized KV cache (later tokens read quantized K/V)


@dataclass(frozen=True)
class Deciding:
    """One text's deciding token: its position in the continuation, the token, the baseline's margin there."""

    position: int
    token: int
    margin: float


def answer_span(tok, cont: list[int]) -> int:
    """Tokens of the continuation before its first newline (at least 1): the span correctness reads."""
    for k, t in enumerate(cont):
        if "\n" in tok.decode([t]) and k > 0:
            return k
        if "\n" in tok.decode([t]):
            return 1
    return max(1, len(cont))


def _margins(logp: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[n] log p(target) - max over the other tokens, from [n, V] log-probabilities."""
    own = logp.gather(-1, targets[:, None])[:, 0]
    other = logp.scatter(-1, targets[:, None], float("-inf")).max(-1).values
    return own - other


@torch.no_grad()
def _logprobs(model, ids: list[list[int]], want: list[list[int]], kv=None, batch_size: int = 16) -> list:
    """For each row of token ids, the [len(want[r]), V] log-probabilities predicting the positions want[r]
    (position j is predicted by the logits at j - 1). Through kv's quantized cache (one row at a time, prefill
    in CHUNK-token calls) when given; else batched with right padding."""
    out = []
    if kv is not None:
        kw = cache_kwarg(model)
        for row, pos in zip(ids, want):
            cache = make_cache(model, kv)
            t = torch.tensor([row], device=model.device)
            parts = [
                model(input_ids=t[:, a : a + CHUNK], use_cache=True, **{kw: cache}).logits.float()
                for a in range(0, len(row), CHUNK)
            ]
            logits = torch.cat(parts, dim=1)[0]
            out.append(torch.log_softmax(logits[torch.tensor(pos) - 1], -1).cpu())
        return out
    keep = "logits_to_keep" in inspect.signature(model.forward).parameters
    # Rows in length order batch with little padding; only the logits from each batch's earliest wanted
    # position on are computed (the full [B, T, V] logits were most of this pass's memory traffic).
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    got: dict[int, torch.Tensor] = {}
    for a in range(0, len(order), batch_size):
        idx = order[a : a + batch_size]
        rows, poss = [ids[i] for i in idx], [want[i] for i in idx]
        width = max(len(r) for r in rows)
        t = torch.zeros((len(rows), width), dtype=torch.long)
        mask = torch.zeros_like(t)
        for r, row in enumerate(rows):  # right padding: positions start at 0 in every row
            t[r, : len(row)] = torch.tensor(row)
            mask[r, : len(row)] = 1
        lo = max(0, min((min(p) for p in poss if p), default=1) - 1)
        kw = {"logits_to_keep": width - lo} if keep else {}
        with attention_impl(model, "sdpa"):
            logits = model(
                input_ids=t.to(model.device), attention_mask=mask.to(model.device), use_cache=False, **kw
            ).logits
        off = lo if keep else 0  # logits[:, j] is position j + off
        for r, (i, pos) in enumerate(zip(idx, poss)):
            got[i] = torch.log_softmax(logits[r, torch.tensor(pos, dtype=torch.long) - 1 - off].float(), -1).cpu()
        del logits
    out.extend(got[i] for i in range(len(ids)))
    return out


def deciding_tokens(
    model, tok, prompts: list[str], conts: list[list[int]], bos: str = "auto", batch_size: int = 16
) -> list[Deciding]:
    """The baseline's deciding token of each (prompt, its own greedy continuation)."""
    rows, want, spans = [], [], []
    for p, c in zip(prompts, conts):
        head = encode_prompt(tok, p, bos)
        k = answer_span(tok, c) if c else 0
        rows.append(head + list(c[:k]))
        want.append(list(range(len(head), len(head) + k)))
        spans.append((head, k))
    out = []
    for row, pos, lp in zip(rows, want, _logprobs(model, rows, want, None, batch_size)):
        if not pos:
            out.append(Deciding(-1, -1, float("nan")))
            continue
        targets = torch.tensor([row[j] for j in pos])
        m = _margins(lp, targets)
        j = int(torch.argmin(m))
        out.append(Deciding(pos[j], int(targets[j]), float(m[j])))
    return out


def margins_at(
    model,
    tok,
    prompts: list[str],
    conts: list[list[int]],
    deciding: list[Deciding],
    bos: str = "auto",
    batch_size: int = 16,
    kv=None,
) -> list[float]:
    """A model's margin for the baseline's deciding token of each text (negative: it would answer otherwise)."""
    rows, want, keep = [], [], []
    for i, (p, c, d) in enumerate(zip(prompts, conts, deciding)):
        if d.position < 0:
            continue
        head = encode_prompt(tok, p, bos)
        rows.append((head + list(c))[: d.position + 1])
        want.append([d.position])
        keep.append(i)
    out = [float("nan")] * len(prompts)
    for i, lp in zip(keep, _logprobs(model, rows, want, kv, batch_size)):
        out[i] = float(_margins(lp, torch.tensor([deciding[i].token]))[0])
    return out
