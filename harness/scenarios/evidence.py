"""Scenario measurements -> figures with intervals, per-sequence paired items and gate views.

Every figure is {"value", "ci_low", "ci_high"}: its 95% interval is over corpus documents (each sequence's
document id), the same cluster jackknife t-interval as the corpus metrics. Gate views
come from the catalogue's formulas on the scenario's evidence group (metrics/evidence.py reduce_evidence).
"""

from __future__ import annotations

import math

import numpy as np

from harness.metrics.catalogue import for_evidence
from harness.metrics.evidence import reduce_evidence
from harness.metrics.stats import cluster_interval, sink_rate
from harness.metrics.views import GateView

EPS = 0.3


def figure(stat, clusters) -> dict:
    """stat(item index array) over all items, with its 95% interval over clusters (the cluster jackknife t)."""
    clusters = np.asarray(clusters)
    if len(clusters) == 0:
        return {"value": None, "ci_low": None, "ci_high": None}
    value = float(stat(np.arange(len(clusters))))
    lo, hi = cluster_interval(stat, clusters)
    return {"value": value, "ci_low": lo, "ci_high": hi}


def mean_fig(x, clusters) -> dict:
    x = np.asarray(x, dtype=np.float64)
    return figure(lambda i: float(x[i].mean()), clusters)


def rate_fig(mass, clusters) -> dict:
    """Sink rate (share of (layer, head) whose mean mass over the items exceeds EPS) of mass [n, L, H]."""
    mass = np.asarray(mass, dtype=np.float64)
    return figure(lambda i: _rate(mass[i].mean(0)), clusters)


def _rate(m) -> float:
    return sink_rate(m, EPS) if np.isfinite(m).all() else math.nan


def views(group: str, ev: dict | None, absent: str | None = None) -> tuple[dict, dict]:
    """(metrics, gate views) of a scenario's catalogue metrics; `absent`: why the scenario could not
    apply to this configuration (its gates are then not_applicable)."""

    if absent is not None:
        return (
            {m.name: None for m in for_evidence(group)},
            {m.name: GateView(math.nan, n=0, absent=absent) for m in for_evidence(group) if m.gate},
        )
    n = len(ev["cluster"])
    return reduce_evidence(group, ev, n)


# ---- streaming ----


def streaming_side(raw: dict, clusters) -> dict:
    """One model's streaming figures from per_sequence() output of each policy."""
    f, sw, wo = (np.asarray(raw[p]["nll"]) for p in ("full", "sink_window", "window_only"))
    out = {
        "loss_full": mean_fig(f, clusters),
        "loss_sink_window": mean_fig(sw, clusters),
        "loss_window_only": mean_fig(wo, clusters),
        "gap_sink_window": mean_fig(sw - f, clusters),
        "collapse_window_only": mean_fig(wo - f, clusters),
    }
    if raw["full"].get("kl") is not None:
        for p, key in (("full", "kl_full"), ("sink_window", "kl_sink_window"), ("window_only", "kl_window_only")):
            out[key] = mean_fig(raw[p]["kl"], clusters)
    return out


def streaming_evidence(raw_b: dict, raw_q: dict, clusters) -> dict:
    ev = {"cluster": np.asarray(clusters)}
    for tag, raw in (("b", raw_b), ("q", raw_q)):
        for p, k in (("full", "f"), ("sink_window", "sw"), ("window_only", "wo")):
            ev[f"{k}_{tag}"] = np.asarray(raw[p]["nll"], dtype=np.float64)
    return ev


def streaming_config(raw_b, raw_q, clusters, spans) -> dict:
    """A configuration's streaming record: its figures, their shift from the baseline's, paired items."""
    ev = streaming_evidence(raw_b, raw_q, clusters)
    rec = streaming_side(raw_q, clusters)
    # gap_delta (the gated one) is added from its gate view by the runner: one formula, in the catalogue
    rec["vs_baseline"] = {
        "collapse_delta": figure(
            lambda i: float((ev["wo_q"][i] - ev["f_q"][i]).mean() - (ev["wo_b"][i] - ev["f_b"][i]).mean()), clusters
        )
    }
    rec["items"] = [
        {
            "doc": int(clusters[k]),
            "docs_spanned": int(spans[k]),
            **{f"loss_{p}_baseline": float(raw_b[p]["nll"][k]) for p in raw_b},
            **{f"loss_{p}": float(raw_q[p]["nll"][k]) for p in raw_q},
            **{f"kl_{p}": float(raw_q[p]["kl"][k]) for p in raw_q},
        }
        for k in range(len(clusters))
    ]
    return rec


def curve(raw: dict, bins: int = 32) -> dict:
    """Mean NLL per position bin (over sequences) for each policy: the data of the streaming plot."""
    T1 = raw["full"]["curve"].shape[1]
    width = max(1, math.ceil(T1 / bins))
    out = {"bin_width": width}
    for p, r in raw.items():
        c = np.asarray(r["curve"], dtype=np.float64)
        out[p] = [float(c[:, a : a + width].mean()) for a in range(0, T1, width)]
    return out


# ---- packed ----


def packed_side(raw: dict, clusters) -> list[dict]:
    """Per document position: loss, attention mass on its start (mean over heads), secondary-sink rate
    at its start, and attention mass its rows still give to position 0."""
    D = raw["nll"].shape[1]
    return [
        {
            "loss": mean_fig(raw["nll"][:, d], clusters),
            "start_mass": mean_fig(raw["start"][:, d].mean((1, 2)), clusters),
            "start_rate": rate_fig(raw["start"][:, d], clusters),
            "zero_mass": mean_fig(raw["zero"][:, d].mean((1, 2)), clusters),
        }
        for d in range(D)
    ]


def packed_evidence(raw_b: dict, raw_q: dict, clusters) -> dict:
    return {
        "cluster": np.asarray(clusters),
        "nll_b": raw_b["nll"],
        "nll_q": raw_q["nll"],
        "start_b": raw_b["start"],
        "start_q": raw_q["start"],
    }


def packed_config(raw_b: dict, raw_q: dict, clusters) -> dict:
    """A configuration's record of one packed sub-scenario: per document position its figures and shifts."""
    docs = packed_side(raw_q, clusters)
    for d, row in enumerate(docs):
        dl = raw_q["nll"][:, d] - raw_b["nll"][:, d]
        row["loss_shift"] = mean_fig(dl, clusters)
        sb, sq = raw_b["start"][:, d], raw_q["start"][:, d]
        row["start_rate_shift"] = figure(lambda i, sb=sb, sq=sq: _rate(sq[i].mean(0)) - _rate(sb[i].mean(0)), clusters)
    items = [
        {
            "doc": int(clusters[k]),
            "loss_baseline": raw_b["nll"][k].tolist(),
            "loss": raw_q["nll"][k].tolist(),
            "start_mass_baseline": raw_b["start"][k].mean((1, 2)).tolist(),
            "start_mass": raw_q["start"][k].mean((1, 2)).tolist(),
        }
        for k in range(len(clusters))
    ]
    return {"docs": docs, "items": items}


# ---- bos ----


def bos_side(raw: dict, auto: str, clusters) -> dict:
    out = {
        p: {"loss": mean_fig(raw[p]["nll"], clusters), "sink_rate": rate_fig(raw[p]["mass"], clusters)}
        for p in ("always", "never")
    }
    out["auto"] = {"same_as": auto, **out[auto]}
    out["removal"] = mean_fig(raw["never"]["nll"] - raw["always"]["nll"], clusters)
    return out


def bos_evidence(raw_b: dict, raw_q: dict, clusters) -> dict:
    return {
        "cluster": np.asarray(clusters),
        "al_b": raw_b["always"]["nll"],
        "nv_b": raw_b["never"]["nll"],
        "al_q": raw_q["always"]["nll"],
        "nv_q": raw_q["never"]["nll"],
    }


def bos_config(raw_b: dict, raw_q: dict, auto: str, clusters) -> dict:
    rec = bos_side(raw_q, auto, clusters)  # vs_baseline.removal_delta: from the gate view (runner)
    ev = bos_evidence(raw_b, raw_q, clusters)
    rec["items"] = [
        {
            "doc": int(clusters[k]),
            "loss_always_baseline": float(ev["al_b"][k]),
            "loss_never_baseline": float(ev["nv_b"][k]),
            "loss_always": float(ev["al_q"][k]),
            "loss_never": float(ev["nv_q"][k]),
        }
        for k in range(len(clusters))
    ]
    return rec
