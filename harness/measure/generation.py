"""Greedy generation (batched, left-padded), correctness against references, degeneration."""

from __future__ import annotations

import contextlib

import torch

from harness.measure.hooks import bound, routed
from harness.measure.kvcache import cache_kwarg, make_cache, watch


def encode_prompt(tok, text: str, bos: str = "auto") -> list[int]:
    """Token ids of a prompt under the BOS policy (auto: the tokenizer's own rule)."""
    ids = tok(text, add_special_tokens=(bos == "auto"))["input_ids"]
    bos_id = tok.bos_token_id
    if bos == "always" and bos_id is not None and (not ids or ids[0] != bos_id):
        ids = [bos_id] + ids
    if bos == "never" and bos_id is not None and ids and ids[0] == bos_id:
        ids = ids[1:]
    return ids


@contextlib.contextmanager
def attention_impl(model, impl: str):
    """Temporarily switch the attention implementation (SDPA for generation: no weights needed)."""
    old = getattr(model.config, "_attn_implementation", None)
    switched = False
    if old != impl:
        try:
            model.set_attn_implementation(impl)
            switched = True
        except (ValueError, ImportError, AttributeError):
            pass  # architecture without SDPA: stay on the current implementation
    try:
        yield
    finally:
        if switched:
            model.set_attn_implementation(old)


class _ProtectCtx:
    """Routes the hooks of probe.routed to a Protection during one generate call."""

    def __init__(self, prot):
        self.prot, self.row0 = prot, 0

    def on_call(self, row0: int) -> None:
        self.row0 = row0

    def on_attn(self, i, probs) -> None:
        pass

    def on_hidden(self, i, h) -> None:
        self.prot.on_hidden(i, h, self.row0)

    def on_kv(self, i, k, v, n_new):
        return self.prot.on_kv(i, k, v, self.row0 + n_new)


@torch.no_grad()
def generate(
    model,
    tok,
    prompts: list[str],
    max_new_tokens: int = 16,
    batch_size: int = 16,
    bos: str = "auto",
    return_ids: bool = False,
    kv=None,
    protect=None,
    min_new_tokens: int = 0,
    first_line=False,
):
    """Greedy continuations (text, and token ids if asked) of each prompt, in order.

    kv: a kvcache.KVSpec (generation reads a quantized KV cache); protect: a protect.SinkSource
    (the sink prefix's hidden states and K/V come from the baseline). first_line (one flag, or one per prompt):
    stop a continuation once it ends a line that holds text (what correctness reads: metrics/text.first_line
    gives the same line either way), instead of generating max_new_tokens for an answer that is already there.
    """
    flags = [first_line] * len(prompts) if isinstance(first_line, bool) else list(first_line)
    if any(flags) and not all(flags):  # each kind in its own batches: a stopped row would wait for the others
        parts = {f: [i for i, x in enumerate(flags) if x == f] for f in (True, False)}
        out: dict[int, tuple] = {}
        for f, idx in parts.items():
            t, ids = generate(
                model,
                tok,
                [prompts[i] for i in idx],
                max_new_tokens,
                batch_size,
                bos,
                True,
                kv,
                protect,
                min_new_tokens,
                f,
            )
            out.update({i: (a, b) for i, a, b in zip(idx, t, ids)})
        texts, all_ids = [out[i][0] for i in range(len(prompts))], [out[i][1] for i in range(len(prompts))]
        return (texts, all_ids) if return_ids else texts
    line_only = bool(flags) and flags[0]

    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    texts, all_ids = [], []
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # similar lengths batch together
    results: dict[int, tuple[str, list[int]]] = {}
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = [encode_prompt(tok, prompts[i], bos) for i in idx]
        width = max(len(e) for e in enc)
        input_ids = torch.full((len(enc), width), pad, dtype=torch.long)
        mask = torch.zeros((len(enc), width), dtype=torch.long)
        for r, e in enumerate(enc):  # left padding: every prompt ends at the same column
            input_ids[r, width - len(e) :] = torch.tensor(e)
            mask[r, width - len(e) :] = 1
        cache = make_cache(model, kv)
        hooks = contextlib.nullcontext()
        if protect is not None:
            ctx = _ProtectCtx(protect.protection_for_prompts(enc, width))
            watch(cache, ctx.on_kv)
            hooks = _both(routed(model, attention=False), bound(ctx))
        with attention_impl(model, "sdpa"), hooks:
            out = model.generate(
                input_ids=input_ids.to(model.device),
                attention_mask=mask.to(model.device),
                max_new_tokens=max_new_tokens,
                min_new_tokens=min_new_tokens or None,
                do_sample=False,
                pad_token_id=pad,
                eos_token_id=tok.eos_token_id,
                stopping_criteria=[_LineEnded(tok, width)] if line_only else None,
                **{cache_kwarg(model): cache},
            )
        for r, i in enumerate(idx):
            new = out[r, width:].tolist()
            if tok.eos_token_id is not None and tok.eos_token_id in new:
                new = new[: new.index(tok.eos_token_id)]
            if line_only:  # a row that ended its line early is padded while the others go on
                new = new[: _line_end(tok, new) or len(new)]
            results[i] = (tok.decode(new, skip_special_tokens=True), new)
    for i in range(len(prompts)):
        texts.append(results[i][0])
        all_ids.append(results[i][1])
    return (texts, all_ids) if return_ids else texts


def _line_end(tok, ids: list[int]) -> int | None:
    """Tokens up to and including the first newline that follows some text, or None (no such line yet)."""
    seen_text = False
    for k, t in enumerate(ids):
        piece = tok.decode([t])
        if "\n" in piece and (seen_text or piece.split("\n", 1)[0].strip()):
            return k + 1
        seen_text = seen_text or bool(piece.strip())
    return None


class _LineEnded:
    """A stopping criterion per row: done once the row's continuation (after column `start`) has ended a line
    that holds text."""

    def __init__(self, tok, start: int):
        self.tok, self.start = tok, start

    def __call__(self, input_ids, scores, **kwargs):
        done = [_line_end(self.tok, row[self.start :].tolist()) is not None for row in input_ids]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


@contextlib.contextmanager
def _both(a, b):
    with a, b:
        yield
