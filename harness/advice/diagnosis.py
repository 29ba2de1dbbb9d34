"""Diagnosis: which failure family a configuration's measurements point to, where it starts, what to do.

Explicit rules over what the run measured (docs/diagnosis.md gives each rule and the figures it
rests on), first match wins: non-finite, KV-cache, generation-only / long-only (corpus gates pass),
sink damage, local damage, diffuse damage; "unclear" when the evidence decides none.
"""

from __future__ import annotations

import math

from harness.methods.keep import kept
from harness.methods.kv import kv_part
from harness.metrics.catalogue import family

SINK_PROTECT_SHARE = 0.3  # protecting the sink prefix closes at least this share of the KL gap
SINK_JUMP = 0.5  # at least this share of the sink's worst hidden-state deficit appears in one layer ...
SINK_BEFORE = 0.1  # ... after layers whose deficit is at most this share of it (intact before the onset)
LOCAL_SHARE = 0.5  # keeping one layer closes at least this share of the KL gap: local damage (else diffuse)
CORPUS_FAMILIES = ("corpus", "sink", "attention")
GENERATION = ("flip_rate", "misgeneration_rate", "degenerate_rate")


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
    best = max(inside, key=lambda m: m["kl_share"] + max(0.0, m["sink_share"]), default=None)
    return best["name"] if best is not None and best["kl_share"] + max(0.0, best["sink_share"]) > 0.05 else None


def diagnose(cfg, r, sens: dict | None = None, rec: dict | None = None, base_massive=None) -> dict:
    """{family, layer, module, evidence: [...], next_step, summary} for one measured configuration."""

    gates, m = r.gates or [], r.metrics or {}
    ev: list[str] = []
    keep_step = (
        f"keep {', '.join(rec['keep'])} at baseline precision ({rec['spec']})" if rec and rec.get("keep") else None
    )

    def out(family, step, layer=None, module=None):
        where = f" from layer {layer}" if layer is not None else ""
        where += f" ({module})" if module else ""
        return {
            "family": family,
            "layer": layer,
            "module": module,
            "evidence": ev,
            "next_step": step,
            "summary": f"{family}{where}: {step}",
        }

    if r.nonfinite_layer is not None:
        ev.append(f"NaN/Inf first appear in the output of decoder layer {r.nonfinite_layer}")
        return out(
            "non-finite",
            keep_step or "find the overflowing module of that layer (fp16 range) or run the layer at higher precision",
            r.nonfinite_layer,
        )
    kv = kv_part(cfg)
    kv_bad = _not_passing(gates, ["sink_kv_relerr"])
    if kv is not None and (kv is cfg or (kv_bad and not _not_passing(gates, ["sink_hidden_cos"]))):
        ev.append(
            "the weights are the baseline's"
            if kv is cfg
            else "sink_kv_relerr does not pass while sink_hidden_cos does: the cache, not the weights"
        )
        return out(
            "kv-cache",
            "keep the first tokens at full precision in the KV cache (--protect-sink measures "
            f"it), more KV bits or a longer full-precision residual (-r{2 * kv.residual})",
        )
    corpus_bad = _not_passing(gates, families=CORPUS_FAMILIES)
    gen_bad = _not_passing(gates, GENERATION)
    long_bad = _not_passing(gates, ["long_degenerate_rate"])
    if not corpus_bad and (gen_bad or long_bad):
        if long_bad and not gen_bad:
            ev.append("short generations pass; long_degenerate_rate does not")
            return out(
                "long-only",
                "test longer generations (--long-new-tokens) and keep the first tokens at full "
                "precision in the KV cache; a larger group size or more bits",
            )
        ev.append(f"corpus, sink and attention gates pass; {', '.join(gen_bad + long_bad)} do not")
        return out(
            "generation-only",
            "read the flipped and degenerate generations in report.html; a calibrated method (gptq) or more bits",
        )
    cos = m.get("sink_hidden_cos") or []
    onset, jump = sink_onset(cos)
    protect = _protect_share(r, sens)
    layers = sorted((sens or {}).get("layers", []), key=lambda u: -u["kl_share"])
    if protect is not None:
        ev.append(f"protecting the sink prefix closes {protect:.0%} of the KL gap")
    if onset is not None:
        ev.append(
            f"the sink's hidden state is intact up to layer {onset - 1} and takes {jump:.0%} of its worst "
            f"deficit (cosine {min(c for c in cos if c is not None):.3g}) at layer {onset}"
        )
    massive = _massive_loss(r, onset, base_massive or [])
    if massive:
        ev.append(massive)
    if layers:
        ev.append(
            f"keeping one layer closes at most {layers[0]['kl_share']:.0%} of the KL gap ({layers[0]['name']}); "
            f"the best three {sum(u['kl_share'] for u in layers[:3]):.0%}"
        )
    sinky = (protect is not None and protect >= SINK_PROTECT_SHARE) or (
        onset is not None and jump >= SINK_JUMP and (protect is None or protect >= SINK_PROTECT_SHARE / 3)
    )
    if sinky and onset is not None:
        return out(
            "sink damage",
            keep_step
            or "protect the sink: keep the sink prefix's states (and its K/V) at full "
            f"precision, or keep layer {onset} at baseline precision",
            onset,
            _top_module(sens, onset),
        )
    if sinky:
        top = int(layers[0]["name"].split(".")[1]) if layers else None
        return out(
            "sink damage",
            keep_step or "protect the sink (keep the sink prefix's states at full precision)",
            top,
            _top_module(sens, top),
        )
    if layers:
        top = int(layers[0]["name"].split(".")[1])
        if layers[0]["kl_share"] >= LOCAL_SHARE:
            return out(
                "local damage",
                keep_step or f"keep {layers[0]['name']} at baseline precision",
                top,
                _top_module(sens, top),
            )
        step = f"no single layer closes half the gap: more bits, a smaller group size or {_other_method(cfg)}"
        return out("diffuse damage", step + (f"; the best keep set found: {rec['spec']}" if keep_step else ""), None)
    if corpus_bad and onset is None and (protect is None or protect < SINK_PROTECT_SHARE):
        ev.append("the sink's deficit grows from the first layer on, with no early onset")
        return out(
            "diffuse damage",
            f"more bits, a smaller group size or {_other_method(cfg)}; --sensitivity tells "
            "whether a few modules would do",
            None,
        )
    return out("unclear", keep_step or "run with --sensitivity (and --protect-sink) for the evidence that decides")


def _other_method(cfg) -> str:
    """The method suggestion of a diffuse-damage diagnosis: calibration unless the method already calibrates."""
    calibrated = {"gptq", "awq"}
    method = getattr(cfg, "method", "")
    return (
        "another calibrated method (gptq or awq)"
        if method not in calibrated
        else f"another method ({'awq' if method == 'gptq' else 'gptq'}, hqq)"
    )


def recommended(cfg, r, parent: str, parent_kld: float | None) -> dict:
    """The diagnosis of a recommended configuration: what the kept modules closed, or the rules when it fails."""

    if r.verdict != "pass":
        d = diagnose(cfg, r)
        d["evidence"].insert(0, f"keeping {', '.join(kept(cfg))} of {parent} was not enough")
        if d["family"] in ("diffuse damage", "unclear"):
            d["next_step"] = "no keep set within the budget passes: more bits, a smaller group size or another method"
            d["summary"] = f"{d['family']}: {d['next_step']}"
        return d
    kld = (r.metrics or {}).get("kld_mean")
    ev = [
        f"keeping {', '.join(kept(cfg))} closes {parent}'s gap: kld_mean {parent_kld:.4g} -> {kld:.4g}"
        if isinstance(parent_kld, float) and isinstance(kld, float)
        else f"keeping {', '.join(kept(cfg))} passes"
    ]
    return {
        "family": "fixed",
        "layer": None,
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
