"""Typed records of a run: one ConfigResult per configuration, and what results.json is built from."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import NamedTuple

from harness.system.clock import Phases


class Key(NamedTuple):
    """A participant of a measurement: a configuration, plain or with its sink prefix protected."""

    spec: str
    protected: bool = False

    def __str__(self) -> str:
        return f"{self.spec} (sink protected)" if self.protected else self.spec


_CORE = (
    "spec",
    "method",
    "bits",
    "group_size",
    "bit_class",
    "config",
    "verdict",
    "quantize_seconds",
    "metrics",
    "gates",
    "generations",
)


@dataclass
class ConfigResult:
    """Everything measured and decided about one configuration (configs[] of results.json)."""

    spec: str
    method: str
    bits: int | None
    group_size: int | None
    bit_class: str
    config: dict
    verdict: str = "fail"  # pass | fail | skipped
    quantize_seconds: float | None = None
    metrics: dict = field(default_factory=dict)
    gates: list = field(default_factory=list)
    generations: list = field(default_factory=list)
    measured: bool = False  # the corpus comparison finished: nonfinite_layer and gate_views are set
    skip_reason: str | None = None
    error: str | None = None
    info: dict | None = None
    module_types: list | None = None
    measured_as: str | None = None
    measure_seconds: float | None = None
    nonfinite_layer: int | None = None
    gate_views: dict | None = None
    regressions: list | None = None
    protected: dict | None = None  # the sink-protected variant's metrics (--protect-sink)
    protected_error: str | None = None
    evidence: dict | None = None  # per-item paired evidence: {"sequences": [...]} (prompts: see generations)
    scenarios: dict | None = None  # deployment scenarios (--scenarios): {"streaming"|"packed"|"bos": record}
    cache: dict | None = None  # reused from the results cache: {"run_id": measured in, "key": ...}
    sensitivity: dict | None = None  # --sensitivity: per-layer/module gains on the calibration split (advise.py)
    recommendation: dict | None = None  # the keep set, its spec, native config and measured verdict
    diagnosis: dict | None = None  # failure family, evidence, next step (diagnosis.py)
    recommended_for: str | None = None  # set on a recommended configuration: the spec it was recommended for
    custom_rules: list | None = None  # a team's own rules (tests using qs_result): {test, outcome, message}
    phases: dict | None = None  # seconds per phase of its measurement (system/clock.py)

    @classmethod
    def new(cls, q, bit_class: str) -> ConfigResult:
        return cls(q.spec, q.method, q.bits, q.group_size, bit_class, q.to_dict(), phases=Phases())

    def timed(self, name: str):
        """Context manager: time one phase of this configuration's measurement."""
        if not isinstance(self.phases, Phases):
            self.phases = Phases(self.phases or {})
        return self.phases.time(name)

    def skip(self, reason: str) -> None:
        self.verdict, self.skip_reason = "skipped", reason

    def fail(self, error: str) -> None:
        self.verdict, self.error = "fail", error

    def note_kv_reads(self, reads: dict) -> None:
        """Record the share of key/value reads that came back quantized in the corpus pass (kvcache.watch)."""
        if reads.get("total"):
            info = self.info if self.info is not None else {}
            info.setdefault("kv_cache", {})["corpus_quantized_read_share"] = round(
                reads["quantized"] / reads["total"], 4
            )
            self.info = info

    def gate(self, metric: str) -> dict | None:
        return next((g for g in self.gates if g["metric"] == metric), None)

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in _CORE}
        for f in fields(self):
            if f.name in _CORE or f.name == "measured":
                continue
            v = getattr(self, f.name)
            if v is not None or (f.name == "nonfinite_layer" and self.measured):
                out[f.name] = v
        return out

    @classmethod
    def from_dict(cls, d: dict) -> ConfigResult:
        names = {f.name for f in fields(cls)}
        r = cls(**{k: v for k, v in d.items() if k in names})
        r.measured = "nonfinite_layer" in d
        return r


@dataclass
class RunRecord:
    """What results.json is built from (see results.build_results)."""

    spec: object  # RunSpec
    inputs: object  # inputs.RunInputs
    run_id: str
    created: float
    configs: list  # ConfigResult, in the order of spec.quant
    baseline: dict | None
    shape: dict  # num_layers, num_heads
    n_sequences: int
    bos_effective: bool | None
    threads: int | None
    lockstep: bool | None
    phases: dict | None = None  # {"baseline": {phase: seconds}, "total": seconds}
