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
    right_base = np.array([g["correct_baseline"] is True for g in gens])
    flip = np.array([g["correct_baseline"] is True and g["correct_quantized"] is False for g in gens])
    degen = np.array([bool(g["degenerate"]) and not g["degenerate_baseline"] for g in gens])
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
