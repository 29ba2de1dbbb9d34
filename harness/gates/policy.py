"""Gate policy: limits per bit-width class and metric, read from TOML and validated."""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from harness.data.sets import DATA_DIR
from harness.errors import UsageError, did_you_mean
from harness.methods.base import BIT_CLASSES
from harness.metrics.catalogue import BY_NAME, GATE_METRICS

BUNDLED_POLICY = DATA_DIR / "policy.toml"
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
    limits: dict  # class -> {metric: Limit}; "all" holds the limits every class shares
    regression: dict = field(default_factory=dict)  # metric -> regression.Tolerance
    by_class: bool = False  # some limit depends on the bit class (then every configuration needs one)

    def gates_for(self, bit_class: str | None) -> dict:
        """The limits for a configuration's class (None: the class-independent limits alone)."""
        return dict(self.limits.get(bit_class, {}) if bit_class is not None else self.limits.get("all", {}))

    def check_covers(self, spec: str, bit_class: str | None) -> None:
        """A configuration without any limit could never be judged: a usage error, never a silent pass."""
        if not self.gates_for(bit_class):
            what = f"its bit class {bit_class}" if bit_class is not None else "every class"
            raise UsageError(
                f"policy {self.path} sets no limit for {spec} ({what}); add a [limits.all] table or "
                f"[limits.{bit_class or '<class>'}] with its limits"
            )


TABLES = ("limits", "regression")  # every top-level table a policy may have
LIMIT_KEYS = ("max", "min")
TOLERANCE_KEYS = ("rel", "abs")


def load_policy(path: str | Path | None = None) -> Policy:
    """Read and check a policy file. The schema is strict: an unknown table, class, metric or key is a
    UsageError (a misspelled `[limit.4]` or `[regresion]` would otherwise drop its gates silently)."""
    p = Path(path) if path else BUNDLED_POLICY
    if p.is_dir():
        raise UsageError(f"--policy {p} is a directory; give a TOML file (e.g. docs/examples/policy-strict.toml)")
    if not p.is_file():
        raise UsageError(f"policy file {p} not found; give a TOML file or leave --policy unset")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"policy file {p} is not valid TOML: {e}") from None
    for key, value in data.items():
        if key not in TABLES:
            what = f"table [{key}]" if isinstance(value, dict) else f"key '{key}'"
            raise UsageError(
                f"policy {p}: unknown {what}{did_you_mean(key, TABLES)}; valid: [limits.<class>] and [regression]"
            )
    table = data.get("limits")
    if not isinstance(table, dict) or not any(isinstance(v, dict) and v for v in table.values()):
        raise UsageError(
            f"policy file {p} has no limits: give a [limits.all] table (one standard for every bit width) or "
            f"[limits.<class>] tables for the classes {', '.join(CLASSES)}"
        )
    limits = _limits_table(p, table)
    return Policy(
        str(p),
        limits,
        _regression_table(p, data.get("regression", {})),
        by_class=any(c != "all" and m for c, m in table.items()),
    )


def _limits_table(p: Path, table: dict) -> dict:
    """[limits.<class>] metric = { max = X } or { min = X }; class "all" applies to every class."""
    limits: dict[str, dict] = {c: {} for c in ("all", *CLASSES)}
    valid = ("all",) + tuple(CLASSES)
    for cls, metrics in table.items():
        if cls not in valid:
            hint = "; metrics go inside a class table such as [limits.4]" if cls in GATE_METRICS else ""
            raise UsageError(
                f"policy {p}: unknown bit-width class [limits.{cls}]{did_you_mean(cls, valid)}; "
                f"valid: {', '.join(valid)}{hint}"
            )
        if not isinstance(metrics, dict):
            raise UsageError(
                f"policy {p}: limits.{cls} must be a table [limits.{cls}] of metric = {{ max = 1.05 }}, got {metrics!r}"
            )
        targets = ("all", *CLASSES) if cls == "all" else (cls,)
        for metric, spec in metrics.items():
            _check_metric(p, metric, f"[limits.{cls}]")
            if isinstance(spec, dict):
                _check_keys(p, spec, LIMIT_KEYS, f"limits.{cls}.{metric}", "{ max = 1.05 } or { min = 0.9 }")
            if (
                not isinstance(spec, dict)
                or len(spec) != 1
                or isinstance(next(iter(spec.values())), bool)
                or not isinstance(next(iter(spec.values())), (int, float))
            ):
                raise UsageError(
                    f"policy {p}: limit for {cls}.{metric} must look like "
                    f"{{ max = 1.05 }} or {{ min = 0.9 }}, got {spec!r}"
                )
            op, bound = next(iter(spec.items()))
            _check_limit(p, f"limits.{cls}.{metric}", metric, op, float(bound))
            for t in targets:
                limits[t][metric] = Limit(op, float(bound))
    return limits


def _check_limit(p: Path, where: str, metric: str, op: str, bound: float) -> None:
    """A limit must be finite, point the metric's way (a lower-is-better metric takes a max) and lie in its range."""
    m = BY_NAME[metric]
    if not math.isfinite(bound):
        raise UsageError(f"policy {p}: {where} = {{ {op} = {bound} }} is not a finite number")
    want = {"lower": "max", "higher": "min"}.get(m.better)
    if want and op != want:
        raise UsageError(
            f"policy {p}: {where} uses {op}, but {metric} is better when {m.better}, so its limit is a {want}: "
            f"{{ {want} = ... }}"
        )
    lo, hi = m.range
    if not lo <= bound <= hi:
        raise UsageError(f"policy {p}: {where} = {bound:g} lies outside what {metric} can be ({lo:g} to {hi:g})")


def _check_metric(p: Path, metric: str, where: str) -> None:
    if metric not in GATE_METRICS:
        raise UsageError(
            f"policy {p}: unknown metric '{metric}' in {where}{did_you_mean(metric, GATE_METRICS)}"
            f"; valid: {', '.join(GATE_METRICS)}"
        )


def _check_keys(p: Path, spec: dict, keys: tuple, where: str, form: str) -> None:
    for k in spec:
        if k not in keys:
            raise UsageError(
                f"policy {p}: unknown key '{k}' in {where}{did_you_mean(k, keys)}; it must look like {form}"
            )


def _regression_table(p: Path, table) -> dict:
    """[regression] metric = { rel = 0.05 } and/or { abs = 0.01 }: allowed worsening against an earlier run."""
    if not isinstance(table, dict):
        raise UsageError(f"policy {p}: [regression] must be a table of metric = {{ rel = 0.05 }}")
    out = {}
    for metric, spec in table.items():
        _check_metric(p, metric, "[regression]")
        if isinstance(spec, dict):
            _check_keys(p, spec, TOLERANCE_KEYS, f"regression.{metric}", "{ rel = 0.05 } and/or { abs = 0.01 }")
        ok = (
            isinstance(spec, dict)
            and spec
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in spec.values())
        )
        if not ok:
            raise UsageError(
                f"policy {p}: regression tolerance for {metric} must look like "
                f"{{ rel = 0.05 }} or {{ abs = 0.01 }} (non-negative), got {spec!r}"
            )
        out[metric] = Tolerance(rel=float(spec.get("rel", 0.0)), abs=float(spec.get("abs", 0.0)))
    return out
