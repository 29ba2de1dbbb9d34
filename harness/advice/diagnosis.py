"""Diagnosis: which failure family a configuration's measurements point to, where it starts, what to do.

Explicit rules over what the run measured (docs/diagnosis.md gives each rule and the figures it rests on), first
match wins: non-finite; KV-cache method; no damage (no gate fails: inconclusive gates are thin evidence, not
damage, named with what would decide them: advice/thin.py); long-only / generation-only (no corpus gate fails, a
generation gate does); then the located evidence (advice/locate.py: onset and peak layers, the heads, whether the
sink's state moved): KV cache (sink intact, its cached keys off everywhere), head damage (sink intact, few heads of
one layer), sink damage (a baseline with a sink only: protection closes the gap, or the sink's massive activation
falls), local damage (an intact prefix of layers), diffuse damage; "unclear" when nothing decides.
The layer named is the layer the keep recommendation keeps, or the evidence says why they differ.
"""

from __future__ import annotations

import math

from harness.advice.locate import describe, locate
from harness.advice.recommend import why_short
from harness.advice.thin import has_sink, no_damage, undecided
from harness.methods.keep import kept
from harness.methods.kv import kv_part
from harness.metrics.catalogue import family

SINK_PROTECT_SHARE = 0.3  # protecting the sink prefix closes at least this share of the KL gap
SINK_JUMP = 0.5  # at least this share of the sink's worst hidden-state deficit appears in one layer ...
SINK_BEFORE = 0.1  # ... after layers whose deficit is at most this share of it (intact before the onset)
LOCAL_SHARE = 0.5  # keeping one layer closes at least this share of the KL gap: local damage (else diffuse)
SINK_STATE = 0.1  # the sink's own state off by this (relative) at the onset layer: the damage went through it
SINK_DEFICIT = 0.05  # the sink-onset rule needs a cosine deficit the sink gate would see (its limit is 0.95)
LATE_SHORT = 0.9  # late damage: at least this share of short generations equal the baseline's ...
LATE_DROP = 0.3  # ... and the long ones' share is lower by at least this
NO_DAMAGE = "no damage"
MEASUREMENT_FAILED = "measurement failed"
LONG_STEP = (
    "test longer generations (--long-new-tokens) and keep the first tokens at full precision in the KV "
    "cache; a larger group size or more bits"
)
CORPUS_FAMILIES = ("corpus", "sink", "attention")
GENERATION = ("flip_rate", "misgeneration_rate", "degenerate_rate", "answer_margin_delta")


def _not_passing(gates, names=None, families=None) -> list[str]:
    return [
        g["metric"]
        for g in gates
        if g.get("outcome", "pass") in ("fail", "inconclusive")
        and (names is None or g["metric"] in names)
        and (families is None or family(g["metric"]) in families)
    ]


def sink_onset(cos: list) -> tuple[int | None, float]:
    """(first layer holding half the sink's worst deficit, share of that deficit appearing at that layer)
    when the layers before it are intact (deficit <= SINK_BEFORE of the worst); else (None, share)."""
    d = [1 - c if c is not None and math.isfinite(c) else math.nan for c in cos]
    finite = [x for x in d if math.isfinite(x)]
    worst = max(finite) if finite else 0.0
    if worst <= 1e-6:
        return None, 0.0
    l0 = next(i for i, x in enumerate(d) if math.isfinite(x) and x >= 0.5 * worst)
    before = d[l0 - 1] if l0 > 0 and math.isfinite(d[l0 - 1]) else 0.0
    jump = (d[l0] - before) / worst
    intact = l0 > 0 and all(math.isfinite(x) and x <= SINK_BEFORE * worst for x in d[:l0])
    return (l0 if intact else None), jump


def _top_module(sens: dict | None, layer: int | None) -> str | None:
    if not sens or layer is None:
        return None
    inside = [m for m in sens.get("modules", []) if m["name"].startswith(f"layers.{layer}.")]
    closes = lambda m: m.get("aim_share", m["kl_share"] + max(0.0, m["sink_share"]))  # noqa: E731
    best = max(inside, key=closes, default=None)
    return best["name"] if best is not None and closes(best) > 0.05 else None


def diagnose(cfg, r, sens: dict | None = None, rec: dict | None = None, base_massive=None) -> dict:
    """{family, layer, onset_layer, peak_layer, heads, sink_mediated, module, evidence: [...], next_step, summary}
    for one measured configuration (docs/diagnosis.md: the rules in order)."""

    gates, m = r.gates or [], r.metrics or {}
    ev: list[str] = []
    keep_step = (
        f"keep {', '.join(rec['keep'])} at baseline precision ({rec['spec']})" if rec and rec.get("keep") else None
    )
    where = locate(m)
    sink = has_sink(r) is not False  # unknown (no sink gate view): as if it had one
    protect = _protect_share(r, sens)
    facts: dict = {"onset_layer": where.onset, "peak_layer": where.peak, "heads": [], "sink_mediated": None}

    def out(family, step, layer=None, module=None, heads=None):
        at = f" from layer {layer}" if layer is not None else ""
        at += f" ({module})" if module else ""
        at += f", head{'s' if len(heads or []) > 1 else ''} {', '.join(map(str, heads))}" if heads else ""
        step, note = _agree(step, layer, rec, sens, family)
        if note:
            ev.append(note)
        return facts | {
            "family": family,
            "layer": layer,
            "module": module,
            "heads": list(heads or []),
            "evidence": ev,
            "next_step": step,
            "summary": f"no damage found; {step}" if family == NO_DAMAGE else f"{family}{at}: {step}",
        }

    if getattr(r, "error", None) and not gates:  # nothing was judged: never read as "no gate fails"
        ev.append(f"the measurement ended with an error before any gate was decided: {r.error}")
        return out(MEASUREMENT_FAILED, "fix the error and measure again: no evidence about damage either way")
    if r.nonfinite_layer is not None:
        ev.append(f"NaN/Inf first appear in the output of decoder layer {r.nonfinite_layer}")
        return out(
            "non-finite",
            keep_step or "find the overflowing module of that layer (fp16 range) or run the layer at higher precision",
            r.nonfinite_layer,
        )
    kv = kv_part(cfg)
    if kv is not None and (kv is cfg or (_not_passing(gates, ["sink_kv_relerr"]) and where.sink_intact)):
        ev.append(
            "the weights are the baseline's"
            if kv is cfg
            else "sink_kv_relerr does not pass while the sink's "
            "hidden state is the baseline's: the cache, not the weights"
        )
        return out("kv-cache", _kv_step(kv))
    failed = [g["metric"] for g in gates if g.get("outcome") == "fail"]
    late = _late_divergence(m)
    if not failed or failed == ["logit_delta_max"]:
        if failed and late:  # the corpus outputs are the baseline's, long generations are not
            ev.append(late)
            return out("long-only", LONG_STEP)
        lines, step = no_damage(gates, r, failed)
        ev.extend(lines)
        return out(NO_DAMAGE, step)
    # damage needs a failing gate: an undecided one is thin evidence (named as such), never the family's reason
    corpus_bad = [g for g in _not_passing(gates, families=CORPUS_FAMILIES) if g in failed]
    gen_bad = [g for g in _not_passing(gates, GENERATION) if g in failed]
    long_bad = [g for g in _not_passing(gates, ["long_degenerate_rate"]) if g in failed]
    if not corpus_bad and (gen_bad or long_bad or late):
        if (long_bad or late) and not gen_bad:
            ev.append(late or "short generations pass; long_degenerate_rate does not")
            return out("long-only", LONG_STEP)
        thin = ", ".join(g for g in undecided(gates) if family(g) in CORPUS_FAMILIES)
        bad = gen_bad + long_bad
        ev.append(
            "no corpus, sink or attention gate fails"
            + (f" ({thin} undecided)" if thin else "")
            + f"; {', '.join(bad)} fail{'s' if len(bad) == 1 else ''}"
        )
        more = " or more bits" if isinstance(getattr(cfg, "bits", None), int) and cfg.bits < 8 else ""
        return out(
            "generation-only",
            f"read the flipped and degenerate generations in report.html; {_other_method(cfg)}{more}",
        )
    ev.extend(describe(where, sink))
    if protect is not None and sink:
        ev.append(f"protecting the sink prefix closes {protect:.0%} of the KL gap")
    layers = sorted((sens or {}).get("layers", []), key=lambda u: -u["kl_share"])
    if layers:
        ev.append(
            f"keeping one layer closes at most {layers[0]['kl_share']:.0%} of the KL gap ({layers[0]['name']}); "
            f"the best three {sum(u['kl_share'] for u in layers[:3]):.0%}"
        )
    aimed = [u for u in layers if "aim_share" in u]
    if aimed and set((sens or {}).get("targets") or ()) - {"kld_mean"}:
        best = max(aimed, key=lambda u: u["aim_share"])
        ev.append(
            f"on the gates the search aimed at ({', '.join(sens['targets'])}) keeping one layer closes at most "
            f"{best['aim_share']:.0%} of the calibration distance to the limits ({best['name']})"
        )
    if where.sink_intact and where.keys_everywhere:
        facts["sink_mediated"] = True if sink else None
        return out("kv-cache", _kv_step(kv))
    if where.sink_intact and where.attn_onset is not None and where.few_heads:
        a = where.attn_onset
        facts["sink_mediated"] = False if sink else None
        ev.append(
            f"the change starts in {len(where.heads)} of {where.n_heads} heads of layer {a}, with the "
            f"{'sink' if sink else 'first token'}'s state intact: those heads' queries or keys"
        )
        return out(
            "head damage",
            keep_step or f"keep layer {a}'s attention (q_proj, k_proj) at baseline precision",
            a,
            _top_module(sens, a) or f"layers.{a}.self_attn",
            where.heads,
        )
    onset = where.onset
    cos = m.get("sink_hidden_cos") or []
    cos_onset, jump = sink_onset(cos)
    massive = _massive_loss(r, onset, base_massive or []) if sink else None
    if massive:
        ev.append(massive)
    deficit = 1 - min((c for c in cos if isinstance(c, (int, float)) and math.isfinite(c)), default=1.0)
    state_off = bool(onset) and where.sink_onset == onset and where.sink[onset] >= SINK_STATE
    weak_protect = protect is None or protect >= SINK_PROTECT_SHARE / 3
    sinky = sink and (  # no sink in the baseline: no sink damage (the first token is a token like the others)
        (protect is not None and protect >= SINK_PROTECT_SHARE)
        or (protect is None and massive is not None)
        or (state_off and weak_protect)
        or (cos_onset is not None and jump >= SINK_JUMP and deficit >= SINK_DEFICIT and weak_protect)
    )
    facts["sink_mediated"] = bool(sinky) if sink else None
    if sinky:
        at = onset if onset is not None else cos_onset
        if at is None and layers:
            at = int(layers[0]["name"].split(".")[1])
        return out(
            "sink damage",
            keep_step
            or "protect the sink: keep the sink prefix's states (and its K/V) at full precision"
            + (f", or keep layer {at} at baseline precision" if at is not None else ""),
            at,
            _top_module(sens, at),
        )
    if onset is not None and onset > 0:
        module = _top_module(sens, onset) or (f"layers.{onset}.mlp" if where.through_mlp else None)
        if where.through_mlp:
            ev.append(
                f"attention first changes in every head of layer {onset + 1}, after an unchanged layer "
                f"{onset}: what changed is layer {onset}'s MLP output"
            )
        return out(
            "local damage", keep_step or f"keep {module or f'layers.{onset}'} at baseline precision", onset, module
        )
    if layers and layers[0]["kl_share"] >= LOCAL_SHARE:
        top = int(layers[0]["name"].split(".")[1])
        return out(
            "local damage", keep_step or f"keep {layers[0]['name']} at baseline precision", top, _top_module(sens, top)
        )
    if corpus_bad or onset == 0:
        ev.append(
            "the damage starts at the first layer, with no intact prefix"
            if onset == 0
            else "no layer's evidence stands out"
        )
        step = f"no single layer holds it: more bits, a smaller group size or {_other_method(cfg)}"
        return out(
            "diffuse damage",
            step
            + (
                f"; the best keep set found: {rec['spec']}"
                if keep_step
                else ("; --sensitivity tells whether a few modules would do" if not layers else "")
            ),
        )
    return out("unclear", keep_step or "run with --sensitivity (and --protect-sink) for the evidence that decides")


def _kv_step(kv) -> str:
    residual = f" or a longer full-precision residual (-r{2 * kv.residual})" if kv is not None else ""
    return (
        "keep the first tokens at full precision in the KV cache (--protect-sink measures it), more KV bits" + residual
    )


def _late_divergence(m: dict) -> str | None:
    """'short generations ...; long ones diverge ...' when short continuations equal the baseline's and long ones
    do not (damage that needs many decoded tokens)."""
    short, long_ = m.get("exact_match_rate"), m.get("long_exact_match_rate")
    first = m.get("long_mean_first_divergence")
    if not all(isinstance(x, (int, float)) for x in (short, long_)):
        return None
    if short >= LATE_SHORT and long_ <= short - LATE_DROP:
        at = f" after {first:.0f} tokens on average" if isinstance(first, (int, float)) else ""
        return f"{short:.0%} of short generations equal the baseline's, {long_:.0%} of long ones: they diverge{at}"
    return None


def _agree(step: str, layer, rec, sens, family) -> tuple[str, str | None]:
    """The next step and, when the recommendation keeps no module of the named layer, why they differ."""
    keep = (rec or {}).get("keep") or []
    if layer is None or not keep or family in ("kv-cache", "long-only", "generation-only", NO_DAMAGE):
        return step, None
    kept_layers = sorted({int(k.split(".")[1]) for k in keep if k.startswith("layers.") and k.split(".")[1].isdigit()})
    if layer in kept_layers:
        return step, None
    share = next((u["kl_share"] for u in (sens or {}).get("layers", []) if u["name"] == f"layers.{layer}"), None)
    why = (
        f"keeping layer {layer} alone closes {share:.0%} of the calibration KL gap"
        if share is not None
        else (f"the search measured no keep of layer {layer}")
    )
    return step, (
        f"the recommendation keeps {', '.join(keep)} rather than layer {layer}, where the damage starts: "
        f"{why}, and the search keeps what closes the most per kept parameter"
    )


def _other_method(cfg) -> str:
    """The method suggestion of a diffuse-damage diagnosis: calibration unless the method already calibrates."""
    calibrated = {"gptq", "awq"}
    method = getattr(cfg, "method", "")
    return (
        "another calibrated method (gptq or awq)"
        if method not in calibrated
        else f"another method ({'awq' if method == 'gptq' else 'gptq'}, hqq)"
    )


def recommended(cfg, r, parent: str, parent_kld: float | None, rec: dict | None = None) -> dict:
    """The diagnosis of a recommended configuration: what the kept modules closed (no damage left: it works, if
    thin evidence keeps it from a pass), or the rules when a gate still fails, with why the search's best set
    falls short (recommend.why_short: the budget, the search, or damage outside the quantized weights)."""

    keep = ", ".join(kept(cfg))
    unchanged = [(r.info or {})["unchanged"]] if (r.info or {}).get("unchanged") else []
    if r.verdict != "pass":
        d = diagnose(cfg, r)
        if d["family"] == NO_DAMAGE:
            d["evidence"][:0] = [f"keeping {keep} of {parent}: no gate fails", *unchanged]
            d["summary"] = f"no damage found with {keep} kept (no gate fails); {d['next_step']}"
            return d
        failing = [g["metric"] for g in r.gates or [] if g.get("outcome") == "fail"]
        still = f"{', '.join(failing)} still fail{'s' if len(failing) == 1 else ''}"
        d["evidence"].insert(0, f"keeping {keep} of {parent} was not enough: {still}")
        if d["family"] in ("diffuse damage", "unclear"):
            d["next_step"] = why_short(rec, failing)
            d["summary"] = f"{d['family']}: {d['next_step']}"
        return d
    kld = (r.metrics or {}).get("kld_mean")
    ev = [
        f"keeping {keep} closes {parent}'s gap: kld_mean {parent_kld:.4g} -> {kld:.4g}"
        if isinstance(parent_kld, float) and isinstance(kld, float)
        else f"keeping {keep} passes",
        *unchanged,
    ]
    return {
        "family": "fixed",
        "layer": None,
        "heads": [],
        "module": None,
        "evidence": ev,
        "next_step": f"ship {cfg.spec} (every gate passes)",
        "summary": f"fixed: ship {cfg.spec}",
    }


def _protect_share(r, sens) -> float | None:
    p = (sens or {}).get("protected_sink")
    if p is not None:
        return p["kl_share"]
    rec = (r.metrics or {}).get("sink_recovery") or {}
    return rec.get("kld_mean") if isinstance(rec.get("kld_mean"), (int, float)) else None


def _massive_loss(r, onset, b: list) -> str | None:
    """'massive activations lost' when the sink's massive ratio falls below 0.8 of the baseline's after the onset."""
    q = (r.metrics or {}).get("massive_ratio") or []
    if onset is None or not q or len(b) != len(q):
        return None
    ratios = [qi / bi for qi, bi in zip(q[onset:], b[onset:]) if qi is not None and bi and bi > 10]
    if ratios and min(ratios) < 0.8:
        return f"the sink's massive activation falls to {min(ratios):.0%} of the baseline's after layer {onset}"
    return None
