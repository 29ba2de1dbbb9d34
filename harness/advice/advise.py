"""After a configuration's gates: its size, and (--sensitivity) the sensitivity search, the keep
recommendation measured in the same run with its own gates, and the diagnosis.

Called by the Evaluator while the quantized model is still loaded. The recommended configuration
is measured on the same quantized model with the kept modules swapped in from the baseline (what
`SPEC-keep:...` runs), and recorded as a configuration of its own (`recommended_for`).
"""

from __future__ import annotations

import math
import time

from harness.advice.diagnosis import diagnose, recommended
from harness.advice.recommend import greedy, native_config, statement, targets
from harness.errors import one_line
from harness.gates.decide import config_verdict
from harness.gates.records import Key
from harness.methods.footprint import footprint, module_params
from harness.methods.keep import keeps_modules, kept, swap_in, with_keep


def wanted(spec, r) -> bool:
    """Does the sensitivity search run for this configuration?"""
    mode = getattr(spec, "sensitivity", "off") or "off"
    return mode == "all" or (mode == "auto" and r.verdict in ("fail", "inconclusive"))


def add_footprint(ev, q, r) -> dict:
    fp = footprint(q, ev.base.model, ev.spec.baseline_dtype)
    r.metrics["bits_per_weight"] = fp["bits_per_weight"]
    r.metrics["model_size_mb"] = fp["model_size_mb"]
    return fp


def after_gates(ev, q, r, model) -> None:
    """Footprint for every configuration; sensitivity, recommendation and diagnosis where they apply."""

    fp = add_footprint(ev, q, r)
    sens = rec = None
    if wanted(ev.spec, r):
        weights = getattr(q, "weights", None) or q
        if not keeps_modules(weights):
            r.sensitivity = {"skipped": f"{q.spec} keeps the baseline's weights (a KV-cache method): no module to keep"}
        elif r.nonfinite_layer is not None:
            r.sensitivity = {"skipped": f"NaN/Inf from layer {r.nonfinite_layer}: gains cannot be measured"}
        else:
            try:
                sens, rec = search_and_recommend(ev, q, r, model, fp)
            except Exception as e:  # recorded and shown: the configuration's own gates stand
                r.sensitivity = {"error": one_line(e)}
                ev.progress(f"{q.spec}: sensitivity failed: {one_line(e)}")
    if r.verdict != "pass" or rec is not None:
        r.diagnosis = diagnose(q, r, sens, rec, _base_massive(ev))


def _base_massive(ev) -> list:
    return list(ev.base.stats.get("massive_ratio") or [])


def search_and_recommend(ev, q, r, model, fp):
    from harness.advice.sensitivity import (
        CAL_SEQUENCES,
        CAL_TOKENS,
        calibration_ids,
        measure_keep,
        search,
    )

    s, base = ev.spec, ev.base
    ids, note = calibration_ids(base.tokenizer, ev.inputs.corpus, base.sequences, CAL_SEQUENCES, s.seq_len, s.bos)
    if ids is not None and ids.shape[1] > CAL_TOKENS:
        ids = ids[:, :CAL_TOKENS]
        note += f", their first {CAL_TOKENS} tokens"
    if ids is None:
        r.sensitivity = {"skipped": note}
        return None, None
    ev.progress(f"{q.spec}: sensitivity on {note}")
    t0 = time.perf_counter()
    kv = ev.participant(q, model).kv
    policy = ev.inputs.policy
    limits = policy.gates_for(r.bit_class if policy.by_class else None)
    has_sink = not ((r.gate_views or {}).get("sink_hidden_cos") or {}).get("absent")
    # aim at the gates that did not pass (those the calibration can estimate; else every estimable one)
    failing = [g["metric"] for g in r.gates or [] if g.get("outcome") in ("fail", "inconclusive")]
    tg = targets(limits, has_sink, failing)
    sens = search(model, base.model, ids, ev.progress, q.spec, s.sink_positions[0], base.sink_source, kv, tg)
    sens["calibration"]["split"] = note
    # the budget is a share of the quantized Linear weights (all Linears for a method that stores none quantized)
    rec = greedy(
        sens,
        tg,
        module_params(base.model),
        fp["quantized_params"] or fp["linear_params"],
        s.keep_budget,
        lambda names: measure_keep(sens["probe"], model, base.model, names),
        ev.progress,
        q.spec,
    )
    rec["search_seconds"] = round(time.perf_counter() - t0, 1)
    measured = None
    if rec["keep"]:
        keep_q = with_keep(q, rec["keep"])
        rec["spec"] = keep_q.spec
        rec["native"] = native_config(q, rec["keep"], model)
        swap_in(model, base.model, rec["keep"])  # for good: the model is dropped after this configuration
        rr = measure_recommended(ev, q, keep_q, r, model, rec)
        ev.recommended[keep_q.spec] = rr
        measured = rr.as_dict()
        rec["verdict"] = rr.verdict
        rec["bits_per_weight"] = rr.metrics.get("bits_per_weight")
        rec["model_size_mb"] = rr.metrics.get("model_size_mb")
    rec["statement"] = statement(rec, measured, s.baseline_dtype)
    ev.progress(f"{q.spec}: recommendation: {rec['statement']}")
    r.sensitivity = _record(sens)
    r.recommendation = rec
    return sens, rec


def _record(sens: dict) -> dict:
    """The sensitivity for results.json: per-unit gains without the raw calibration scores."""
    out = {k: v for k, v in sens.items() if k not in ("probe", "layers", "modules")}
    out["layers"] = [{k: v for k, v in u.items() if k != "score"} for u in sens["layers"]]
    out["modules"] = [{k: v for k, v in u.items() if k != "score"} for u in sens["modules"]]
    out["plain"] = {k: v for k, v in sens["plain"].items() if k not in ("sink_cos", "attn_js")} | {
        "sink_cos_min": min((c for c in sens["plain"]["sink_cos"] if math.isfinite(c)), default=None)
    }
    if "attn_js" in sens["plain"]:
        out["plain"]["attn_js_max"] = max((x for row in sens["plain"]["attn_js"] for x in row), default=None)
    return out


def unchanged_outputs(rr, keep_q, parent: str) -> None:
    """A recommended configuration whose outputs equal the baseline's (logit_delta_max fails on a finite value):
    the kept modules hold every change the quantizer made, which is what a recommendation is for. The check for
    a quantizer that changed nothing does not apply to it: the gate is left out (said in info.unchanged) and the
    verdict taken from the others."""
    g = next((g for g in rr.gates or [] if g["metric"] == "logit_delta_max"), None)
    if g is None or g.get("outcome") != "fail" or g.get("value") is None:
        return
    rr.gates = [x for x in rr.gates if x is not g]
    rr.info["unchanged"] = (
        f"keeping {', '.join(kept(keep_q))} leaves the outputs equal to the baseline's (logit_delta_max "
        f"{g['value']:.3g}): the kept modules hold every change {parent} made; logit_delta_max (a quantizer that "
        "changed nothing) does not apply to a recommendation and is not gated"
    )
    rr.verdict = config_verdict(rr.gates)


def measure_recommended(ev, q, keep_q, parent, model, rec=None):
    """Measure keep_q (the swapped model) on the gated split with its own gates, as a configuration."""
    from harness.measure.passes import run_multi

    rr = ev.new_result(keep_q)
    rr.recommended_for = q.spec
    rr.quantize_seconds = parent.quantize_seconds
    rr.module_types = parent.module_types
    rr.info = {
        "kept_modules": list(kept(keep_q)),
        "measured_as": f"{q.spec}'s quantized model with the kept modules swapped in from the baseline",
    }
    ev.progress(f"{keep_q.spec}: measuring the recommended configuration (its own gates)")
    t0 = time.perf_counter()
    key = Key(keep_q.spec)
    try:  # a failure ends this recommended configuration (recorded as its error), never the run
        pairs = run_multi(
            ev.base.model, {key: ev.participant(keep_q, model)}, ev.base.batches, ev.spec.sink_positions, ev.progress
        )
        ev.finish(keep_q, rr, model, pairs[key], time.perf_counter() - t0)
    except Exception as e:
        rr.fail(one_line(e))
    if rr.measured:
        unchanged_outputs(rr, keep_q, q.spec)
        add_footprint(ev, keep_q, rr)
        rr.diagnosis = recommended(keep_q, rr, q.spec, (parent.metrics or {}).get("kld_mean"), rec)
    return rr
