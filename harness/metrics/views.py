"""The gate view: the scalar a gate judges, with its interval and the evidence behind it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GateView:
    """The scalar a gate judges, its 95% interval, where it is worst (a cell of a per-layer/head metric), how many
    items (n) and clusters it rests on, how the interval was made (kind: t, cells, break, net, share, none), the
    design that sets its size (option, reach: for "what would decide it"), each cluster's own value when clusters
    are few (the exact sign test over them) and, when its premise is absent in the baseline, why."""

    value: float
    ci: tuple[float, float] | None = None
    where: str = ""
    n: int | None = None
    absent: str | None = None
    clusters: int | None = None
    unit: str = ""
    kind: str = ""
    design: dict | None = None
    cluster_values: tuple | None = None
    counts: tuple | None = None  # rates: (events, eligible), (worse, better, n) or (successes, n)

    def as_dict(self) -> dict:
        extra = {
            k: getattr(self, k)
            for k in ("absent", "clusters", "unit", "kind", "design", "cluster_values", "counts")
            if getattr(self, k) not in (None, "")
        }
        for k in ("cluster_values", "counts"):
            if k in extra:
                extra[k] = list(extra[k])
        return {
            "value": self.value,
            "ci_low": self.ci[0] if self.ci else None,
            "ci_high": self.ci[1] if self.ci else None,
            "where": self.where,
            "n": self.n,
            **extra,
        }

    @classmethod
    def from_dict(cls, d: dict) -> GateView:
        ci = (d["ci_low"], d["ci_high"]) if d.get("ci_low") is not None else None
        cv, counts = d.get("cluster_values"), d.get("counts")
        return cls(
            d.get("value"),
            ci,
            d.get("where") or "",
            d.get("n"),
            d.get("absent"),
            d.get("clusters"),
            d.get("unit") or "",
            d.get("kind") or "",
            d.get("design"),
            tuple(cv) if cv is not None else None,
            tuple(counts) if counts is not None else None,
        )
