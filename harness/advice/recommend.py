"""The keep recommendation: the smallest set of modules to keep at baseline precision that passes.

Greedy on measured gain (docs/diagnosis.md): the layers and modules the sensitivity search scored
are ranked by gain per parameter (gain: how much keeping the unit alone shrinks the distance to the
policy's limits on the calibration split); each is added in turn, the set re-measured, and kept only
when the set got closer. It stops when the calibration estimate is inside MARGIN of every limit it
can estimate, when the budget (a share of the quantized parameters) is spent, or after MAX_STEPS
measurements. The set is then measured on the gated split with its own gates (advise.py).
"""

from __future__ import annotations

import math
import re

from harness.methods.footprint import params_of
from harness.models.structure import decoder_layers

MARGIN = 0.6  # the estimate must lie within this share of each limit's distance from identity
MAX_STEPS = 8
MIN_GAIN = 0.02  # units closing less than this share of the distance are not candidates
PROXY = {"kld_mean": 0.0, "kld_p99": 0.0, "ppl_ratio": 1.0, "sink_hidden_cos": 1.0}  # metric: identity


def targets(limits: dict, has_sink: bool) -> dict[str, float]:
    """{metric: largest deviation from identity the calibration estimate may show} from the policy's limits."""
    out = {}
    for m, ident in PROXY.items():
        lim = limits.get(m)
        if lim is not None and (m != "sink_hidden_cos" or has_sink):
            out[m] = MARGIN * abs(lim.bound - ident)
    return out or {"kld_mean": MARGIN * 0.05}


def _value(score: dict, m: str) -> float:
    if m == "sink_hidden_cos":
        finite = [c for c in score["sink_cos"] if math.isfinite(c)]
        return min(finite) if finite else math.nan
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
    chosen, best, steps = [], plain, []
    for name, _ in cands:
        if far(best, tg) <= 1 or len(steps) >= MAX_STEPS:
            break
        if any(name == c or name.startswith(c + ".") for c in chosen):
            continue  # already inside a kept layer
        trial = [c for c in chosen if not c.startswith(name + ".")] + [name]
        if params_of(trial, sizes) > allowed:
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
    return {
        "keep": chosen,
        "params": params,
        "share": params / quantized if quantized else None,
        "budget": budget,
        "targets": tg,
        "margin": MARGIN,
        "steps": steps,
        "estimate": {
            "kld_mean": best["kld_mean"],
            "kld_p99": best["kld_p99"],
            "ppl_ratio": best["ppl_ratio"],
            "sink_hidden_cos": _value(best, "sink_hidden_cos"),
            "distance": far(best, tg),
            "distance_plain": far(plain, tg),
        },
        "estimate_passes": far(best, tg) <= 1,
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


def statement(rec: dict, measured: dict | None, dtype: str) -> str:
    """'keeping 2 modules (0.4% of parameters) at fp32: verdict pass, ppl_ratio 1.02' (or why not)."""
    n = len(rec["keep"])
    if not n:
        return "no module's gain was large enough to keep: no recommendation"
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
        head += (
            "; nothing within the budget passes: this is the best found"
            if not rec["estimate_passes"]
            else "; the calibration estimate passed but the gated measurement did not"
        )
    return head
