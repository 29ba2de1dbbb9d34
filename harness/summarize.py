"""Turn per-sequence measurements into the results.json metrics and the gates' scalar views."""
from __future__ import annotations

import math

import numpy as np

from . import metrics as M
from .gates import GateView

N_BOOT = 300


def _mean_stack(xs) -> np.ndarray:
    return np.mean(np.stack(xs), axis=0)


def _nested(a: np.ndarray) -> list:
    return [[float(v) for v in row] for row in a] if a.ndim == 2 else [float(v) for v in a]


def baseline_metrics(s, tokenizer=None, sink_positions=(0,)) -> dict:
    """Baseline block of results.json from a ModelSummary."""
    mass = _mean_stack(s.sink_mass)
    return {"loss": float(np.mean(np.concatenate(s.nll))), "sink_mass": _nested(mass),
            "sink_rate": M.sink_rate(mass, 0.3), "sink_rate_08": M.sink_rate(mass, 0.8),
            "massive_ratio": _nested(_mean_stack(s.massive)),
            "attn_entropy": _nested(_mean_stack(s.entropy).mean(-1)),
            "detected_sinks": detected_sinks(s, tokenizer, sink_positions)}


def detected_sinks(s, tokenizer=None, sink_positions=(0,), share: float = 0.25, top: int = 10) -> list[dict]:
    """Key positions besides the sink positions that more than `share` of all heads attend to
    with more than 0.3 of their attention, grouped by token text, most frequent first."""
    if not s.votes:
        return []
    heads = int(np.prod(np.asarray(s.sink_mass[0]).shape))  # layers x heads
    groups: dict[str, dict] = {}
    for votes, ids in zip(s.votes, s.ids):
        for pos in np.nonzero(np.asarray(votes) > share * heads)[0]:
            if int(pos) in sink_positions:
                continue
            tok_id = int(ids[pos])
            text = tokenizer.decode([tok_id]) if tokenizer is not None else str(tok_id)
            g = groups.setdefault(text, {"token": text, "token_id": tok_id, "count": 0, "positions": [],
                                         "share_of_heads": []})
            g["count"] += 1
            g["positions"].append(int(pos))
            g["share_of_heads"].append(float(votes[pos]) / heads)
    out = sorted(groups.values(), key=lambda g: -g["count"])[:top]
    for g in out:
        g["positions"] = sorted(set(g["positions"]))[:20]
        g["share_of_heads"] = float(np.mean(g["share_of_heads"]))
    return out


def _where_lh(a: np.ndarray, fn) -> str:
    l, h = np.unravel_index(fn(a), a.shape)
    return f"layer {l} head {h}"


def _boot(n: int, stat, seed: int) -> tuple[float, float]:
    """Bootstrap 95% interval of stat(index array) over n resampled sequences/prompts."""
    return M.bootstrap_stat(n, stat, N_BOOT, seed)


def corpus_metrics(ps, seed: int = 0, tokenizer=None, sink_positions=(0,)) -> tuple[dict, dict]:
    """(metrics, gate views) of a PairSummary."""
    nll_b = np.stack(ps.base.nll)  # [N, T-1]
    nll_q = np.stack(ps.quant.nll)
    kl = np.stack(ps.kl)[:, :-1]  # [N, T-1]: last position has no next token in the corpus
    top1 = np.stack(ps.top1)[:, :-1].astype(np.float64)
    mass_b, mass_q = np.stack(ps.base.sink_mass), np.stack(ps.quant.sink_mass)  # [N,L,H]
    js = np.stack(ps.js)  # [N,L,H]
    cos, rel = np.stack(ps.hidden_cos), np.stack(ps.hidden_relerr)  # [N,L]
    kvrel = np.stack(ps.kv_relerr)  # [N,L]
    ent_b, ent_q = np.stack(ps.base.entropy), np.stack(ps.quant.entropy)
    n = len(nll_b)

    loss_b, loss_q = float(nll_b.mean()), float(nll_q.mean())
    flat_kl = kl.ravel()
    finite_kl = np.isfinite(flat_kl).all()
    mq = mass_q.mean(0)
    mb = mass_b.mean(0)
    met = {
        "loss": loss_q, "loss_baseline": loss_b, "loss_delta": loss_q - loss_b,
        "ppl_ratio": float(math.exp(loss_q - loss_b)) if math.isfinite(loss_q - loss_b) else math.nan,
        "kld_mean": float(flat_kl.mean()),
        "kld_median": float(np.median(flat_kl)) if finite_kl else math.nan,
        "kld_p99": float(np.quantile(flat_kl, 0.99)) if finite_kl else math.nan,
        "kld_max": float(flat_kl.max()) if finite_kl else math.nan,
        "kld_histogram": (np.histogram(np.log10(np.clip(flat_kl, 1e-8, None)), bins=30, range=(-8, 1))[0]
                          .tolist() if finite_kl else []),
        "top1_agreement": float(top1.mean()),
        "sink_mass": _nested(mq), "sink_rate": M.sink_rate(mq, 0.3), "sink_rate_08": M.sink_rate(mq, 0.8),
        "sink_hidden_cos": _nested(cos.mean(0)), "sink_hidden_relerr": _nested(rel.mean(0)),
        "massive_ratio": _nested(np.stack(ps.quant.massive).mean(0)),
        "sink_kv_relerr": _nested(kvrel.mean(0)),
        "sink_key_relerr": _nested(np.stack(ps.key_relerr).mean(0)),
        "sink_value_relerr": _nested(np.stack(ps.value_relerr).mean(0)),
        "attn_js": _nested(js.mean(0)),
        "attn_entropy_delta": _nested((ent_q - ent_b).mean(0).mean(-1)),
        "logit_delta_max": float(ps.logit_delta_max),
        "detected_sinks": detected_sinks(ps.quant, tokenizer, sink_positions),
    }
    shift = np.abs(mq - mb)
    views = {
        "ppl_ratio": GateView(met["ppl_ratio"], _boot(n, lambda i: math.exp(nll_q[i].mean() - nll_b[i].mean()), seed)),
        "loss_delta": GateView(met["loss_delta"], _boot(n, lambda i: nll_q[i].mean() - nll_b[i].mean(), seed)),
        "kld_mean": GateView(met["kld_mean"], _boot(n, lambda i: kl[i].mean(), seed)),
        "kld_p99": GateView(met["kld_p99"], _boot(n, lambda i: np.quantile(kl[i], 0.99), seed)),
        "top1_agreement": GateView(met["top1_agreement"], _boot(n, lambda i: top1[i].mean(), seed)),
        "sink_rate_delta": GateView(
            abs(met["sink_rate"] - M.sink_rate(mb, 0.3)),
            _boot(n, lambda i: abs(M.sink_rate(mass_q[i].mean(0), .3) - M.sink_rate(mass_b[i].mean(0), .3)), seed)),
        "sink_mass_shift": GateView(
            float(shift.max()), _boot(n, lambda i: np.abs(mass_q[i].mean(0) - mass_b[i].mean(0)).max(), seed),
            _where_lh(shift, np.argmax) + f" (baseline {mb.flat[np.argmax(shift)]:.3f}, "
                                          f"quantized {mq.flat[np.argmax(shift)]:.3f})"),
        "sink_hidden_cos": GateView(
            float(cos.mean(0).min()), _boot(n, lambda i: cos[i].mean(0).min(), seed),
            f"layer {int(np.argmin(cos.mean(0)))}"),
        "sink_kv_relerr": GateView(float(kvrel.mean(0).max()), _boot(n, lambda i: kvrel[i].mean(0).max(), seed),
                                   f"layer {int(np.argmax(kvrel.mean(0)))}"),
        "attn_js": GateView(float(js.mean(0).max()), _boot(n, lambda i: js[i].mean(0).max(), seed),
                            _where_lh(js.mean(0), np.argmax)),
        "logit_delta_max": GateView(met["logit_delta_max"]),
    }
    if not np.isfinite(mq).all():
        met["sink_rate"] = met["sink_rate_08"] = math.nan  # NaN > eps is False: never a silent 0
        views["sink_rate_delta"] = GateView(math.nan)
    return met, views


def generation_metrics(gens: list[dict], seed: int = 0) -> tuple[dict, dict]:
    """Metrics and gate views from per-prompt generation records."""
    n = len(gens)
    exact = np.array([g["exact"] for g in gens], dtype=float)
    div = np.array([g["first_divergence"] for g in gens], dtype=float)
    ref = [g for g in gens if g["reference"]]
    right_base = np.array([g["correct_baseline"] is True for g in gens], dtype=bool)
    flip = np.array([g["correct_baseline"] is True and g["correct_quantized"] is False for g in gens], dtype=bool)
    degen = np.array([bool(g["degenerate"]) and not g["degenerate_baseline"] for g in gens], dtype=bool)
    mis = flip | degen
    n_right = int(right_base.sum())

    def flip_stat(i):
        rb = right_base[i].sum()
        return flip[i].sum() / rb if rb else 0.0

    met = {"exact_match_rate": float(exact.mean()) if n else math.nan,
           "mean_first_divergence": float(div.mean()) if n else math.nan,
           "flip_rate": float(flip.sum() / n_right) if n_right else 0.0,
           "degenerate_rate": float(degen.mean()) if n else math.nan,
           "misgeneration_rate": float(mis.mean()) if n else math.nan,
           "n_prompts": n, "n_with_references": len(ref), "n_baseline_correct": n_right,
           "n_quantized_correct": int(sum(g["correct_quantized"] is True for g in gens))}
    views = {"flip_rate": GateView(met["flip_rate"], _boot(n, flip_stat, seed)),
             "degenerate_rate": GateView(met["degenerate_rate"], _boot(n, lambda i: degen[i].mean(), seed)),
             "misgeneration_rate": GateView(met["misgeneration_rate"], _boot(n, lambda i: mis[i].mean(), seed))}
    return met, views


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else math.nan


def behaviour_metrics(ref, gens, var_base, var_quant, long, own_nll, q_nll, spread_b, spread_q, bos_b, bos_q,
                      seed: int = 0) -> tuple[dict, dict]:
    """stability_rate, gen_ppl_ratio, long_* generation metrics, perturbation_spread and bos_ablation."""
    from .generation import is_correct

    met: dict = {}
    views: dict = {}
    # Stability: correctness of the prompt and its three variants all agree (per model).
    by_id = {g["id"]: g for g in gens}
    stable_q, stable_b = [], []
    for k, p in enumerate(ref):
        refs = list(p.references)
        g = by_id.get(p.id)
        if g is None:
            continue
        vb = [is_correct(t, refs) for t in var_base[3 * k:3 * k + 3]]
        vq = [is_correct(t, refs) for t in var_quant[3 * k:3 * k + 3]]
        stable_b.append(len({g["correct_baseline"], *vb}) == 1)
        stable_q.append(len({g["correct_quantized"], *vq}) == 1)
    sq, sb = np.array(stable_q, dtype=float), np.array(stable_b, dtype=float)
    met["stability_rate"] = float(sq.mean()) if sq.size else math.nan
    met["stability_rate_baseline"] = float(sb.mean()) if sb.size else math.nan
    met["n_stability_prompts"] = int(sq.size)
    views["stability_rate"] = GateView(met["stability_rate"], _boot(len(sq), lambda i: sq[i].mean(), seed))
    # Readability: perplexity under the baseline of the quantized continuations over the baseline's own.
    both = [(a, b) for a, b in zip(own_nll, q_nll) if a[1] > 0 and b[1] > 0]
    if both:
        nb = np.array([a for a, _ in both])  # [n, 2]: summed nll, tokens
        nq = np.array([b for _, b in both])

        def ratio(i):
            return math.exp(nq[i, 0].sum() / nq[i, 1].sum() - nb[i, 0].sum() / nb[i, 1].sum())

        met["gen_ppl_ratio"] = ratio(np.arange(len(both)))
        met["gen_ppl_baseline"] = math.exp(nb[:, 0].sum() / nb[:, 1].sum())
        met["gen_ppl_quantized"] = math.exp(nq[:, 0].sum() / nq[:, 1].sum())
        views["gen_ppl_ratio"] = GateView(met["gen_ppl_ratio"], _boot(len(both), ratio, seed))
    else:
        met["gen_ppl_ratio"] = math.nan
    met["n_gen_ppl_prompts"] = len(both)
    # Long generations.
    lm, lv = generation_metrics(long, seed)
    met.update({"long_degenerate_rate": lm["degenerate_rate"], "long_mean_first_divergence": lm["mean_first_divergence"],
                "long_exact_match_rate": lm["exact_match_rate"], "long_n_prompts": lm["n_prompts"],
                "long_new_tokens": max((len(g["quantized_ids"]) for g in long), default=0)})
    views["long_degenerate_rate"] = lv["degenerate_rate"]
    met["long_generations"] = [{k: g[k] for k in ("id", "prompt", "baseline", "quantized", "degenerate",
                                                  "degenerate_baseline", "first_divergence")} for g in long]
    # Over-mixing probe (Barbero et al. 2025): quantized spread over the baseline's.
    sb_, sq_ = np.asarray(spread_b, dtype=float), np.asarray(spread_q, dtype=float)
    ok = ~(np.isnan(sb_) | np.isnan(sq_))
    met["perturbation_spread"] = _nanmean(sq_[ok]) / _nanmean(sb_[ok]) if ok.any() else math.nan
    met["perturbation_spread_baseline"] = _nanmean(sb_[ok])
    met["perturbation_spread_quantized"] = _nanmean(sq_[ok])
    if ok.any():
        b2, q2 = sb_[ok], sq_[ok]
        views["perturbation_spread"] = GateView(met["perturbation_spread"],
                                                _boot(len(b2), lambda i: q2[i].mean() / b2[i].mean(), seed))
    # BOS ablation: loss over the same body tokens and sink rate (eps 0.3), with and without BOS.
    if bos_b is None or bos_q is None:
        met["bos_ablation"] = {"skipped": "the tokenizer has no BOS token"}
    else:
        def side(d):
            return {k: {"loss": float(np.mean(d[k]["nll"])),
                        "sink_rate": M.sink_rate(np.mean(d[k]["sink_mass"], axis=0), 0.3)}
                    for k in ("with_bos", "without_bos")}

        met["bos_ablation"] = {"baseline": side(bos_b), "quantized": side(bos_q)}
    return met, views


def sink_recovery(met: dict, prot: dict) -> dict:
    """Share of each gap (against the baseline) that sink protection recovers: 1 - protected / plain.

    1.0: protection closes the gap; 0: no effect; negative: protection made it worse. None when
    the plain gap is too small to divide by or not a gap at all (nothing to recover).
    """
    out = {}
    floors = {"loss_delta": 1e-3, "kld_mean": 1e-4, "misgeneration_rate": 1e-9}
    for k, floor in floors.items():
        a, b = met.get(k), prot.get(k)
        if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
            out[k] = None
        else:
            out[k] = (1.0 - b / a) if a > floor else None
        out[f"{k}_plain"] = a
        out[f"{k}_protected"] = b
    return out
