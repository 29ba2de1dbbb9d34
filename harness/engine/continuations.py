"""Greedy continuations of a participant compared with the baseline's, and the behaviour probes.

Each function takes the run's Baseline and one measure.Participant (a model, its KV-cache spec and
sink protection) and returns per-prompt records or raw probe values; summarize.py turns them
into metrics.
"""

from __future__ import annotations

import contextlib

from harness.metrics.evidence import answer_metrics, behaviour_metrics
from harness.metrics.text import first_divergence, is_correct, is_degenerate
from harness.system.progress import heartbeat


def _untimed(name: str):
    return contextlib.nullcontext()


def generate(
    base, participant, texts: list[str], new_tokens: int, label: str, min_new: int = 0, first_line=False, reference=None
):
    """The participant's greedy continuations of texts: (texts, token ids); first_line as the baseline's (answers
    stop at the end of their line, measure/generation.py). reference: the baseline's token ids of the same texts
    under the same settings; rows one teacher-forced pass proves are the participant's own are not decoded."""
    from harness.measure.generation import generate as greedy

    what = f"{label}: {len(texts)} prompts x {new_tokens} tokens"
    if reference is None:
        base.progress(what)
    stats: dict = {}
    with heartbeat(base.progress, label):
        out = greedy(
            participant.model,
            base.tokenizer,
            texts,
            new_tokens,
            base.spec.gen_batch_size,
            base.spec.bos,
            return_ids=True,
            kv=participant.kv,
            protect=participant.protect,
            min_new_tokens=min_new,
            first_line=first_line,
            reference_ids=reference,
            stats=stats,
        )
    if reference is not None:
        v, g, c = stats.get("verified", 0), stats.get("generated", 0), stats.get("checked", 0)
        short = "" if c == v + g else " (none checked)" if c == 0 else f" (checked {c}: too few verified to go on)"
        base.progress(f"{what}: {v} of {v + g} rows verified against the baseline's, {g} generated{short}")
    return out


def records(
    base, participant, name: str = "", prompts=None, base_out=None, new_tokens=None, min_new: int = 0
) -> list[dict]:
    """Per-prompt records comparing the participant's continuations with the baseline's."""

    prompts = base.prompts if prompts is None else prompts
    base_txt, base_ids = base.generations if base_out is None else base_out
    q_txt, q_ids = generate(
        base,
        participant,
        [p.prompt for p in prompts],
        new_tokens or base.spec.max_new_tokens,
        f"{name + ': ' if name else ''}generation",
        min_new,
        [bool(p.references) for p in prompts] if base_out is None else False,  # as the baseline's own
        base_ids,  # the same texts, token count, min_new and first_line as the baseline generated them
    )
    variants = base.variant_correctness if base_out is None else {}
    out = []
    for p, bt, bi, qt, qi in zip(prompts, base_txt, base_ids, q_txt, q_ids):
        refs = list(p.references)
        cb = is_correct(bt, refs) if refs else None
        cv = variants.get(p.id)
        stable = (
            None
            if cv is None or cb is None
            else "right"
            if cb and all(cv)
            else "wrong"
            if not (cb or any(cv))
            else None
        )
        out.append(
            {
                "id": p.id,
                "prompt": p.prompt,
                "reference": refs[0] if refs else None,
                "references": refs,
                "baseline": bt,
                "quantized": qt,
                "correct_baseline": cb,
                "correct_baseline_variants": cv,
                "stable_baseline": stable,
                "correct_quantized": is_correct(qt, refs) if refs else None,
                "degenerate": is_degenerate(qt, qi),
                "degenerate_baseline": is_degenerate(bt, bi),
                "first_divergence": first_divergence(bi, qi),
                "exact": bi == qi,
                "quantized_ids": list(map(int, qi)),
            }
        )
    return out


def baseline_first(base) -> None:
    """The baseline's side of every set a configuration is compared on (cached properties, each timed as a phase
    of the baseline's own): computed before a configuration's phases start, so that the first configuration's
    phases and measure_seconds hold only its own work (they held the baseline's generations before)."""
    _ = base.generations, base.variant_correctness, base.answer_items
    if base.open_prompts:
        _ = base.open_generations


def all_records(base, participant, name: str, timed=_untimed) -> list[dict]:
    """Records of the run's prompts, then of its open prompts (the degeneration gates' own set)."""
    with timed("generation: prompts"):
        out = records(base, participant, name)
    if base.open_prompts:
        with timed("generation: open prompts"):
            out += records(base, participant, f"{name}: open prompts", base.open_prompts, base.open_generations)
    return out


def answer_evidence(base, participant, timed=_untimed, name: str = "") -> tuple[dict, dict]:
    """answer_margin_delta and its companions: the participant's margin at each deciding token of the baseline's
    correct answers (measure/answers.py), against the baseline's."""
    from harness.measure.answers import margins_at

    items = base.answer_items
    base.progress(f"{name + ': ' if name else ''}answer margins: {len(items['texts'])} texts (teacher forced)")
    with timed("answer margins"):
        q = margins_at(
            participant.model,
            base.tokenizer,
            items["texts"],
            items["conts"],
            items["deciding"],
            base.spec.bos,
            base.spec.gen_batch_size,
            participant.kv,
        )
    return answer_metrics(items["ids"], [d.margin for d in items["deciding"]], q, base.designs)


def behaviour_raw(base, spec: str, participant, timed=_untimed) -> dict:
    """The configuration's own side of the behaviour probes (needs only its model)."""
    from harness.measure.behaviour import perturbation_spread

    s = base.spec
    _, variants = base.variant_prompts
    base_var = base.behaviour["variants"][1]  # the baseline's side first: its phases are its own, not this one's
    with timed("generation: prompt variants"):
        var_txt, _ = generate(
            base, participant, variants, s.max_new_tokens, f"{spec}: prompt variants", 0, True, base_var
        )
    with timed("generation: long"):
        long = records(
            base,
            participant,
            f"{spec}: long",
            base.long_prompts,
            base.behaviour["long"],
            s.long_new_tokens,
            s.long_new_tokens,
        )
    base.progress(f"{spec}: perturbation probe on {len(base.probe_sequences)} sequences")
    with timed("probe: perturbation"):
        spread = perturbation_spread(
            participant.model, base.probe_sequences, max(s.sink_positions) + 1, participant.kv
        ).numpy()
    return {"var_txt": var_txt, "long": long, "spread": spread}


def behaviour_done(base, gens: list[dict], raw: dict, timed=_untimed) -> tuple[dict, dict]:
    """The behaviour metrics, once the baseline has scored the configuration's continuations (gen_ppl)."""
    from harness.measure.behaviour import continuation_nll

    s, b = base.spec, base.behaviour
    ref, _ = base.variant_prompts
    # A continuation whose token ids equal the baseline's has the baseline's own NLL (same model, prompt and ids):
    # only the others are scored.
    n = len(base.prompts)
    todo = [i for i, g in enumerate(gens[:n]) if not (g["exact"] and i < len(b["own_nll"]))]
    with timed("scoring under the baseline (gen_ppl)"):
        scored = continuation_nll(
            base.model,
            base.tokenizer,
            [base.prompts[i].prompt for i in todo],
            [gens[i]["quantized_ids"] for i in todo],
            s.bos,
            s.gen_batch_size,
        )
    q_nll = [tuple(x) for x in b["own_nll"][:n]]
    for i, x in zip(todo, scored):
        q_nll[i] = x
    return behaviour_metrics(
        ref=ref,
        gens=gens,
        var_base=b["variants"][0],
        var_quant=raw["var_txt"],
        long=raw["long"],
        own_nll=b["own_nll"],
        q_nll=q_nll,
        spread_b=b["spread"],
        spread_q=raw["spread"],
        designs=base.designs,
    )
