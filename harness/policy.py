"""Gate policy: limits per bit-width class and metric, read from TOML and validated."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .catalogue import GATE_METRICS
from .errors import UsageError, did_you_mean
from .methods.base import BIT_CLASSES

BUNDLED_POLICY = Path(__file__).parent / "data" / "policy.toml"
CLASSES = BIT_CLASSES


@dataclass(frozen=True)
class Limit:
    op: str  # "max" (value <= bound) or "min" (value >= bound)
    bound: float

    def __str__(self) -> str:
        return f"{'<=' if self.op == 'max' else '>='} {self.bound:g}"

    def holds(self, value: float) -> bool:
        return value <= self.bound if self.op == "max" else value >= self.bound


@dataclass(frozen=True)
class Tolerance:
    """Allowed worsening against an earlier run: `rel` (share of the earlier value) and/or `abs`; the larger applies."""

    rel: float = 0.0
    abs: float = 0.0

    def allowed(self, earlier: float) -> float:
        return max(self.abs, self.rel * abs(earlier))

    def __str__(self) -> str:
        parts = ([f"{self.rel:g} relative"] if self.rel else []) + ([f"{self.abs:g} absolute"] if self.abs else [])
        return " or ".join(parts) or "0"


@dataclass(frozen=True)
class Policy:
    path: str
    limits: dict  # class -> {metric: Limit}
    regression: dict = field(default_factory=dict)  # metric -> regression.Tolerance

    def gates_for(self, bit_class: str) -> dict:
        return dict(self.limits.get(bit_class, {}))


def load_policy(path: str | Path | None = None) -> Policy:
    p = Path(path) if path else BUNDLED_POLICY
    if not p.is_file():
        raise UsageError(f"policy file {p} not found; give a TOML file or leave --policy unset")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"policy file {p} is not valid TOML: {e}") from None
    limits: dict[str, dict] = {c: {} for c in CLASSES}
    table = data.get("limits")
    if not isinstance(table, dict):
        raise UsageError(f"policy file {p} needs a [limits.<class>] table per bit-width class {CLASSES}")
    for cls, metrics in table.items():
        targets = CLASSES if cls == "all" else (cls,)
        if cls != "all" and cls not in CLASSES:
            raise UsageError(f"policy {p}: unknown bit-width class '{cls}'; valid: all, {', '.join(CLASSES)}")
        for metric, spec in metrics.items():
            if metric not in GATE_METRICS:
                raise UsageError(f"policy {p}: unknown metric '{metric}'{did_you_mean(metric, GATE_METRICS)}"
                                 f"; valid: {', '.join(GATE_METRICS)}")
            if (not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in ("max", "min")
                    or isinstance(next(iter(spec.values())), bool)
                    or not isinstance(next(iter(spec.values())), (int, float))):
                raise UsageError(f"policy {p}: limit for {cls}.{metric} must look like "
                                 f"{{ max = 1.05 }} or {{ min = 0.9 }}, got {spec!r}")
            op, bound = next(iter(spec.items()))
            for t in targets:
                limits[t][metric] = Limit(op, float(bound))
    return Policy(str(p), limits, _regression_table(p, data.get("regression", {})))


def _regression_table(p: Path, table) -> dict:
    """[regression] metric = { rel = 0.05 } and/or { abs = 0.01 }: allowed worsening against an earlier run."""
    if not isinstance(table, dict):
        raise UsageError(f"policy {p}: [regression] must be a table of metric = {{ rel = 0.05 }}")
    out = {}
    for metric, spec in table.items():
        if metric not in GATE_METRICS:
            raise UsageError(f"policy {p}: unknown metric '{metric}' in [regression]"
                             f"{did_you_mean(metric, GATE_METRICS)}; valid: {', '.join(GATE_METRICS)}")
        ok = (isinstance(spec, dict) and spec and set(spec) <= {"rel", "abs"}
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in spec.values()))
        if not ok:
            raise UsageError(f"policy {p}: regression tolerance for {metric} must look like "
                             f"{{ rel = 0.05 }} or {{ abs = 0.01 }} (non-negative), got {spec!r}")
        out[metric] = Tolerance(rel=float(spec.get("rel", 0.0)), abs=float(spec.get("abs", 0.0)))
    return out
