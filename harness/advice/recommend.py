"""The keep recommendation: the smallest set of modules to keep at baseline precision that passes.

Greedy on measured gain (docs/diagnosis.md): the layers and modules the sensitivity search scored
are ranked by gain per parameter (gain: how much keeping the unit alone shrinks the distance to the
policy's limits on the calibration split); each is added in turn, the set re-measured, and kept only
when the set got closer. The distance is taken over the gates the configuration did not pass that the
calibration can estimate (targets: KL, perplexity, the sink's cosine, attention JS), over every
estimable gate when none of those failed. It stops when the calibration estimate is inside MARGIN of
every target, when the budget (a share of the quantized parameters) is spent, or after MAX_STEPS
measurements; `stopped` says which. The set is then measured on the gated split with its own gates
(advise.py).
"""

from __future__ import annotations

import math
import re

from harness.methods.footprint import params_of
from harness.models.structure import decoder_layers

MARGIN = 0.6  # the estimate must lie within this share of each limit's distance from identity
MAX_STEPS = 8
MIN_GAIN = 0.02  # units closing less than this share of the distance are not candidates
# metric: identity (what the calibration pass can estimate; attn_js: the worst head's mean JS)
PROXY = {"kld_mean": 0.0, "kld_p99": 0.0, "ppl_ratio": 1.0, "sink_hidden_cos": 1.0, "attn_js": 0.0}
COVERS = 0.999  # a keep set holding this share of the quantized parameters keeps every quantized module


def targets(limits: dict, has_sink: bool, failing=()) -> dict[str, float]:
    """{metric: largest deviation from identity the calibration estimate may show} from the policy's limits:
    the gates in `failing` (did not pass) that the calibration can estimate, else every estimable gate."""
    out = {}
    for m, ident in PROXY.items():
        lim = limits.get(m)
        if lim is not None and (m != "sink_hidden_cos" or has_sink):
            out[m] = MARGIN * abs(lim.bound - ident)
    aimed = {m: a for m, a in out.items() if m in set(failing)}
    return aimed or out or {"kld_mean": MARGIN * 0.05}


def _value(score: dict, m: str) -> float:
    if m == "sink_hidden_cos":
        finite = [c for c in score["sink_cos"] if math.isfinite(c)]
        return min(finite) if finite else math.nan
    if m == "attn_js":
        cells = [x for row in score.get("attn_js") or [] for x in row if math.isfinite(x)]
        return max(cells) if cells else math.nan
    return score[m]


def distances(score: dict, tg: dict) -> dict[str, float]:
    """Each estimated metric's deviation from identity over its allowance (<= 1: within it)."""
    out = {}
    for m, allow in tg.items():
        v = _value(score, m)
        out[m] = abs(v - PROXY[m]) / allow if math.isfinite(v) and allow > 0 else math.inf
    return out


def far(score: dict, tg: dict) -> float:
    return max(distances(score, tg).values())


def total(score: dict, tg: dict) -> float:
    return sum(min(d, 1e6) for d in distances(score, tg).values())


def greedy(sens: dict, tg: dict, sizes: dict, quantized: int, budget: float, measure, progress, label: str) -> dict:
    """The keep set (see the module docstring); measure(names) -> calibration score."""

    plain = sens["plain"]
    base_total = total(plain, tg)
    units = [(u["name"], base_total - total(u["score"], tg)) for u in sens["layers"] + sens["modules"]]
    cost = {n: params_of([n], sizes) for n, _ in units}
    cands = sorted(
        [(n, g) for n, g in units if g > MIN_GAIN * base_total and cost[n]], key=lambda ng: -ng[1] / cost[ng[0]]
    )
    allowed = budget * quantized
    chosen, best, steps, over = [], plain, [], False
    for name, _ in cands:
        if far(best, tg) <= 1 or len(steps) >= MAX_STEPS:
            break
        if any(name == c or name.startswith(c + ".") for c in chosen):
            continue  # already inside a kept layer
        trial = [c for c in chosen if not c.startswith(name + ".")] + [name]
        if params_of(trial, sizes) > allowed:
            over = True
            continue
        s = measure(trial)
        better = total(s, tg) < total(best, tg) - 1e-9
        steps.append({"keep": trial, "kld_mean": s["kld_mean"], "distance": far(s, tg), "accepted": better})
        progress(
            f"{label}: recommendation: keeping {len(trial)} unit(s) ({name} added): calibration "
            f"kld_mean {s['kld_mean']:.4g}, distance to limits {far(s, tg):.3g} "
            f"({'kept' if better else 'dropped'})"
        )
        if better:
            chosen, best = trial, s
    params = params_of(chosen, sizes)
    chosen = sorted(chosen, key=lambda n: [int(p) if p.isdigit() else p for p in n.split(".")])
    within = far(best, tg) <= 1
    return {
        "keep": chosen,
        "params": params,
        "share": params / quantized if quantized else None,
        "budget": budget,
        "targets": tg,
        "margin": MARGIN,
        "steps": steps,
        # why the search ended: within the limits, out of re-measurements, the budget, or out of candidates
        "stopped": "within" if within else "steps" if len(steps) >= MAX_STEPS else "budget" if over else "candidates",
        "estimate": {
            **{m: _value(best, m) for m in PROXY if m != "attn_js" or "attn_js" in best},
            "distance": far(best, tg),
            "distance_plain": far(plain, tg),
        },
        "estimate_passes": within,
    }


def _full_names(model, names) -> list[str]:
    layers = decoder_layers(model)
    prefix = next(n for n, m in model.named_modules() if m is layers)
    return [prefix + n[len("layers") :] for n in names]


def native_config(q, names, model) -> dict | None:
    """The recommendation in the method's own configuration, where the method has one."""
    w = q
    while getattr(w, "inner", None) is not None or getattr(w, "weights", None) is not None:
        w = getattr(w, "inner", None) or w.weights
    full = _full_names(model, names)
    layer = [re.fullmatch(r"layers\.\d+", n) is not None for n in names]
    if w.method == "bnb":
        args = "load_in_8bit=True" if w.kind == "int8" else f"load_in_4bit=True, bnb_4bit_quant_type={w.kind!r}"
        return {
            "library": "transformers BitsAndBytesConfig",
            "code": f"BitsAndBytesConfig({args}, llm_int8_skip_modules={['lm_head', *full]!r})",
            "note": "llm_int8_skip_modules replaces the default skip list, so lm_head is listed again",
        }
    if w.method == "gptq":
        dyn = {f"-:{re.escape(f)}" + (r"\..*" if is_layer else "$"): {} for f, is_layer in zip(full, layer)}
        return {
            "library": "GPTQModel QuantizeConfig",
            "code": f"QuantizeConfig(bits={w.bits}, group_size={w.group_size}, dynamic={dyn!r})",
            "note": "'-:' rules skip the matching modules; GPTQ then calibrates the later layers on inputs "
            "from the kept ones, so its figures can differ slightly from the swap measured here",
        }
    if w.method in ("rtn", "path"):
        ign = ["lm_head", *(f"re:{re.escape(f)}\\..*" if is_layer else f for f, is_layer in zip(full, layer))]
        return {
            "library": "llm-compressor QuantizationModifier",
            "code": f"QuantizationModifier(targets='Linear', ignore={ign!r}, ...)",
            "note": "the ignore list of a weight-only scheme; quantsink measured it as the keep: spec",
        }
    return None


def _aim(rec: dict) -> str:
    return ", ".join(rec.get("targets") or ()) or "the calibration estimate"


def why_short(rec: dict | None, failing: list[str]) -> str:
    """Why the measured keep set still does not pass, from how the search ended (not only the budget)."""
    what = ", ".join(failing) or "its gates"
    if not rec or not rec.get("keep"):
        return "no keep set within the budget passes: more bits, a smaller group size or another method"
    if (rec.get("share") or 0) >= COVERS:
        return (
            f"keeping every quantized module still fails {what}: the damage is not in the quantized weights "
            "(look at the KV cache, activation quantization or the method's own code path)"
        )
    budget = f"{100 * rec['budget']:.0f}%" if isinstance(rec.get("budget"), (int, float)) else "the budget"
    aim = _aim(rec)
    reason = {
        "budget": f"no keep set within the budget ({budget} of the quantized parameters) passes: a larger "
        "--keep-budget, ",
        "steps": f"the search stopped after {MAX_STEPS} re-measurements (the budget, {budget}, was not the limit): ",
        "within": f"the calibration estimate of {aim} came within the limits but the gated measurement of {what} "
        f"did not (the budget, {budget}, was not the limit): ",
    }.get(
        rec.get("stopped"),
        f"no further module's keep closed {100 * MIN_GAIN:.0f}% of the calibration distance on {aim} "
        f"(the budget, {budget}, was not the limit): ",
    )
    return reason + "more bits, a smaller group size or another method"


def statement(rec: dict, measured: dict | None, dtype: str) -> str:
    """'keeping 2 modules (0.4% of parameters) at fp32: verdict pass, ppl_ratio 1.02' (or why not)."""
    n = len(rec["keep"])
    if not n:
        if (rec.get("estimate") or {}).get("distance_plain", math.inf) <= 1:
            return f"the calibration estimate of {_aim(rec)} is already within the limits: nothing to keep"
        return (
            f"no module's keep closes {100 * MIN_GAIN:.0f}% of the calibration distance on {_aim(rec)} "
            "within the budget: no recommendation"
        )
    what = (
        f"keeping {n} module{'s' if n > 1 else ''} ({100 * (rec['share'] or 0):.1f}% of the quantized "
        f"parameters) at {dtype}"
    )
    if measured is None:
        return what + ": not measured"
    ppl = (measured.get("gate_views") or {}).get("ppl_ratio", {}).get("value")
    bits = (measured.get("metrics") or {}).get("bits_per_weight")
    head = (
        f"{what}: verdict {measured['verdict']}"
        + (f", ppl_ratio {ppl:.4g}" if ppl is not None else "")
        + (f", {bits:.3g} bits per weight" if bits is not None else "")
    )
    if measured["verdict"] != "pass":
        failing = [g["metric"] for g in measured.get("gates") or [] if g.get("outcome") == "fail"]
        thin = "; no gate fails: only thin evidence keeps it from a pass"
        head += f"; {why_short(rec, failing)}" if failing else thin
    return head
