"""How the catalogue's metrics read their evidence groups: the formulas, premises and counts its entries name.

Kept apart from the table itself (catalogue.py) so that each metric stays one declaration there.
"""

from __future__ import annotations

import math

import numpy as np

from harness.metrics.stats import sink_rate


def mean(x) -> float:
    x = np.asarray(x, dtype=np.float64)
    return float(x.mean()) if x.size else math.nan


def finite_or_nan(fn):
    def stat(ev, i):
        kl = ev["kl"][i]
        return float(fn(kl)) if np.isfinite(kl).all() else math.nan

    return stat


def rate(mass, eps) -> float:
    """sink_rate that stays NaN for non-finite maps (NaN > eps is False: never a silent 0)."""
    return sink_rate(mass, eps) if np.isfinite(mass).all() else math.nan


def cell_name(cell: tuple) -> str:
    """A cell of a per-layer or per-head array as reports name it."""
    return f"layer {cell[0]} head {cell[1]}" if len(cell) == 2 else f"layer {cell[0]}"


def shift_where(ev, cell: tuple) -> str:
    mb, mq = ev["mass_b"][(slice(None), *cell)].mean(), ev["mass_q"][(slice(None), *cell)].mean()
    return cell_name(cell) + f" (baseline {mb:.3f}, quantized {mq:.3f})"


def ppl(ev, i) -> float:
    d = ev["nll_q"][i].mean() - ev["nll_b"][i].mean()
    return float(math.exp(d)) if math.isfinite(d) else math.nan


def nll_delta(s: dict) -> float:
    """One stored sequence's mean NLL change (quantized - baseline); NaN where results.json stored a non-finite
    value as null."""
    q, b = s["nll_quantized"], s["nll_baseline"]
    return math.nan if q is None or b is None else q - b


def gen_ppl(ev, i) -> float:
    nb, nq = ev["nb"], ev["nq"]
    return math.exp(nq[i, 0].sum() / nq[i, 1].sum() - nb[i, 0].sum() / nb[i, 1].sum())


def no_sink(ev) -> str | None:
    """Sink gates need a sink in the baseline: a head giving the sink positions > 0.3 of its attention."""
    if rate(ev["mass_b"].mean(0), 0.3) > 0:
        return None
    return "the baseline has no sink (no head gives the sink positions more than 0.3 of its attention)"


def no_correct(ev) -> str | None:
    if ev["stable_right"].sum() > 0:
        return None
    n_ref = int(ev["has_ref"].sum())
    return (
        f"the baseline answers none of the {n_ref} prompts with references correctly on the prompt and all "
        f"three neutral variants: nothing can flip"
        if n_ref
        else "no prompt has reference answers: nothing can flip"
    )


def no_answers(ev) -> str | None:
    if len(ev["mb"]):
        return None
    return "no prompt is stable-correct under the baseline: there is no correct answer whose margin could shrink"


def break_rate(ev, i) -> float:
    """Stable-correct prompts the quantized model answers wrongly, over stable-correct prompts (fixes not counted)."""
    n = ev["stable_right"][i].sum()
    return float((ev["flip"][i] > 0).sum() / n) if n else math.nan  # flip: +1 for a break (text.prompt_scores)


def breaks(ev) -> tuple[int, int]:
    """(breaks, stable-correct prompts): the counts flip_rate's exact interval rests on."""
    return int((ev["flip"] > 0).sum()), int(ev["stable_right"].sum())


def net(score) -> tuple[int, int, int]:
    """(items worse, items better, items) of a paired score (+1 worse, -1 better, 0 neither)."""
    score = np.asarray(score)
    return int((score > 0).sum()), int((score < 0).sum()), len(score)


def gap(ev, i, a: str, b: str) -> float:
    """Scenario evidence: mean(a_q - b_q) - mean(a_b - b_b) over the items i (a paired difference of gaps)."""
    return float((ev[a + "_q"][i] - ev[b + "_q"][i]).mean() - (ev[a + "_b"][i] - ev[b + "_b"][i]).mean())


def packed_loss(ev, i) -> float:
    """Mean over sequences of (quantized - baseline) loss on documents 2.. minus that on document 1."""
    d = ev["nll_q"][i] - ev["nll_b"][i]  # [n, D]
    return float((d[:, 1:].mean(1) - d[:, 0]).mean())


def mean_stack(xs) -> np.ndarray:
    """Elementwise mean of equally shaped per-item arrays."""
    return np.mean(np.stack(xs), axis=0)
