"""Quantize and measure configurations against the baseline, then gate them: one ConfigResult each.

In lockstep mode a group of configurations shares one corpus pass: the baseline's forward runs
once per batch and every quantized model compares with it layer by layer (see lockstep.py).
"""

from __future__ import annotations

import os
import time
from functools import cached_property

from harness.advice import advise
from harness.engine import continuations
from harness.engine.refmode import measure_group
from harness.engine.tasks import measure as measure_tasks
from harness.errors import guarded, one_line
from harness.gates.decide import config_verdict, evaluate_gate, gated
from harness.gates.records import ConfigResult, Key
from harness.measure.kvcache import KVSpec
from harness.methods import bit_class
from harness.methods import quantize as quantize_config
from harness.methods.kv import kv_part
from harness.metrics.catalogue import PROTECTED
from harness.metrics.evidence import (
    corpus_metrics,
    generation_metrics,
    sequence_items,
    sink_recovery,
)
from harness.models.placement import place_quantized
from harness.scenarios import gates as scenario_gates
from harness.scenarios import selected
from harness.scenarios.runner import run_group
from harness.system.memory import release
from harness.system.progress import heartbeat


class Evaluator:
    def __init__(self, spec, inputs, baseline, progress, substitute=None):
        self.spec, self.inputs, self.base, self.progress = spec, inputs, baseline, progress
        # Test hook: substitute(q) may return another QuantConfig to measure under q's name
        # (recorded as `measured_as`); see the pytest hook pytest_quantsink_measure_as.
        self.substitute = substitute or (lambda q: None)
        self.recommended: dict[str, ConfigResult] = {}  # recommended configurations measured (advise.py)
        self.reference = None  # reference mode: the stored baseline reference, once found or built

    @cached_property
    def lockstep(self) -> bool:
        """Hold every quantized model at once? 'auto': when they fit comfortably in memory."""
        if self.spec.reference:  # one quantized model at a time (refmode.py)
            return False
        mode = self.spec.lockstep
        if mode in ("on", "off"):
            return mode == "on"
        if len(self.spec.quant) < 2 or self.spec.unavailable:
            return False
        return self.lockstep_width >= 2

    @cached_property
    def lockstep_width(self) -> int:
        """Configurations one lockstep group holds: with --lockstep on, all of them; else as many as fit in 40% of
        free memory, each counted as its weights plus its participants' working memory (a 16-configuration zoo
        run on the default model held them all at once and was killed for memory at 24 GB)."""
        n = len(self.spec.quant)
        if self.spec.lockstep == "on":
            return max(n, 1)
        per = config_bytes(self.base.model, self.spec)
        return max(1, min(n, int(0.4 * _free_memory(self.spec.device) // per)))

    @property
    def lockstep_decided(self) -> bool | None:
        """lockstep if it was decided already (deciding it may load the baseline), else None."""
        return self.__dict__.get("lockstep")

    def new_result(self, q) -> ConfigResult:
        cls = bit_class(q, self.spec.bit_class) if self.inputs.policy.by_class else (q.bit_class or self.spec.bit_class)
        return ConfigResult.new(q, cls)

    def measure_group(self, qs: list) -> dict[str, ConfigResult]:
        """Measure qs together (one corpus pass); a failure ends its configuration, never the group."""

        if self.spec.reference:
            return measure_group(self, qs)
        results = {q.spec: self.new_result(q) for q in qs}
        if self.spec.unavailable:
            for r in results.values():
                r.skip(self.spec.unavailable)
            return results
        self.base.model  # noqa: B018 (loaded before any quantizer runs: threads set, a KV method shares it)
        models = {}
        for q in qs:
            m = guarded(results[q.spec], self.quantize, q, results[q.spec])
            if m is not None:
                models[q.spec] = m
        parts = {}
        for q in qs:
            if q.spec in models:
                parts[Key(q.spec)] = self.participant(q, models[q.spec])
                if self.spec.protect_sink:
                    parts[Key(q.spec, True)] = self.participant(q, models[q.spec], protect=True)
        pairs, corpus_secs = _corpus_pass(self.base, self.spec, parts, results, models, self.progress)
        with self.base.phases.time("scenarios (every configuration)"):
            scen = self._scenarios(
                {k.spec: p for k, p in parts.items() if not k.protected and k.spec in models and k in pairs}
            )
        for q in qs:
            if q.spec in models and Key(q.spec) in pairs:
                r = results[q.spec]
                guarded(
                    r,
                    self.finish,
                    q,
                    r,
                    models[q.spec],
                    pairs[Key(q.spec)],
                    corpus_secs,
                    pairs.get(Key(q.spec, True)),
                    scen.get(q.spec),
                )
                if r.measured:  # size; with --sensitivity: search, recommendation (measured), diagnosis
                    advise.after_gates(self, q, r, models[q.spec])
                del models[q.spec]  # frees the model before the next one generates
        models.clear()
        parts.clear()
        release()
        return results

    def _scenarios(self, parts: dict) -> dict:
        """The deployment scenarios (--scenarios) of the measured configurations, together:
        {spec: (record, gate views) or the exception that ended them}."""

        if not selected(self.spec) or not parts:
            return {}

        try:
            return run_group(self.base, parts)
        except Exception as e:  # e.g. the baseline's own pass failed: every configuration of the group ends
            return dict.fromkeys(parts, e)

    def participant(self, q, model, protect: bool = False):
        from harness.measure.passes import Participant

        kv = kv_part(q)
        spec = KVSpec(kv.backend, kv.nbits, kv.group, kv.residual) if kv is not None else None
        return Participant(model, spec, self.base.sink_source if protect else None)

    def quantize(self, q, result: ConfigResult):
        ctx = self.base.quant_context(q)
        target = self.substitute(q) or q
        if target.spec != q.spec:
            result.measured_as = target.spec
            self.progress(f"{q.spec}: measuring {target.spec} instead (pytest_quantsink_measure_as hook)")
        self.progress(f"{q.spec}: quantizing")
        with heartbeat(self.progress, f"{q.spec}: quantizing"), result.timed("quantize"):
            model, secs = quantize_config(target, ctx)
        result.quantize_seconds = round(secs, 3)
        result.info = ctx.info
        result.module_types = ctx.info.pop("quantized_module_types", None) or sorted(
            {type(m).__name__ for m in model.modules()}
        )

        return place_quantized(self.spec, q.spec, model, result, self.base.holds(model), self.progress)

    def finish(self, q, r: ConfigResult, model, ps, corpus_secs: float, protected_ps=None, scen=None) -> None:
        """Metrics, generations and gates of one configuration from its corpus comparison."""
        self.conclude(q, r, self.measure_rest(q, r, model, ps, corpus_secs, protected_ps, scen))

    def measure_rest(self, q, r: ConfigResult, model, ps, corpus_secs: float, protected_ps=None, scen=None) -> dict:
        """Everything after the corpus pass that needs the quantized model; returns what conclude needs."""

        continuations.baseline_first(self.base)
        t0 = time.perf_counter()
        s, tok = self.spec, self.base.tokenizer
        part = self.participant(q, model)
        met, views = corpus_metrics(ps, tok, s.sink_positions, self.base.sequence_docs, self.base.designs)
        gens = continuations.all_records(self.base, part, q.spec, r.timed)
        answers = continuations.answer_evidence(self.base, part, r.timed, q.spec)
        task_m, task_v, task_rows = measure_tasks(self.base, part, r.timed)  # --tasks (engine/tasks.py)
        for m, v in (generation_metrics(gens, self.base.designs), answers, (task_m, task_v)):
            met.update(m)
            views.update(v)
        raw = continuations.behaviour_raw(self.base, q.spec, part, r.timed)
        if isinstance(scen, BaseException):
            raise scen
        if scen is not None:
            r.scenarios = scen[0]
            views.update(scen[1])
        if protected_ps is not None:
            pmet, _ = corpus_metrics(protected_ps, tok, s.sink_positions, self.base.sequence_docs)
            with r.timed("sink-protected variant"):
                pgens = continuations.all_records(
                    self.base, self.participant(q, model, protect=True), str(Key(q.spec, True))
                )
            pg, _ = generation_metrics(pgens)
            r.protected = {k: v for k, v in {**pmet, **pg}.items() if k in PROTECTED}
            met["sink_recovery"] = sink_recovery(met, r.protected)
        elif r.protected_error:
            met["sink_recovery"] = {"error": r.protected_error}
        return {
            "met": met,
            "views": views,
            "gens": gens,
            "raw": raw,
            "ps": ps,
            "tasks": task_rows,
            "secs": corpus_secs + time.perf_counter() - t0,
        }

    def conclude(self, q, r: ConfigResult, st: dict) -> None:
        """Score the continuations under the baseline (gen_ppl), then metrics and gates."""

        t0 = time.perf_counter()
        s, ps, met, views, gens = self.spec, st["ps"], st["met"], st["views"], st["gens"]
        m, v = continuations.behaviour_done(self.base, gens, st["raw"], r.timed)
        met.update(m)
        views.update(v)
        for g in gens:
            g.pop("quantized_ids", None)
        r.measure_seconds = round(st["secs"] + time.perf_counter() - t0, 3)
        r.nonfinite_layer = ps.quant.nonfinite_layer
        r.measured = True
        note = (
            f"NaN/Inf first appeared in the output of decoder layer {ps.quant.nonfinite_layer}"
            if ps.quant.nonfinite_layer is not None
            else ""
        )
        r.metrics, r.generations = met, gens
        r.evidence = {"sequences": sequence_items(ps, self.base.sequence_docs)}
        if st.get("tasks"):  # --tasks: the paired task samples (engine/tasks.py)
            r.evidence["tasks"] = st["tasks"]
        r.gate_views = {m: v.as_dict() for m, v in views.items()}
        limits = scenario_gates(self.inputs.policy.gates_for(r.bit_class if self.inputs.policy.by_class else None), s)
        r.gates = [evaluate_gate(q.spec, m, lim, views[m], note) for m, lim in gated(limits, views)]
        r.verdict = config_verdict(r.gates)


def _param_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def config_bytes(model, spec) -> int:
    """Upper bound of one configuration's memory in a lockstep group: a copy of the baseline's weights (quantized
    models are smaller) and, per participant (two with --protect-sink), a corpus batch's full-vocabulary logits,
    log-probabilities and probabilities in float32 (the largest tensors a participant holds while comparing)."""
    vocab = int(getattr(model.config, "vocab_size", 0) or 0)
    working = 3 * spec.batch_size * spec.seq_len * vocab * 4
    return _param_bytes(model) + (2 if spec.protect_sink else 1) * working


def _free_memory(device: str) -> int:
    """Bytes free on the device (CUDA: mem_get_info; CPU: MemAvailable)."""
    if device.startswith("cuda"):
        import torch

        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def _corpus_pass(base, spec, parts: dict, results: dict, models: dict, progress) -> tuple[dict, float]:
    """The corpus pass of a group in lockstep: ({Key: PairSummary}, seconds per configuration). A participant that
    fails ends its configuration (results[spec].fail, its model dropped from `models`), never the group."""
    from harness.measure.passes import run_multi

    t0 = time.perf_counter()

    def failed(key: Key, e):
        if key.protected:
            results[key.spec].protected_error = one_line(e)
            return
        results[key.spec].fail(one_line(e))
        models.pop(key.spec, None)

    pairs = (
        run_multi(base.model, parts, base.batches, spec.sink_positions, progress=progress, on_error=failed)
        if (parts)
        else {}
    )
    elapsed = time.perf_counter() - t0
    corpus_secs = elapsed / max(1, len(models))
    base.phases.add(
        f"corpus pass ({len(parts)} participants in lockstep)" if len(parts) > 1 else "corpus pass", elapsed
    )
    for key, part in parts.items():
        if not key.protected and key.spec in models:
            results[key.spec].phases.add("corpus pass (its share)", corpus_secs)
            results[key.spec].note_kv_reads(part.reads)
    if pairs and base.summary is None:
        # The baseline's statistics come from the same forward passes the comparison used
        # (identical for every configuration): no separate baseline pass.
        base.summary = next(iter(pairs.values())).base
    return pairs, corpus_secs
