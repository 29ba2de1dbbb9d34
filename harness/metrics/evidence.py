"""Turn per-item measurements into evidence groups, then into results' metrics and gate views (via the catalogue)."""

from __future__ import annotations

import math

import numpy as np

from harness.metrics.catalogue import for_evidence
from harness.metrics.dist import clopper_pearson, tango
from harness.metrics.readers import cell_name, mean_stack
from harness.metrics.stats import cell_bounds, cluster_interval, mcnemar_p, members, sink_rate
from harness.metrics.text import is_correct, prompt_scores
from harness.metrics.views import GateView


def _nested(a: np.ndarray) -> list:
    return [[float(v) for v in row] for row in a] if a.ndim == 2 else [float(v) for v in a]


def baseline_metrics(s, tokenizer=None, sink_positions=(0,)) -> dict:
    """Baseline block of results.json from a ModelSummary."""
    mass = mean_stack(s.sink_mass)
    return {
        "loss": float(np.mean(np.concatenate(s.nll))),
        "sink_mass": _nested(mass),
        "sink_rate": sink_rate(mass, 0.3),
        "sink_rate_08": sink_rate(mass, 0.8),
        "massive_ratio": _nested(mean_stack(s.massive)),
        "attn_entropy": _nested(mean_stack(s.entropy).mean(-1)),
        "detected_sinks": detected_sinks(s, tokenizer, sink_positions),
    }


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
            g = groups.setdefault(
                text, {"token": text, "token_id": tok_id, "count": 0, "positions": [], "share_of_heads": []}
            )
            g["count"] += 1
            g["positions"].append(int(pos))
            g["share_of_heads"].append(float(votes[pos]) / heads)
    out = sorted(groups.values(), key=lambda g: -g["count"])[:top]
    for g in out:
        g["positions"] = sorted(set(g["positions"]))[:20]
        g["share_of_heads"] = float(np.mean(g["share_of_heads"]))
    return out


def family(prompt_id: str) -> str:
    """A prompt's family (the id up to its last '-'): prompts made from one template resample together."""
    return str(prompt_id).rsplit("-", 1)[0]


def interval(m, ev: dict, n: int) -> tuple[float, float] | None:
    """A scalar metric's 95% interval (metrics/stats.py): the cluster jackknife t-interval of its formula over the
    group's clusters (items when the clusters are strata), or an exact/score interval on its counts."""
    if m.kind == "none":
        return None
    if m.kind == "break" or m.kind == "share":
        x, k = m.counts(ev)
        return clopper_pearson(x, k)
    if m.kind == "net":
        return tango(*m.counts(ev))
    units = np.arange(n) if m.strata else ev["cluster"]
    return cluster_interval(lambda i: m.stat(ev, i), units, m.positive, m.log_shift)


def _clusters(m, ev: dict, n: int) -> int:
    return n if m.strata else len(np.unique(ev["cluster"])) if n else 0


def _cluster_values(m, ev: dict, k: int) -> tuple | None:
    """Each cluster's own value of the statistic, kept when clusters are few (the exact sign test over them)."""
    if m.kind != "t" or not 0 < k < 10 or m.strata:
        return None
    return tuple(float(m.stat(ev, g)) for g in members(ev["cluster"]))


def gate_view(m, ev: dict, n: int, design: dict | None = None) -> GateView:
    """The gate view of one gateable metric on its evidence group."""
    absent = m.premise(ev) if m.premise is not None else None
    k = _clusters(m, ev, n)
    if m.kind == "cells":
        cb = cell_bounds(m.cells(ev), ev["cluster"], m.worst, m.positive, m.log_shift)
        where = (m.where or (lambda ev, c: cell_name(c)))(ev, cb.where) if cb.where else ""
        if cb.proof_where and cb.proof_where != cb.where and math.isfinite(cb.ci[0]):
            where += f"; strongest evidence of harm at {cell_name(cb.proof_where)}"
        ci = cb.ci if all(math.isfinite(v) for v in cb.ci) else None
        return GateView(
            cb.value, ci, where, n, absent, k, f"{n} sequences in {k} documents over {cb.cells} cells", m.kind, design
        )
    value = float(m.stat(ev, np.arange(n)))
    ci = interval(m, ev, n)
    count = m.count(ev) if m.count is not None else (m.counts(ev)[-1] if m.counts is not None else n)
    unit = (design or {}).get("unit") if m.kind in ("net", "share") else None
    unit = unit or {"break": "stable-correct prompts", "net": "prompts", "share": "prompts"}.get(m.kind)
    unit = unit or (f"{n} prompts" if m.strata else f"{n} items in {k} documents")
    counts = tuple(int(c) for c in m.counts(ev)) if m.counts is not None else None
    return GateView(
        value,
        ci if ci is None or all(math.isfinite(v) for v in ci) else None,
        "",
        count,
        absent,
        k,
        unit,
        m.kind,
        design,
        _cluster_values(m, ev, k),
        counts,
    )


def reduce_evidence(group: str, ev: dict | None, n: int, designs: dict | None = None) -> tuple[dict, dict]:
    """(metrics, gate views) of every catalogue metric computed from one evidence group.

    One formula per metric gives the point value (all n items) and, for gateable metrics, the view its gate is
    decided on. An absent group (None) gives NaN values and NaN gate views. designs: how each group's (or
    metric's) size is set, {name: {option, value, ...}}, for the "what would decide it" line of an undecided gate.
    """
    met: dict = {}
    views: dict = {}
    everything = np.arange(n)
    if ev is not None and "cluster" not in ev:
        ev = {**ev, "cluster": everything}
    for m in for_evidence(group):
        if ev is None:
            if m.in_metrics:
                met[m.name] = math.nan
            if m.gate:
                views[m.name] = GateView(math.nan, n=0)
            continue
        if m.array is not None:
            met[m.name] = _nested(np.asarray(m.array(ev)))
        if m.gate:
            views[m.name] = gate_view(m, ev, n, (designs or {}).get(m.name) or (designs or {}).get(group))
        if m.stat is None:
            if m.gate and m.in_metrics and m.array is None:
                met[m.name] = views[m.name].value
            continue
        value = float(m.stat(ev, everything))
        if m.in_metrics and m.array is None:
            met[m.name] = value
    return met, views


def corpus_evidence(ps, docs=None) -> dict:
    """Per-sequence arrays of a PairSummary (the `sequences` evidence group); docs: each sequence's
    corpus document (the resampling cluster)."""
    n = len(ps.base.nll)
    return {
        "cluster": np.asarray(docs) if docs is not None else np.arange(n),
        "nll_b": np.stack(ps.base.nll),
        "nll_q": np.stack(ps.quant.nll),  # [N, T-1]
        "kl": np.stack(ps.kl)[:, :-1],  # [N, T-1]: the last position has no next token in the corpus
        "top1": np.stack(ps.top1)[:, :-1].astype(np.float64),
        "mass_b": np.stack(ps.base.sink_mass),
        "mass_q": np.stack(ps.quant.sink_mass),  # [N,L,H]
        "js": np.stack(ps.js),
        "ent_b": np.stack(ps.base.entropy),
        "ent_q": np.stack(ps.quant.entropy),
        "cos": np.stack(ps.hidden_cos),
        "rel": np.stack(ps.hidden_relerr),  # [N,L]
        "kvrel": np.stack(ps.kv_relerr),
        "krel": np.stack(ps.key_relerr),
        "vrel": np.stack(ps.value_relerr),
        "massive_q": np.stack(ps.quant.massive),
    }


def corpus_metrics(ps, tokenizer=None, sink_positions=(0,), docs=None, designs=None) -> tuple[dict, dict]:
    """(metrics, gate views) of a PairSummary."""
    ev = corpus_evidence(ps, docs)
    n = len(ev["nll_b"])
    met, views = reduce_evidence("sequences", ev, n, designs)
    run_met, run_views = reduce_evidence("run", {"logit_delta_max": float(ps.logit_delta_max)}, 1)
    met.update(run_met)
    views.update(run_views)
    flat_kl = ev["kl"].ravel()
    met["kld_histogram"] = (
        np.histogram(np.log10(np.clip(flat_kl, 1e-8, None)), bins=30, range=(-8, 1))[0].tolist()
        if np.isfinite(flat_kl).all()
        else []
    )
    met["detected_sinks"] = detected_sinks(ps.quant, tokenizer, sink_positions)
    return met, views


def sequence_items(ps, docs=None) -> list[dict]:
    """Per-sequence paired evidence for results.json: enough to recompute the corpus statistics and
    to compare two runs sequence by sequence (their corpus, hence their sequences, are identical)."""
    ev = corpus_evidence(ps, docs)
    mb, mq = ev["mass_b"].mean(-1), ev["mass_q"].mean(-1)  # [N, L]: mean over heads
    return [
        {
            "doc": int(ev["cluster"][k]),
            "nll_baseline": float(ev["nll_b"][k].mean()),
            "nll_quantized": float(ev["nll_q"][k].mean()),
            "kl_mean": float(ev["kl"][k].mean()),
            "top1": float(ev["top1"][k].mean()),
            "sink_mass_baseline": mb[k].tolist(),
            "sink_mass_quantized": mq[k].tolist(),
            "sink_hidden_cos": ev["cos"][k].tolist(),
            "attn_js_max": float(ev["js"][k].max()),
        }
        for k in range(len(ev["nll_b"]))
    ]


def prompt_evidence(gens: list[dict]) -> dict:
    """Per-prompt arrays of generation records (the `prompts` and `long` evidence groups)."""
    scores = [prompt_scores(g) for g in gens]
    return {
        "cluster": np.array([family(g.get("id", i)) for i, g in enumerate(gens)], dtype=object),
        "exact": np.array([g["exact"] for g in gens], dtype=float),
        "div": np.array([g["first_divergence"] for g in gens], dtype=float),
        "right_base": np.array([g["correct_baseline"] is True for g in gens], dtype=bool),
        "has_ref": np.array([bool(g["reference"]) for g in gens], dtype=bool),
        "stable_right": np.array([g.get("stable_baseline") == "right" for g in gens], dtype=bool),
        "stable_wrong": np.array([g.get("stable_baseline") == "wrong" for g in gens], dtype=bool),
        "flip": np.array([s["flip"] for s in scores], dtype=float),
        "fix": np.array([s["fix"] for s in scores], dtype=float),
        "degen": np.array([s["degen"] for s in scores], dtype=float),
        "mis": np.array([s["mis"] for s in scores], dtype=float),
    }


def generation_metrics(gens: list[dict], designs=None) -> tuple[dict, dict]:
    """Metrics and gate views from per-prompt generation records."""
    ev = prompt_evidence(gens)
    met, views = reduce_evidence("prompts", ev, len(gens), designs)
    flips, unflips = int(ev["flip"].sum()), int(ev["fix"].sum())
    met.update(
        {
            "n_prompts": len(gens),
            "n_with_references": sum(1 for g in gens if g["reference"]),
            "n_baseline_correct": int(ev["right_base"].sum()),
            "n_quantized_correct": int(sum(g["correct_quantized"] is True for g in gens)),
            "n_stable_correct": int(ev["stable_right"].sum()),
            "n_stable_wrong": int(ev["stable_wrong"].sum()),
            "flips": flips,
            "unflips": unflips,
        }
    )
    open_ = ev["degen"][~ev["has_ref"]]
    new, gone = int((open_ > 0).sum()), int((open_ < 0).sum())
    met.update(
        {
            "n_open_prompts": len(open_),
            "new_degenerate": new,
            "recovered_degenerate": gone,
            "degenerate_mcnemar_p": mcnemar_p(new, gone),
        }
    )
    return met, views


def answer_metrics(prompt_ids: list, margin_b: list, margin_q: list, designs=None) -> tuple[dict, dict]:
    """The `answers` evidence group: per stable-correct prompt, the mean over its texts (the prompt and its three
    neutral variants) of the deciding token's margin, quantized and baseline (measure/answers.py)."""
    by: dict = {}
    for pid, b, q in zip(prompt_ids, margin_b, margin_q):
        by.setdefault(pid, []).append((b, q))
    ids = list(by)
    mb = np.array([np.mean([b for b, _ in by[k]]) for k in ids], dtype=float)
    mq = np.array([np.mean([q for _, q in by[k]]) for k in ids], dtype=float)
    dev = int(sum(q < 0 for q in margin_q if q == q))
    ev = {"cluster": np.array([family(k) for k in ids], dtype=object), "mb": mb, "mq": mq}
    met, views = reduce_evidence("answers", ev, len(ids), designs)
    met.update({"answer_texts": len(margin_q), "answer_deviations": dev})
    return met, views


def _nanmean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else math.nan


def behaviour_metrics(
    ref, gens, var_base, var_quant, long, own_nll, q_nll, spread_b, spread_q, designs: dict | None = None
) -> tuple[dict, dict]:
    """stability_rate, gen_ppl_ratio, long_* generation metrics and perturbation_spread (the BOS policy is a
    deployment scenario: harness/scenarios/bos.py)."""
    met: dict = {}
    views: dict = {}

    def add(group, ev, n):
        m, v = reduce_evidence(group, ev, n, designs)
        met.update(m)
        views.update(v)

    # Stability: correctness of the prompt and its three variants all agree (per model).
    by_id = {g["id"]: g for g in gens}
    stable_q, stable_b, fams = [], [], []
    for k, p in enumerate(ref):
        refs = list(p.references)
        g = by_id.get(p.id)
        if g is None:
            continue
        vb = [is_correct(t, refs) for t in var_base[3 * k : 3 * k + 3]]
        vq = [is_correct(t, refs) for t in var_quant[3 * k : 3 * k + 3]]
        stable_b.append(len({g["correct_baseline"], *vb}) == 1)
        stable_q.append(len({g["correct_quantized"], *vq}) == 1)
        fams.append(family(p.id))
    add(
        "stability",
        {
            "sq": np.array(stable_q, dtype=float),
            "sb": np.array(stable_b, dtype=float),
            "cluster": np.array(fams, dtype=object),
        },
        len(stable_q),
    )
    met["n_stability_prompts"] = len(stable_q)
    # Readability: perplexity under the baseline of the quantized continuations over the baseline's own.
    both = [(a, b, family(g["id"])) for a, b, g in zip(own_nll, q_nll, gens) if a[1] > 0 and b[1] > 0]
    if both:
        nb = np.array([a for a, _, _ in both])  # [n, 2]: summed nll, tokens
        nq = np.array([b for _, b, _ in both])
        add("gen_ppl", {"nb": nb, "nq": nq, "cluster": np.array([f for _, _, f in both], dtype=object)}, len(both))
        met["gen_ppl_baseline"] = math.exp(nb[:, 0].sum() / nb[:, 1].sum())
        met["gen_ppl_quantized"] = math.exp(nq[:, 0].sum() / nq[:, 1].sum())
    else:
        add("gen_ppl", None, 0)
    met["n_gen_ppl_prompts"] = len(both)
    # Long generations.
    add("long", prompt_evidence(long), len(long))
    met.update(
        {"long_n_prompts": len(long), "long_new_tokens": max((len(g["quantized_ids"]) for g in long), default=0)}
    )
    met["long_generations"] = [
        {
            k: g[k]
            for k in ("id", "prompt", "baseline", "quantized", "degenerate", "degenerate_baseline", "first_divergence")
        }
        for g in long
    ]
    # Over-mixing probe (Barbero et al. 2025): quantized spread over the baseline's.
    sb_, sq_ = np.asarray(spread_b, dtype=float), np.asarray(spread_q, dtype=float)
    ok = ~(np.isnan(sb_) | np.isnan(sq_))
    add("spread", {"b": sb_[ok], "q": sq_[ok]} if ok.any() else None, int(ok.sum()))
    met["perturbation_spread_baseline"] = _nanmean(sb_[ok])
    met["perturbation_spread_quantized"] = _nanmean(sq_[ok])
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


def stored_evidence(group: str, records: list[dict]) -> dict:
    """An evidence group rebuilt from the per-item records results.json keeps (catalogue.STORED): prompts from
    generation records; sequences from per-sequence means (so token-level statistics become sequence-level)."""
    if group == "prompts":
        return prompt_evidence(records)
    if group != "sequences":
        raise KeyError(f"results.json keeps no per-item records of evidence group {group}")
    items = records
    return {
        "cluster": np.array([s["doc"] for s in items]),
        "nll_b": np.array([[s["nll_baseline"]] for s in items]),
        "nll_q": np.array([[s["nll_quantized"]] for s in items]),
        "kl": np.array([[s["kl_mean"]] for s in items]),
        "top1": np.array([[s["top1"]] for s in items]),
        "cos": np.array([s["sink_hidden_cos"] for s in items], dtype=float),
        # the sink premise asks whether some head gives the sinks > 0.3; per-sequence evidence keeps the
        # per-layer mean over heads, and a layer mean above 0.3 implies such a head (a conservative proxy)
        "mass_b": np.array([s["sink_mass_baseline"] for s in items], dtype=float)[:, :, None],
    }
