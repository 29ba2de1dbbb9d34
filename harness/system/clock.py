"""Where the time goes: seconds per named phase of a run (loading, quantizing, the corpus pass, each generation set,
probes, scenarios, reports), summed when a phase runs more than once. results.json keeps them."""

from __future__ import annotations

import contextlib
import time


class Phases(dict):
    """{phase name: seconds}."""

    @contextlib.contextmanager
    def time(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def add(self, name: str, seconds: float) -> None:
        self[name] = round(self.get(name, 0.0) + seconds, 3)


def slowest(phases_by_owner: dict[str, dict], top: int = 4) -> list[tuple[str, str, float]]:
    """The `top` longest (owner, phase, seconds) over {owner: {phase: seconds}} (owner: "baseline", a spec, "run")."""
    rows = [
        (owner, name, s) for owner, ph in phases_by_owner.items() for name, s in (ph or {}).items() if name != "total"
    ]
    return sorted(rows, key=lambda r: -r[2])[:top]
