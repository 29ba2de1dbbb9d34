"""Thin evidence said as thin evidence: the gates that could not decide and what would decide each, the gates
whose premise the baseline lacks, and whether the baseline has a sink at all (docs/diagnosis.md, "no damage").

A configuration whose every decided gate passes has no damage to diagnose: an inconclusive or insufficient gate
is a question of how much evidence the run gathered (its `decides` line names the option and value that would
decide it, gates/decider.py), a not-applicable one a question of the baseline (no sink, no stable-correct answer).
"""

from __future__ import annotations

UNDECIDED = ("inconclusive", "insufficient")
SINK_GATES = ("sink_hidden_cos", "sink_mass_shift", "sink_rate_delta", "sink_kv_relerr")


def undecided(gates) -> list[str]:
    return [g["metric"] for g in gates or [] if g.get("outcome") in UNDECIDED]


def thin_step(gates) -> str:
    """'evidence thin for degenerate_rate: about 280 open prompts would decide it: --n-open-prompts 280' (each
    undecided gate with what would decide it; those without a figure: 'more sequences or prompts decide them')."""
    und = [g for g in gates or [] if g.get("outcome") in UNDECIDED]
    parts = [f"{g['metric']}: {g['decides']}" for g in und if g.get("decides")]
    rest = [g["metric"] for g in und if not g.get("decides")]
    if rest:
        parts.append(f"{', '.join(rest)}: more sequences or prompts decide {'them' if len(rest) > 1 else 'it'}")
    return "evidence thin for " + "; and for ".join(parts)


def not_applicable(r) -> list[tuple[str, list[str]]]:
    """[(why, [metrics])] of the gates whose premise the baseline lacks, grouped by the reason."""
    views = r.gate_views or {}
    out: dict[str, list[str]] = {}
    for g in r.gates or []:
        if g.get("outcome") != "not_applicable":
            continue
        why = (views.get(g["metric"]) or {}).get("absent") or str(g.get("detail") or "").partition("applicable: ")[2]
        out.setdefault(why or "its premise is absent in the baseline", []).append(g["metric"])
    return list(out.items())


def na_text(groups) -> str:
    """'not applicable on this baseline: sink_mass_shift, sink_rate_delta (the baseline has no sink ...)'."""
    return "not applicable on this baseline: " + "; ".join(f"{', '.join(ms)} ({why})" for why, ms in groups)


def has_sink(r) -> bool | None:
    """Whether the baseline has a sink, from the sink gates' premise (None: the run recorded no sink gate view)."""
    views = [v for m in SINK_GATES if isinstance(v := (r.gate_views or {}).get(m), dict)]
    if not views:
        return None
    return not any(v.get("absent") for v in views)


def no_damage(gates, r, failed: list[str]) -> tuple[list[str], str]:
    """(evidence, next step) of a configuration on which no gate fails (or only logit_delta_max: outputs equal
    the baseline's): thin evidence named with what would decide it, never a damage family."""
    thin = undecided(gates)
    na = not_applicable(r)
    ev = [
        ("only logit_delta_max fails: the outputs equal the baseline's" if failed else "no gate fails")
        + (f"; {', '.join(thin)} could not decide (inconclusive or insufficient)" if thin else "")
    ]
    if na:
        ev.append(na_text(na))
    if failed:
        step = "check that the configuration quantizes anything (logit_delta_max: the outputs did not move)"
    elif thin:
        step = thin_step(gates)
    elif na:
        names = ", ".join(m for _, ms in na for m in ms)
        step = (
            f"every applicable gate passes; {names} cannot apply on this baseline, so nothing decides them here "
            "(--signoff fails on them)"
        )
    else:
        step = "every gate passes: ship it"
    return ev, step
