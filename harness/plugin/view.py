"""Typed, read-only access to one configuration's result, for teams' own rules in their own tests.

def test_sink_survives(qs_result):              # parametrized over the run's configurations
    assert qs_result["sink_hidden_cos"].min() > 0.9   # [layer] array
    assert qs_result["attn_js"].shape == (qs_result.num_layers, qs_result.num_heads)
    assert qs_result.gate("ppl_ratio")["passed"]
"""

from __future__ import annotations

import numpy as np

from harness.errors import did_you_mean
from harness.metrics.catalogue import metric_for


class ResultView:
    """metrics as numpy arrays ([layer] / [layer, head]) or floats, plus gates and verdict."""

    def __init__(self, result):
        self._r = result

    @property
    def spec(self) -> str:
        return self._r.spec

    @property
    def verdict(self) -> str:
        return self._r.verdict

    @property
    def bit_class(self) -> str:
        return self._r.bit_class

    @property
    def gates(self) -> list[dict]:
        return list(self._r.gates)

    @property
    def generations(self) -> list[dict]:
        return list(self._r.generations)

    @property
    def num_layers(self) -> int | None:
        return len(self._r.metrics.get("sink_mass") or []) or None

    @property
    def num_heads(self) -> int | None:
        m = self._r.metrics.get("sink_mass") or []
        return len(m[0]) if m else None

    def gate(self, metric: str) -> dict | None:
        return self._r.gate(metric)

    def view(self, metric: str) -> dict | None:
        """The gate view of a metric: {value, ci_low, ci_high, where}."""
        return (self._r.gate_views or {}).get(metric)

    def __contains__(self, metric: str) -> bool:
        return metric in self._r.metrics or metric in (self._r.gate_views or {})

    def __getitem__(self, metric: str):
        """A metric's value: numpy array for per-layer/per-head ones, float for scalars, dict for records."""
        if metric in self._r.metrics:
            v = self._r.metrics[metric]
        elif metric in (self._r.gate_views or {}):
            v = self._r.gate_views[metric]["value"]
        else:
            known = sorted(set(self._r.metrics) | set(self._r.gate_views or {}))

            raise KeyError(f"{self.spec} has no metric '{metric}'{did_you_mean(metric, known)}")
        spec = metric_for(metric)
        if spec is not None and spec.shape in ("layer", "layer_head"):
            return np.array(v, dtype=float)  # None (a non-finite value) becomes NaN
        return float("nan") if v is None else v

    def __repr__(self) -> str:
        return f"ResultView({self.spec}: {self.verdict})"
