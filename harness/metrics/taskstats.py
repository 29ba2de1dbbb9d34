"""Formulas of the task gates over the `tasks` evidence group (numpy only; declared in the catalogue).

Arrays: right_b / right_q (correct under baseline / configuration), mb / mq (multiple-choice margin of the correct
choice over the best wrong one, NaN for generation samples), cluster (task/family).
"""

from __future__ import annotations

import math

import numpy as np


def breaks(ev) -> tuple[int, int]:
    """(samples the baseline gets right and the configuration wrong, samples the baseline gets right)."""
    return int((ev["right_b"] & ~ev["right_q"]).sum()), int(ev["right_b"].sum())


def break_rate(ev, i) -> float:
    n = ev["right_b"][i].sum()
    return float((ev["right_b"][i] & ~ev["right_q"][i]).sum() / n) if n else math.nan


def acc_delta(ev, i) -> float:
    i = np.asarray(i)
    return float(ev["right_q"][i].mean() - ev["right_b"][i].mean()) if i.size else math.nan


def margin_delta(ev, i) -> float:
    d = (ev["mq"] - ev["mb"])[np.asarray(i)]
    d = d[~np.isnan(ev["mb"][np.asarray(i)])]  # multiple-choice samples only (a NaN quantized margin stays NaN)
    return float(d.mean()) if d.size else math.nan


def no_right(ev) -> str | None:
    return None if ev["right_b"].any() else "the baseline answers no task sample correctly: nothing can break"


def no_choices(ev) -> str | None:
    return None if (~np.isnan(ev["mb"])).any() else "no multiple-choice task sample: there is no choice margin"
