"""Greedy generation (batched, left-padded), correctness against references, degeneration."""

from __future__ import annotations

import contextlib
import inspect

import torch

from harness.measure.hooks import bound, routed
from harness.measure.kvcache import cache_kwarg, make_cache, watch
from harness.system.environment import env


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
    reference_ids=None,
    stats: dict | None = None,
):
    """Greedy continuations (text, and token ids if asked) of each prompt, in order.

    kv: a kvcache.KVSpec (generation reads a quantized KV cache); protect: a protect.SinkSource
    (the sink prefix's hidden states and K/V come from the baseline). first_line (one flag, or one per prompt):
    stop a continuation once it ends a line that holds text (what correctness reads: metrics/text.first_line
    gives the same line either way), instead of generating max_new_tokens for an answer that is already there.
    reference_ids (one token-id list per prompt, e.g. the baseline's continuations under the same settings): a
    guess that one teacher-forced forward pass checks; a row whose greedy decoding it proves is not generated
    (_verified; plain model only: kv and protect keep decoding; QS_GEN_VERIFY=0 turns it off). stats: a dict whose
    "verified" and "generated" counts grow by this call's rows, "checked" by the rows the pass checked.
    """
    flags = [first_line] * len(prompts) if isinstance(first_line, bool) else list(first_line)
    if reference_ids is not None and len(reference_ids) != len(prompts):
        raise ValueError(f"reference_ids has {len(reference_ids)} rows for {len(prompts)} prompts")
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
                None if reference_ids is None else [reference_ids[i] for i in idx],
                stats,
            )
            out.update({i: (a, b) for i, a, b in zip(idx, t, ids)})
        texts, all_ids = [out[i][0] for i in range(len(prompts))], [out[i][1] for i in range(len(prompts))]
        return (texts, all_ids) if return_ids else texts
    line_only = bool(flags) and flags[0]

    results: dict[int, tuple[str, list[int]]] = {}
    checked = 0
    if reference_ids is not None and kv is None and protect is None and max_new_tokens > 0 and verify_enabled(model):
        results, checked = _verified(
            model, tok, prompts, reference_ids, max_new_tokens, batch_size, bos, min_new_tokens, line_only
        )
    rest = [i for i in range(len(prompts)) if i not in results]
    if rest:
        got = _decoded(
            model,
            tok,
            [prompts[i] for i in rest],
            max_new_tokens,
            batch_size,
            bos,
            kv,
            protect,
            min_new_tokens,
            line_only,
        )
        results.update(zip(rest, got))
    if stats is not None:
        stats["verified"] = stats.get("verified", 0) + len(prompts) - len(rest)
        stats["generated"] = stats.get("generated", 0) + len(rest)
        stats["checked"] = stats.get("checked", 0) + checked
    texts = [results[i][0] for i in range(len(prompts))]
    all_ids = [results[i][1] for i in range(len(prompts))]
    return (texts, all_ids) if return_ids else texts


def _decoded(model, tok, prompts, max_new_tokens, batch_size, bos, kv, protect, min_new_tokens, line_only):
    """[(text, ids)] of each prompt by greedy decoding (transformers' generate), in order."""
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
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
    return [results[i] for i in range(len(prompts))]


# generation_config fields whose set values make transformers' generate more than argmax of the logits (with
# min_new_tokens and the eos stop, which _verified applies itself): a model that sets any is decoded, not verified.
_NOT_PLAIN = {
    "num_beams": (None, 1),
    "num_beam_groups": (None, 1),
    "penalty_alpha": (None, 0, 0.0),
    "dola_layers": (None,),
    "repetition_penalty": (None, 1.0),
    "encoder_repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "sequence_bias": (None,),
    "min_length": (None, 0),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "exponential_decay_length_penalty": (None,),
    "guidance_scale": (None, 1, 1.0),
    "watermarking_config": (None,),
    "stop_strings": (None,),
    "remove_invalid_values": (None, False),
}


# A model whose forward depends on how it is called (state kept between calls, e.g. harness.testing's late fault,
# which counts one-token decode steps) sets this attribute true: a teacher-forced pass does not compute what its
# decoding computes, so it is always decoded.
DECODE_ONLY = "_quantsink_decode_only"


def verify_enabled(model) -> bool:
    """Whether generate may verify reference continuations instead of decoding them: QS_GEN_VERIFY is not 0, the
    model's logits are a function of the prefix alone (not DECODE_ONLY) and its generation config adds nothing to
    greedy argmax decoding (_NOT_PLAIN)."""
    if env("QS_GEN_VERIFY") == "0" or getattr(model, DECODE_ONLY, False):
        return False
    cfg = getattr(model, "generation_config", None)
    return cfg is None or all(getattr(cfg, k, None) in ok for k, ok in _NOT_PLAIN.items())


# The pass costs about half of decoding the same rows on CPU (bench/gen_verify.py: 56% on SmolLM2-135M's shapes,
# 30% on tiny-llama), so it pays only where more rows than that verify: once fewer than this share of the rows
# checked so far have, the rest of the call is decoded without checking (a loss of one batch's pass at most).
VERIFY_FLOOR = 0.5


def _verified(model, tok, prompts, refs, max_new_tokens, batch_size, bos, min_new_tokens, line_only):
    """({row: (text, ids)} of the rows whose greedy continuation one teacher-forced pass over prompt + reference
    proves, without decoding; rows checked), batch by batch (shortest prompts first) until fewer than VERIFY_FLOOR
    of those checked verify.

    Greedy decoding is a function of the logits: while the model's argmax after prompt + ref[:k] is ref[k], its own
    continuation is ref[:k + 1]; its token after the agreeing prefix (ref's next token or a different one) is that
    position's argmax too (EOS suppressed before min_new_tokens, as transformers' MinNewTokensLengthLogitsProcessor
    does). A row is proved when those known tokens stop it as decoding would: EOS, the end of a line (line_only),
    or max_new_tokens; otherwise it continues past what the pass knows and is decoded. Layout as _decoded's
    prefill (same batches, prompts left-padded to end at one column, positions counted from the mask), the
    reference right after and right-padded; logits at column c predict the token at c + 1. Exact up to float
    rounding: a teacher-forced pass and incremental decoding differ in the last digits (a near-tie can flip).
    """
    params = inspect.signature(model.forward).parameters
    eos = tok.eos_token_id
    pad = tok.pad_token_id if tok.pad_token_id is not None else (eos if eos is not None else 0)
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))  # _decoded's batches
    out: dict[int, tuple[str, list[int]]] = {}
    checked = 0
    for start in reversed(range(0, len(order), batch_size)):  # shortest prompts first: the cheapest to check
        if checked and len(out) < VERIFY_FLOOR * checked:
            break  # not paying here: decode the rest
        idx = order[start : start + batch_size]
        checked += len(idx)
        enc = [encode_prompt(tok, prompts[i], bos) for i in idx]
        conts = [[int(t) for t in refs[i]][:max_new_tokens] for i in idx]
        if not all(enc):
            continue  # an empty prompt: nothing predicts its first token (decoding refuses it too)
        width = max(len(e) for e in enc)
        n = min(max(len(c) for c in conts) + 1, max_new_tokens)  # generated positions the pass decides
        ids = torch.full((len(enc), width + n - 1), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, (e, c) in enumerate(zip(enc, conts)):
            row = e + c[: n - 1]
            ids[r, width - len(e) : width - len(e) + len(row)] = torch.tensor(row)
            mask[r, width - len(e) : width - len(e) + len(row)] = 1
        kw = {"attention_mask": mask.to(model.device), "use_cache": False}
        if "position_ids" in params:  # left padding: as generate counts positions, from the first real token
            kw["position_ids"] = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0).to(model.device)
        if "logits_to_keep" in params:
            kw["logits_to_keep"] = n
        with attention_impl(model, "sdpa"):
            logits = model(input_ids=ids.to(model.device), **kw).logits
        logits = logits[:, -n:].float()  # column k: the logits of generated token k
        if eos is not None and min_new_tokens > 0:
            logits[:, : min(min_new_tokens, n), eos] = float("-inf")
        picks = logits.argmax(-1).tolist()
        del logits
        for r, (i, c) in enumerate(zip(idx, conts)):
            known = []  # the model's own greedy tokens, as far as this pass knows them
            for k in range(min(len(c) + 1, max_new_tokens)):
                known.append(picks[r][k])
                if k >= len(c) or known[k] != c[k] or known[k] == eos:
                    break
            new, stopped = known, len(known) == max_new_tokens
            if eos is not None and eos in known:
                new, stopped = known[: known.index(eos)], True
            if line_only and (end := _line_end(tok, new)) is not None:
                new, stopped = new[:end], True
            if stopped:
                out[i] = (tok.decode(new, skip_special_tokens=True), new)
    return out, checked


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
