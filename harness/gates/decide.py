"""Gates: one limit applied to one metric's scalar view, with a message a person can act on.

A gate is a non-inferiority decision on the metric's 95% interval (metrics/stats.py: a cluster jackknife
t-interval over corpus documents, every cell of a worst-head/layer metric, exact or score intervals for rates):
`pass` when the whole interval lies on the good side of the limit, `fail` when it lies wholly on the bad side (a
non-finite value always fails), `inconclusive` when it straddles the limit, `insufficient` with fewer items or
clusters than the metric's minimum (unless that evidence already proves a failure), and `not_applicable` when the
gate's premise is absent in the baseline (no stable-correct answer to flip, no sink to shift). An undecided gate
names the option and value that would decide it (gates/decider.py). A gate without an interval (logit_delta_max)
is decided on its value. Only `pass` counts as passed; the others are shown, never silently passed.
"""

from __future__ import annotations

import math

from harness.gates.decider import cluster_unit, what_decides
from harness.gates.policy import Limit
from harness.metrics.catalogue import metric_for
from harness.metrics.stats import ALPHA, sign_test_beyond
from harness.metrics.views import GateView

OUTCOMES = ("pass", "fail", "inconclusive", "insufficient", "not_applicable")


def gated(limits: dict, views) -> list[tuple[str, Limit]]:
    """(view name, limit) of every gate: each metric with a limit, right after it every view `<metric>@<part>`
    (one task's own gate) in the views' order, under the metric's limit."""
    out = []
    for m, lim in limits.items():
        out.append((m, lim))
        out += [(v, lim) for v in views if "@" in v and v.partition("@")[0] == m]
    return out


def gate_all(spec: str, limits: dict, views: dict, nonfinite_layer: int | None = None) -> list[dict]:
    """Every gate of limits ({metric: Limit}), and of their per-part views, decided on the stored views
    ({name: GateView.as_dict()})."""
    note = (
        f"NaN/Inf first appeared in the output of decoder layer {nonfinite_layer}"
        if nonfinite_layer is not None
        else ""
    )
    return [evaluate_gate(spec, m, lim, GateView.from_dict(views[m]), note) for m, lim in gated(limits, views)]


def _ci_text(ci) -> str:
    return f" [95% CI {ci[0]:.4g}, {ci[1]:.4g}]" if ci else ""


def evaluate_gate(spec: str, metric: str, limit: Limit, view: GateView, nonfinite_note: str = "") -> dict:
    """One gate's outcome on its view, with a message a person can act on.

    not_applicable when the premise is absent in the baseline; fail for a non-finite value whatever the count;
    with fewer items or clusters than the metric needs, insufficient unless the evidence there is already proves
    a failure (the interval wholly beyond the limit, or the exact sign test over every cluster); else pass / fail /
    inconclusive from where the interval lies. An undecided gate says what would decide it (decider.py).
    """
    m = metric_for(metric)
    if m is None:
        raise KeyError(f"no catalogue metric '{metric.partition('@')[0]}' for the gate {metric}")
    v = view.value
    finite = v is not None and math.isfinite(v)
    ci = view.ci if view.ci and all(c is not None and math.isfinite(c) for c in view.ci) else None
    n_txt = (
        f", n={view.n}" + (f" ({view.unit})" if view.unit else "") if view.n is not None and m.kind != "none" else ""
    )
    where = f" (worst at {view.where})" if view.where else ""
    short = _short_of(m, view)
    decided = decide(limit, v, ci) if finite and (ci is not None or m.kind == "none") else None
    if view.absent:
        outcome, detail = "not_applicable", f"{spec}: {metric} not applicable: {view.absent}"
    elif not finite:
        outcome = "fail"
        detail = f"{spec}: {metric} is {v} (non-finite): fails {metric} {limit}" + (
            f"; {nonfinite_note}" if nonfinite_note else ""
        )
    elif short:
        proof = _sign_proof(view, limit)
        if decided == "fail":
            outcome, detail = (
                "fail",
                (
                    f"{spec}: {metric} = {v:.4g}{_ci_text(ci)} violates limit {limit}{n_txt}"
                    f"{where}: proved despite {short}"
                ),
            )
        elif proof:
            outcome, detail = "fail", f"{spec}: {metric} = {v:.4g} violates limit {limit}{n_txt}{where}: {proof}"
        else:
            outcome = "insufficient"
            detail = f"{spec}: {metric} = {v:.4g}{_ci_text(ci)} insufficient evidence: {short} (limit {limit})"
    elif decided is None and _sign_proof(view, limit):
        outcome = "fail"
        detail = f"{spec}: {metric} = {v:.4g} violates limit {limit}{n_txt}{where}: {_sign_proof(view, limit)}"
    elif decided is None:
        outcome = "inconclusive"
        detail = f"{spec}: {metric} = {v:.4g} has no interval{n_txt}: cannot be decided against limit {limit}"
    else:
        outcome = decided
        word = {"pass": "within", "fail": "violates", "inconclusive": "straddles"}[outcome]
        detail = f"{spec}: {metric} = {v:.4g}{_ci_text(ci)} {word} limit {limit}{n_txt}{where}"
    decides = what_decides(m, view, limit) if outcome in ("inconclusive", "insufficient") else None
    if decides:
        detail += f"; {decides}"
    return {
        "metric": metric,
        "value": v if finite else None,
        "limit": limit.bound,
        "op": limit.op,
        "outcome": outcome,
        "passed": outcome == "pass",
        "detail": detail,
        "n": view.n,
        "clusters": view.clusters,
        "decides": decides,
        "ci_low": view.ci[0] if view.ci else None,
        "ci_high": view.ci[1] if view.ci else None,
    }


def _short_of(m, view: GateView) -> str:
    """Why the evidence is below the metric's minimum ('' when it is not)."""
    if view.n is not None and view.n < m.min_n:
        return f"{view.n} items, at least {m.min_n} needed"
    if m.kind in ("t", "cells") and not m.strata and view.clusters is not None and view.clusters < m.min_clusters:
        return f"{view.clusters} {cluster_unit(m)} (clusters), at least {m.min_clusters} needed"
    return ""


def _sign_proof(view: GateView, limit: Limit) -> str:
    """The exact sign test over clusters when it proves a failure (every cluster beyond the limit, p < 0.025)."""
    if not view.cluster_values:
        return ""
    p = sign_test_beyond(view.cluster_values, limit.bound, bad_above=limit.op == "max")
    k = len(view.cluster_values)
    return f"all {k} documents lie beyond it (exact sign test p = {p:.3g})" if p < ALPHA / 2 else ""


def decide(limit: Limit, value: float, ci: tuple[float, float] | None) -> str:
    """pass / fail / inconclusive from where the interval lies against the limit (the value alone
    when there is no interval)."""
    if ci is None:
        return "pass" if limit.holds(value) else "fail"
    lo, hi = ci
    good, bad = (hi, lo) if limit.op == "max" else (lo, hi)
    if limit.holds(good):
        return "pass"
    return "fail" if not limit.holds(bad) else "inconclusive"


def config_verdict(gates: list[dict], regressions: list[dict] | None = None) -> str:
    """A configuration's verdict: fail if any gate or regression check failed; inconclusive if any other gate
    did not pass or there is no gate; else pass. The one rule every entry point applies (run_verdict builds on
    it)."""
    checks = [r for r in regressions or () if r.get("outcome") != "not_applicable"]  # nothing earlier to compare
    outcomes = {g.get("outcome", "pass" if g["passed"] else "fail") for g in [*gates, *checks]}
    if "fail" in outcomes:
        return "fail"
    return "pass" if gates and outcomes <= {"pass"} else "inconclusive"  # no gate at all is never a pass


def run_verdict(rec) -> tuple[str, str]:
    """(verdict, reason): pass only when every configuration was measured and passed.

    fail: a configuration or regression check failed, nothing at all was measured, or (strict)
    anything short of a pass; inconclusive: some configuration was skipped or not decided.
    """
    configs = [c for c in rec.configs if not c.recommended_for]  # recommendations advise; they do not decide
    failed = [c.spec for c in configs if c.verdict == "fail"]
    regressed = [c.spec for c in configs if any(r.get("outcome") == "fail" for r in (c.regressions or []))]
    broken = [
        f"{c.spec} (custom rule {r['test']})"
        for c in configs
        for r in (c.custom_rules or [])
        if r["outcome"] == "failed"
    ]
    skipped = [f"{c.spec} ({c.skip_reason})" for c in configs if c.verdict == "skipped"]
    undecided = [c.spec for c in configs if c.verdict == "inconclusive"]
    missing = [q.spec for q in rec.spec.quant if q.spec not in {c.spec for c in configs}]
    if not any(c.measured for c in configs):
        why = "; ".join(skipped + [f"{c.spec}: {c.error}" for c in configs if c.error]) or "no configuration ran"
        return "fail", f"nothing was measured: {why}"
    if failed or regressed:
        return "fail", "failed: " + ", ".join(dict.fromkeys(failed + regressed)) + (
            f"; failed custom rules: {', '.join(broken)}" if broken else ""
        )
    short = (
        ([f"skipped: {', '.join(skipped)}"] if skipped else [])
        + ([f"inconclusive: {', '.join(undecided)}"] if undecided else [])
        + ([f"not measured: {', '.join(missing)}"] if missing else [])
    )
    if short:
        return ("fail" if rec.spec.signoff else "inconclusive"), "; ".join(short) + (
            " (strict: only a pass passes)" if rec.spec.signoff else ""
        )
    return "pass", "the configuration passed" if len(configs) == 1 else f"all {len(configs)} configurations passed"
