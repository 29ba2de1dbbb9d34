"""The Session sequences one run: inputs -> baseline -> each configuration's measurement -> results.

It only orchestrates: inputs.py checks what the user gave, baseline.py owns the baseline side,
evaluate.py quantizes, measures and gates configurations, results.py writes the run. The pytest
plugin and the plain-Python API (`harness.cli.run`) drive the same object.
"""

from __future__ import annotations

import time

from harness.config.identity import new_run_id
from harness.config.settings import profile_changes, profile_values
from harness.data.tokens import effective_bos
from harness.engine.baseline import Baseline
from harness.engine.evaluator import Evaluator
from harness.engine.inputs import RunInputs
from harness.engine.regressions import RegressionChecks
from harness.engine.resultcache import reuse, store
from harness.gates.decide import gated
from harness.gates.records import ConfigResult, RunRecord
from harness.methods import bit_class
from harness.methods.registry import backend_modules
from harness.metrics.catalogue import family
from harness.metrics.tasks import gate_names as task_gate_names
from harness.models.placement import describe
from harness.models.structure import shape_of
from harness.report.results import build_results, write_run
from harness.scenarios import baseline_block
from harness.scenarios import gates as scenario_gates
from harness.system.quiet import quiet_imports, reissue


class Session(RegressionChecks):
    def __init__(self, spec, progress=None, substitute=None, fanout=None):
        self.spec = spec
        self.progress = progress or (lambda msg: print(f"[quantsink] {msg}", flush=True))
        self.substitute = substitute
        self.fanout = fanout  # fanout(session) -> parts measured elsewhere (cluster.measure_session), or None
        self.configs: dict[str, ConfigResult] = {}
        self.created = time.time()
        self.run_id = new_run_id(self.created, spec.model, [q.spec for q in spec.quant])
        self.inputs = self.baseline = self.evaluator = None
        self.taken_over: dict = {}  # the baseline side reported by pytest-xdist workers
        self.rules: dict[str, list] = {}  # custom rules (tests using qs_result) per configuration: record_rule
        self.import_warnings: list = []  # warnings raised while importing backends (re-issued in a test)
        self.import_output = ""  # what the backends printed on import (kept out of the terminal)

    def prepare(self) -> Session:
        """Load and check every input; all usage errors surface here, before any test runs."""
        if self.inputs is None:
            self._import_backends()  # before the preflight, which builds models on the meta device
            self.inputs = RunInputs.load(self.spec)
            self.baseline = Baseline(self.spec, self.inputs, self.progress)
            self.evaluator = Evaluator(self.spec, self.inputs, self.baseline, self.progress, self.substitute)
        return self

    def _import_backends(self) -> None:
        """Import the run's quantization backends now, without their start-up noise (harness.system.quiet)."""

        # transformers imports torchao (when installed) on its first from_pretrained: import it here too
        mods = ["transformers", "transformers.modeling_utils", "torchao"] + [
            m for q in self.spec.quant for m in backend_modules(q)
        ]
        self.import_warnings, self.import_output = quiet_imports(mods)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" bars: quantsink prints its own progress

    def header(self) -> list[str]:
        """What the run is about to do, printed before anything is measured (pytest's header, python -m harness):
        the profile and what it set or the command line overrode, the model and data, the configurations and
        what they are compared with."""
        sp, inputs = self.spec, self.prepare().inputs
        defaults = profile_values(sp.profile)
        overridden = {
            k: getattr(sp, k)
            for k in defaults
            if k not in ("quant", "sink_positions", "device", "baseline_dtype") and getattr(sp, k) != defaults[k]
        }
        what = ", ".join(f"{k}={v}" for k, v in profile_changes(sp.profile).items()) or "the defaults"
        return [
            f"quantsink: profile {sp.profile} (sets {what})"
            + (f"; overridden: {', '.join(f'{k}={v}' for k, v in overridden.items())}" if overridden else ""),
            f"quantsink: model {sp.model}, device {sp.device}, {sp.n_sequences} x {sp.seq_len} tokens of "
            f"{sp.corpus}, {len(inputs.prompts.prompts)} prompts and {len(inputs.open_prompts.prompts)} open prompts "
            f"x {sp.max_new_tokens} new tokens{', signoff (strict)' if sp.signoff else ''}",
            f"quantsink: configurations {', '.join(q.spec for q in sp.quant)}; {inputs.compare_note}",
        ] + [f"quantsink: {note}" for note in inputs.notes]

    @property
    def policy(self):
        return self.prepare().inputs.policy

    def gate_metrics(self, q) -> list[str]:
        """The gates q will have (pytest's items): the policy's, a scenario's only where it runs, and with two or
        more --tasks each task's own task gates (`<metric>@<task>`)."""
        limits = scenario_gates(
            self.policy.gates_for(bit_class(q, self.spec.bit_class) if self.policy.by_class else None), self.spec
        )
        per_task = []
        if any(family(m) == "task" for m in limits):
            per_task = task_gate_names(t.name for t in self.prepare().inputs.tasks or ())
        return [m for m, _ in gated(limits, per_task)]

    def measure(self, q) -> ConfigResult:
        """Quantize, measure and gate q (once); a measurement on identical inputs comes from the results
        cache (resultcache.py). In lockstep mode the first call measures every
        configuration of the run together, so the baseline runs once per corpus batch."""
        if q.spec not in self.configs:
            self.prepare()
            if self.import_warnings:  # inside the first test item: pytest's warnings summary shows them
                reissue(self.import_warnings)
                self.import_warnings = []
            if self.fanout is not None:  # e.g. every configuration as its own Ray task (cluster.py)
                for part in self.fanout(self):
                    self.take_over({"configs": {c["spec"]: c for c in part["configs"]}, **(part["side"] or {})})

            for c in [*self.spec.quant, q]:  # first, so cache hits never load the baseline
                if c.spec not in self.configs:
                    reuse(self, c)
            if q.spec not in self.configs:
                todo = [q]
                if self.evaluator.lockstep or self.spec.reference:  # reference: one scoring pass
                    rest = [c for c in self.spec.quant if c.spec not in self.configs and c.spec != q.spec]
                    if not self.spec.reference:  # lockstep: as many as fit in memory, q among them
                        rest = rest[: self.evaluator.lockstep_width - 1]
                    order = [c.spec for c in self.spec.quant]
                    todo = sorted([*rest, q], key=lambda c: order.index(c.spec) if c.spec in order else len(order))
                measured = self.evaluator.measure_group(todo)
                self.configs.update(measured)
                store(self, todo, measured)
                self.configs.update(self.evaluator.recommended)  # --sensitivity: recommended configurations
                self.evaluator.recommended.clear()
        return self.configs[q.spec]

    def gate_result(self, q, metric: str) -> dict | None:
        return self.measure(q).gate(metric)

    # ---- pytest-xdist: workers hand their measurements to the controller ----
    def handoff(self) -> dict:
        out = {"configs": {k: c.as_dict() for k, c in self.configs.items()}}
        if any(c.verdict != "skipped" for c in self.configs.values()):
            out.update(self.baseline_side())
        return out

    def take_over(self, data: dict) -> None:
        self.configs.update({k: ConfigResult.from_dict(c) for k, c in data.get("configs", {}).items()})
        if data.get("baseline") is not None and not self.taken_over:
            self.taken_over = {k: v for k, v in data.items() if k != "configs"}

    def baseline_side(self) -> dict:
        """What results.json needs from the baseline (measured here, or reported by a worker)."""
        b = self.baseline
        if self.taken_over and not (b is not None and b.loaded):
            return self.taken_over
        if b is None or not (b.loaded or any(c.verdict != "skipped" for c in self.configs.values())):
            return {
                "baseline": None,
                "shape": {"num_layers": None, "num_heads": None},
                "n_sequences": 0,
                "threads": None,
                "lockstep": self.evaluator.lockstep_decided if self.evaluator else None,
            }

        scen = baseline_block(b)  # --scenarios: the baseline's side

        where = describe(b.model)
        if where:  # --device-map: where each layer of the baseline went
            scen["placement"] = where
        return {
            "baseline": {**b.stats, **scen},
            "shape": shape_of(b.model.config).to_dict(),
            "n_sequences": len(b.sequences),
            "bos_effective": effective_bos(b.tokenizer, self.spec.bos),
            "threads": b.threads,
            "lockstep": self.evaluator.lockstep_decided,
            "phases": dict(b.phases),
        }

    # ---- outputs ----
    def run_all(self) -> dict:
        self.prepare()
        for q in self.spec.quant:
            self.measure(q)
            self.check_regressions(q)
        return self.results()

    def record_rule(self, spec: str, test: str, outcome: str, message: str = "") -> None:
        """A team's own rule (a test using the qs_result fixture) about configuration `spec`: a failed rule fails
        the configuration in results.json and every report, naming the test."""
        self.rules.setdefault(spec, []).append({"test": test, "outcome": outcome, "message": message})

    def _apply_rules(self) -> None:
        for spec, rules in self.rules.items():
            c = self.configs.get(spec)
            if c is None:
                continue
            c.custom_rules = list(rules)
            if any(r["outcome"] == "failed" for r in rules) and c.verdict != "skipped":
                c.verdict = "fail"

    def record(self) -> RunRecord:
        self._apply_rules()
        side = self.baseline_side()
        configs = [
            c
            for q in self.spec.quant
            if q.spec in self.configs
            for c in [self.configs[q.spec]] + [r for r in self.configs.values() if r.recommended_for == q.spec]
        ]  # each recommendation after its parent
        return RunRecord(
            self.spec,
            self.prepare().inputs,
            self.run_id,
            self.created,
            configs,
            side["baseline"],
            side["shape"],
            side["n_sequences"],
            side.get("bos_effective") if side["n_sequences"] else None,
            side["threads"],
            side["lockstep"],
            {"baseline": side.get("phases") or {}, "total": round(time.time() - self.created, 3)},
        )

    def results(self) -> dict:
        return build_results(self.record())

    def write(self):
        return write_run(self.results(), self.spec.report_dir, self.spec.mlflow)
