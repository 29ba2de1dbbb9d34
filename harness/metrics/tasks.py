"""The `tasks` evidence group: the user's task samples paired across the baseline and a configuration.

One row per sample of every task (--tasks): correct under each model and, for multiple-choice, the margin of the
correct choice's log-likelihood over the best wrong one. Samples cluster by task and family (the unit the
intervals resample); task_break_rate, task_acc_delta and task_margin_delta are declared in the catalogue. They pool
every task; with two or more tasks each task also gets its own gates, `<metric>@<task>`, on its samples alone.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from harness.metrics.catalogue import BY_NAME, for_evidence
from harness.metrics.evidence import reduce_evidence

WORST = 12  # samples per configuration report.html shows (breaks first, then the largest margin losses)


def margin(lls, answer: int) -> float | None:
    """The correct choice's log-likelihood minus the best wrong choice's (None without choices)."""
    if not lls or answer is None or not 0 <= answer < len(lls) or len(lls) < 2:
        return None
    return float(lls[answer] - max(v for k, v in enumerate(lls) if k != answer))


def task_evidence(rows: list[dict]) -> dict:
    """Per-sample arrays of paired task rows (see engine/tasks.py pair_rows)."""

    def f(v):
        return math.nan if v is None else float(v)

    return {
        "cluster": np.array([f"{r['task']}/{r['family']}" for r in rows], dtype=object),
        "right_b": np.array([bool(r["correct_baseline"]) for r in rows], dtype=bool),
        "right_q": np.array([bool(r["correct_quantized"]) for r in rows], dtype=bool),
        "mb": np.array([f(r.get("margin_baseline")) for r in rows], dtype=float),
        "mq": np.array([f(r.get("margin_quantized")) for r in rows], dtype=float),
    }


def task_metrics(
    rows: list[dict], designs=None, absent: str | None = None, tasks: dict[str, str | None] | None = None
) -> tuple[dict, dict]:
    """(metrics, gate views) of the tasks group; no rows: NaN views, or views whose premise is `absent`.

    designs(rows, task) -> {name: design} says how the sample count is set (None: no design). tasks: every task of
    the run in order, {name: why it was skipped, or None} (default: the tasks of `rows`); with two or more, each
    task also gets its own views `<metric>@<task>` (a skipped task's: not applicable, with why).
    """
    design = designs or (lambda rs, task=None: None)
    if tasks is None:
        tasks = dict.fromkeys(r["task"] for r in rows)
    met, views = _views(rows, design(rows), absent)
    if rows:
        ev = task_evidence(rows)
        per = _per_task(ev, [r["task"] for r in rows])
        views = {k: replace(v, where=per.get(k, "")) for k, v in views.items()}
        met["task_samples"] = len(rows)
        met["task_breaks"] = int((ev["right_b"] & ~ev["right_q"]).sum())
        met["task_fixes"] = int((~ev["right_b"] & ev["right_q"]).sum())
    if len(tasks) >= 2:
        for name, skipped in tasks.items():
            mine = [r for r in rows if r["task"] == name]
            why = skipped or (None if mine else f"task {name} has no sample")
            _, own = _views(mine, design(mine, name), why, name)
            views.update({f"{k}@{name}": v for k, v in own.items()})
    return met, views


def gate_names(tasks) -> list[str]:
    """The per-task gate views a run with these task names has (`<metric>@<task>`; none with fewer than two)."""
    names = list(dict.fromkeys(tasks))
    if len(names) < 2:
        return []
    return [f"{m.name}@{n}" for m in for_evidence("tasks") if m.gate for n in names]


def _views(rows: list[dict], designs: dict | None, absent: str | None, task: str | None = None) -> tuple[dict, dict]:
    """(metrics, gate views) of the task gates over `rows` (every task's, or one task's), each view's unit in the
    task's own words (the defaults speak of prompts and documents)."""
    if not rows:
        met, views = reduce_evidence("tasks", None, 0, designs)
        if absent:
            views = {k: type(v)(math.nan, n=0, absent=absent) for k, v in views.items()}
        return met, views
    ev = task_evidence(rows)
    met, views = reduce_evidence("tasks", ev, len(rows), designs)
    k, n_mc = len(set(ev["cluster"])), int((~np.isnan(ev["mb"])).sum())
    of = f" of task {task}" if task is not None else ""
    fam = "families" if task is not None else "task families"
    units = {
        "task_break_rate": (None, f"baseline-right samples{of}" if task is not None else "baseline-right task samples"),
        "task_acc_delta": (None, f"{len(rows)} {'samples' + of if task is not None else 'task samples'} in {k} {fam}"),
        "task_margin_delta": (n_mc, f"{n_mc} multiple-choice samples{of} in {k} {fam}"),
    }
    for name, (n, unit) in units.items():
        if name in views:
            views[name] = replace(views[name], unit=unit, **({"n": n} if n is not None else {}))
    return met, views


def worst(rows: list[dict], k: int = WORST) -> list[dict]:
    """The samples report.html shows: breaks first, then the largest losses of margin."""

    def key(r):
        dm = (r.get("margin_quantized") or 0.0) - (r.get("margin_baseline") or 0.0)
        return (not (r["correct_baseline"] and not r["correct_quantized"]), dm)

    return sorted(rows, key=key)[:k]


def _per_task(ev: dict, tasks: list[str]) -> dict:
    """With more than one task, each gate's value per task in the pooled gate's `where`: {metric: text}."""
    names = list(dict.fromkeys(tasks))
    if len(names) < 2:
        return {}
    t = np.asarray(tasks, dtype=object)
    out = {}
    for metric in ("task_break_rate", "task_acc_delta", "task_margin_delta"):
        m = BY_NAME[metric]
        vals = [(n, m.stat(ev, np.flatnonzero(t == n))) for n in names]
        finite = [(n, v) for n, v in vals if np.isfinite(v)]
        if not finite:
            continue
        bad = (max if m.better == "lower" else min)(finite, key=lambda x: x[1])
        out[metric] = f"task {bad[0]} ({bad[1]:.4g}); per task: " + ", ".join(f"{n} {v:.4g}" for n, v in vals)
    return out
