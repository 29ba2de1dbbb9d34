"""The gate view: the scalar a gate judges, with its interval and the evidence count behind it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GateView:
    """The scalar a gate judges, its bootstrap interval, where it is worst (if per layer/head),
    how many items it rests on and, when its premise is absent in the baseline, why."""

    value: float
    ci: tuple[float, float] | None = None
    where: str = ""
    n: int | None = None
    absent: str | None = None

    def as_dict(self) -> dict:
        return {
            "value": self.value,
            "ci_low": self.ci[0] if self.ci else None,
            "ci_high": self.ci[1] if self.ci else None,
            "where": self.where,
            "n": self.n,
            **({"absent": self.absent} if self.absent else {}),
        }

    @classmethod
    def from_dict(cls, d: dict) -> GateView:
        ci = (d["ci_low"], d["ci_high"]) if d.get("ci_low") is not None else None
        return cls(d.get("value"), ci, d.get("where") or "", d.get("n"), d.get("absent"))
