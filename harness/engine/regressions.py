"""The Session's regression checks against an earlier run (--compare) and drift from the pinned anchor.

A mixin of engine.session.Session (it reads self.prepare(), self.policy and self.measure()).
"""

from __future__ import annotations

from harness.gates.decide import config_verdict, gated
from harness.gates.regression import check_against
from harness.metrics.catalogue import metric_for


class RegressionChecks:
    """Each configuration's tolerance checks: one definition (gates/regression.check_against) for both."""

    def check_regressions(self, q) -> None:
        """Every regression and drift check of q (pytest runs them as items; the other entry points here)."""
        for against in self.AGAINST:
            for m in self.regression_metrics(q, against):
                self.regression_result(q, m, against)

    AGAINST = ("earlier", "anchor")  # the run --compare chose; the newest comparable pin (slow drift)

    def _other_run(self, against: str) -> dict | None:
        inputs = self.prepare().inputs
        return inputs.earlier if against == "earlier" else inputs.anchor

    def _earlier_config(self, q, against: str = "earlier") -> dict | None:
        run = self._other_run(against)
        return None if run is None else next((c for c in run.get("configs", []) if c.get("spec") == q.spec), None)

    def regression_metrics(self, q, against: str = "earlier") -> list[str]:
        """Metrics with a regression tolerance that the earlier run (or the pinned anchor) measured for q, each with
        its per-task views (`<metric>@<task>`, under the metric's tolerance) right after it."""
        c = self._earlier_config(q, against)
        if c is None or c.get("verdict") == "skipped":
            return []
        views = c.get("gate_views") or {}
        return [m for m, _ in gated({m: t for m, t in self.policy.regression.items() if m in views}, views)]

    def regression_result(self, q, metric: str, against: str = "earlier") -> dict:
        """One tolerance against the earlier run, or (against="anchor") the cumulative tolerance from the pinned
        anchor: a run that each night got a little worse than the night before fails once it drifted too far."""
        r = self.measure(q)
        r.regressions = r.regressions or []
        done = next((x for x in r.regressions if x["metric"] == metric and x.get("against") == against), None)
        if done is not None:
            return done
        run_id = self._other_run(against).get("run_id", "earlier run")
        res = check_against(
            q.spec,
            metric,
            self.policy.regression[metric_for(metric).name],
            self._earlier_config(q, against),
            r.as_dict(),
            run_id if against == "earlier" else f"pinned anchor {run_id}",
        )
        res["against"] = against
        if (r.cache or {}).get("run_id") == self._other_run(against).get("run_id"):
            res["detail"] += "; today's measurement was reused from that very run (results cache): nothing new"
        r.regressions.append(res)
        if r.measured:  # its verdict includes its checks (a failed or undecided check keeps it from a pass)
            r.verdict = config_verdict(r.gates, r.regressions) if r.verdict != "fail" else "fail"
        return res
