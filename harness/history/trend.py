"""Runs over time: every run of a report directory, each gated metric as a series, steps and drift.

A series is one configuration's gated metric over the runs of the index (oldest first): value, interval, limit and
outcome, the pinned runs, and a break wherever a run stops being comparable with the run before it (what differs,
from config/identity's comparability). A step is a run whose change from the comparable run before it goes beyond
the policy's regression tolerance, and drift is the change of a run from the pinned anchor: both are
gates/regression.check_against, the check a run makes against --compare and its anchor, on the paired per-item
evidence the runs keep. No torch here: history reads results.json files only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from harness.config.identity import comparable_identity, differences, short
from harness.errors import UsageError
from harness.gates.policy import load_policy
from harness.gates.regression import check_against
from harness.history.runs import PINS, read_index, run_path
from harness.metrics.catalogue import metric_for
from harness.system.files import read_lines


@dataclass
class Run:
    """One run of the index: its position (1 = oldest), index line and results.json (None when unreadable)."""

    n: int
    row: dict
    results: dict | None
    pinned: bool = False
    changed: list = field(default_factory=list)  # (key, before, now) against the run before it: a break
    differs: list = field(default_factory=list)  # (key, that run, newest) against the newest run of its model

    @property
    def run_id(self) -> str:
        return self.row.get("run_id", "?")

    @property
    def label(self) -> str:
        """How pages and the terminal name a run: its position in the index and its id."""
        return f"#{self.n} {self.run_id}"

    def config(self, spec: str) -> dict | None:
        return next((c for c in (self.results or {}).get("configs", []) if c.get("spec") == spec), None)


def _load(report_dir: Path, run_id: str) -> dict | None:
    """A run's results.json beside the index (a report directory copied elsewhere still reads), or None."""
    try:
        data = json.loads(run_path(report_dir, run_id).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, UsageError):
        return None
    return data if isinstance(data, dict) and str(data.get("schema", "")).startswith("quantsink.results/") else None


def what_differs(diffs: list) -> str:
    """'seq_len 32 -> 48, corpus sha256 1d7778391c1d -> 0b0c...' from differences()."""
    return ", ".join(f"{k} {short(a)} -> {short(b)}" for k, a, b in diffs)


class History:
    """Every run of REPORT_DIR (optionally of one model), the pins, and the tolerances of the newest run's policy."""

    def __init__(self, report_dir: str | Path, model: str | None = None, last: int | None = None):
        """`last`: only the newest `last` runs and the pinned ones are read (history.html after every run stays
        quick over years of nightly runs); positions (#N) stay those of the whole index."""
        self.report_dir = Path(report_dir)
        if not (self.report_dir / "index.jsonl").is_file():
            raise UsageError(
                f"history: {self.report_dir} holds no runs (no index.jsonl); give the --report-dir of a run"
            )
        pins = [p.get("run_id") for p in read_lines(self.report_dir / PINS)]
        rows = [
            r for r in read_index(self.report_dir) if r.get("run_id") and (model is None or r.get("model") == model)
        ]
        first = 0 if last is None else max(0, len(rows) - last)
        self.runs = [
            Run(i + 1, r, _load(self.report_dir, r["run_id"]), r["run_id"] in pins)
            for i, r in enumerate(rows)
            if i >= first or r["run_id"] in pins
        ]
        self.left_out = sum(1 for i, r in enumerate(rows) if i < first and r["run_id"] not in pins)
        self.notes = [
            f"run {r.label} is unreadable (results.json missing or damaged): left out"
            for r in self.runs
            if not r.results
        ]
        self.pins = [r for rid in pins for r in self.runs if r.run_id == rid and r.results]  # pin order, oldest first
        readable = [r for r in self.runs if r.results]
        ident = {r.run_id: comparable_identity(r.results) for r in readable}
        newest: dict = {}
        for before, r in zip([None, *readable], readable):
            if before is not None:
                r.changed = differences(ident[r.run_id], ident[before.run_id])
            newest[r.row.get("model")] = r
        for r in readable:
            r.differs = differences(ident[newest[r.row.get("model")].run_id], ident[r.run_id])
        self.readable, self.ident = readable, ident
        self.policy = self._policy()
        self._series: dict = {}

    def _policy(self):
        """The newest run's policy (its regression tolerances decide steps and drift); the bundled one when that file
        is gone."""
        path = ((self.readable[-1].results.get("settings") or {}).get("policy")) if self.readable else None
        try:
            return load_policy(path)
        except UsageError as e:
            self.notes.append(f"{e}: steps and drift use the bundled policy's tolerances")
            return load_policy(None)

    # ---- what the page and the terminal show ----
    def specs(self) -> list[str]:
        """Configurations in the order they first appear."""
        out: list[str] = []
        for r in self.readable:
            out += [c["spec"] for c in r.results.get("configs", []) if c.get("spec") and c["spec"] not in out]
        return out

    def gated(self, spec: str) -> list[str]:
        """The metrics any run gated for `spec`, in the order of the newest run that gated them."""
        out: list[str] = []
        for r in reversed(self.readable):
            out += [g["metric"] for g in (r.config(spec) or {}).get("gates") or [] if g["metric"] not in out]
        return out

    def anchor(self) -> Run | None:
        """The pinned anchor: the newest pin comparable with the newest run (as --compare pinned would choose)."""
        if not self.readable:
            return None
        now = self.ident[self.readable[-1].run_id]
        return next((p for p in reversed(self.pins) if not differences(now, self.ident[p.run_id])), None)

    def series(self, spec: str, metric: str) -> list[dict]:
        """One point per readable run that measured `spec`: value, interval, limit, outcome, pin, break, step, drift."""
        if (spec, metric) not in self._series:
            self._series[spec, metric] = self._build_series(spec, metric)
        return self._series[spec, metric]

    def _build_series(self, spec: str, metric: str) -> list[dict]:
        m = metric_for(metric)  # one task's own gate `<metric>@<task>` takes its metric's tolerance
        tol = self.policy.regression.get(m.name) if m is not None else None
        anchor, out, before = self.anchor(), [], None
        for r in self.readable:
            cfg = r.config(spec)
            if cfg is None or cfg.get("verdict") == "skipped":
                continue
            gate = next((g for g in cfg.get("gates") or [] if g.get("metric") == metric), None)
            view = (cfg.get("gate_views") or {}).get(metric) or {}
            src = gate or view
            if gate is None and not view:
                continue
            brk = differences(self.ident[r.run_id], self.ident[before[0].run_id]) if before else []
            point = {
                "run": r,
                "value": src.get("value"),
                "ci_low": src.get("ci_low"),
                "ci_high": src.get("ci_high"),
                "limit": (gate or {}).get("limit"),
                "op": (gate or {}).get("op"),
                "outcome": (gate or {}).get("outcome")
                or ("pass" if (gate or {}).get("passed") else "fail" if gate else None),
                "break": brk,
                "step": None,
                "drift": None,
            }
            if tol is not None and before is not None and not brk:
                point["step"] = step_check(spec, metric, tol, before, (r, cfg))
            if (
                tol is not None
                and anchor is not None
                and r.n > anchor.n
                and not differences(self.ident[r.run_id], self.ident[anchor.run_id])
            ):
                a_cfg = anchor.config(spec)
                if a_cfg is not None and a_cfg.get("verdict") != "skipped":
                    point["drift"] = check_against(spec, metric, tol, a_cfg, cfg, f"pinned anchor {anchor.label}")
            out.append(point)
            before = (r, cfg)
        return out

    def steps(self) -> list[tuple[str, str, dict]]:
        """(spec, metric, point) of every run whose change from the run before it went beyond the tolerance."""
        return [
            (spec, metric, p)
            for spec in self.specs()
            for metric in self.gated(spec)
            if getattr(metric_for(metric), "name", None) in self.policy.regression
            for p in self.series(spec, metric)
            if p["step"] and p["step"]["kind"] != "none"
        ]


def step_check(spec: str, metric: str, tol, before: tuple, now: tuple) -> dict:
    """The check of a run against the comparable run before it, with `kind`: 'worse' (beyond the tolerance: the
    regression check fails), 'better' (the paired change's whole interval improves by more than the tolerance) or
    'none'."""
    (b_run, b_cfg), (_, cfg) = before, now
    res = check_against(spec, metric, tol, b_cfg, cfg, b_run.label)
    ci = (res.get("paired") or {}).get("ci")
    earlier = res.get("earlier")
    better = ci is not None and earlier is not None and ci[1] < -tol.allowed(earlier)
    res["kind"] = "worse" if res["outcome"] == "fail" else "better" if better else "none"
    return res


def step_line(spec: str, metric: str, point: dict) -> str:
    """'rtn-w8 ppl_ratio: step at run #7 <id> (worse beyond tolerance 0.02 relative; paired change +0.31 ...)'."""
    s = point["step"]
    what = "worse" if s["kind"] == "worse" else "better"
    paired = (s.get("paired") or {}).get("detail") or f"change {s['worse_by']:+.4g} (worse +), no per-item evidence"
    return (
        f"{spec} {metric}: step at run {point['run'].label} ({what} than {s['earlier_run']} beyond the tolerance "
        f"{s['tolerance']}; {paired})"
    )


def drift_line(spec: str, metric: str, point: dict) -> str:
    """The newest run's drift from the pinned anchor, in one line."""
    d = point["drift"]
    paired = (d.get("paired") or {}).get("detail") or (
        f"change {d['worse_by']:+.4g} (worse +), no per-item evidence" if d.get("worse_by") is not None else "no value"
    )
    return f"{spec} {metric}: drift {d['outcome']} from {d['earlier_run']} (tolerance {d['tolerance']}; {paired})"
