"""Deployment scenarios (`--scenarios streaming,packed,bos`): where a sink breaks in serving.

streaming.py  loss and KL over long sequences under three KV-cache policies (full, sink + window,
              window only), through a cache that really evicts
packing.py    several corpus documents in one sequence behind a separator, with and without a
              document-boundary mask: secondary sinks and loss per document position
bos.py        loss and sink rate with BOS always, never and as the tokenizer decides
evidence.py   per-sequence arrays -> figures with cluster-bootstrap intervals, gate views
runner.py     runs the selected scenarios for the baseline and a group of configurations
render.py     the "Deployment scenarios" section of summary.md and report.html

This module only names the scenarios and checks their settings (no torch import).
"""

from __future__ import annotations

from harness.errors import UsageError, did_you_mean
from harness.metrics.catalogue import metric_for

NAMES = ("streaming", "packed", "bos")


def parse(text) -> tuple[str, ...]:
    """'streaming,bos' -> ('streaming', 'bos') in canonical order; '', 'none' -> ()."""
    items = [x.strip() for x in str(text or "").split(",") if x.strip()]
    if items in ([], ["none"]):
        return ()
    for x in items:
        if x not in NAMES:
            raise UsageError(
                f"unknown --scenarios '{x}'{did_you_mean(x, NAMES)}; valid: {', '.join(NAMES)} "
                f"(comma-separated) or none"
            )
    return tuple(n for n in NAMES if n in items)


def selected(spec) -> tuple[str, ...]:
    return parse(getattr(spec, "scenarios", None))


def check(spec) -> None:
    """Usage errors of the scenario settings (one line each, exit 4); normalises spec.scenarios."""
    names = parse(spec.scenarios)
    spec.scenarios = ",".join(names) or "none"
    if "streaming" not in names:
        return
    k, w, t = spec.stream_sinks, spec.stream_window, spec.stream_len
    if w >= t:
        raise UsageError(
            f"--stream-window {w} must be smaller than the streaming sequence (--stream-len {t}): "
            f"a window that holds the whole sequence evicts nothing"
        )
    if k > w:
        raise UsageError(f"--stream-sinks {k} must not be larger than --stream-window {w}")
    if k + w >= t:
        raise UsageError(
            f"--stream-sinks {k} + --stream-window {w} must be smaller than --stream-len {t}: "
            f"the cache would never evict"
        )


def active(metric: str, spec) -> bool:
    """A scenario metric's gate applies only when its scenario runs, a task gate only with --tasks; every other
    metric's always does."""

    m = metric_for(metric)
    group = m.evidence if m is not None else None
    if group == "tasks":  # the task gates apply only when --tasks names a task
        return str(getattr(spec, "tasks", None) or "none").strip() not in ("", "none")
    return group not in NAMES or group in selected(spec)


def gates(limits: dict, spec) -> dict:
    """A policy's limits without the gates of scenarios this run does not measure."""
    return {m: lim for m, lim in limits.items() if active(m, spec)}


def baseline_block(base) -> dict:
    """{"scenarios": the baseline's scenario records} for results.json's baseline block ({} when none ran)."""
    recs = base.scenario_state.get("records")
    return {"scenarios": dict(recs)} if recs else {}
