"""Reference mode (--reference): configurations measured one at a time against the stored baseline reference.

Only one quantized model is in memory while a configuration is measured: the baseline's side comes
from reference.py. What only the baseline model can do (scoring each configuration's greedy
continuations for gen_ppl_ratio, and the size figures read from its modules) runs once, after the
last configuration, with every quantized model released. Lockstep (evaluator.py) stays the fast
single-process path; tests/e2e/test_reference_mode.py shows the two agree.
"""

from __future__ import annotations

import time

from harness.advice import advise
from harness.config.identity import digest, reference_identity
from harness.errors import guarded, one_line
from harness.gates.records import ConfigResult

# Metrics reference mode computes exactly as lockstep does (the tests check these on tiny and real models).
EXACT_METRICS = (
    "loss",
    "loss_baseline",
    "ppl_ratio",
    "top1_agreement",
    "sink_mass",
    "sink_rate",
    "sink_hidden_cos",
    "sink_kv_relerr",
    "massive_ratio",
    "flip_rate",
    "gen_ppl_ratio",
    "perturbation_spread",
)


def measure_group(ev, qs: list) -> dict[str, ConfigResult]:
    from harness.measure.reference import compare

    results = {q.spec: ev.new_result(q) for q in qs}
    if ev.spec.unavailable:
        for r in results.values():
            r.skip(ev.spec.unavailable)
        return results
    ref = ev.reference = ev.reference or reference_for(ev.base)
    pending = []
    for q in qs:
        r = results[q.spec]
        model = guarded(r, ev.quantize, q, r)
        if model is None:
            continue
        part = ev.participant(q, model)
        t0 = time.perf_counter()
        try:
            ps = compare(ref, part, ev.base.batches, ev.spec.sink_positions, ev.progress, f"{q.spec}: ")
        except Exception as e:  # this configuration ends; the others go on
            r.fail(one_line(e))
            ps = None
        if ps is not None:
            ps.base = ev.base.summary
            r.info = {**(r.info or {}), "reference": {"key": ref.key, "built_in_this_run": ref.built}}
            r.note_kv_reads(part.reads)
            state = guarded(r, ev.measure_rest, q, r, model, ps, time.perf_counter() - t0)
            if state is not None:
                pending.append((q, r, state))
        del model, part
        ev.base.drop_model()  # a KV-cache configuration ran on the baseline's own weights; frees before the next
    for q, r, state in pending:  # the baseline model, loaded once here, scores every configuration
        guarded(r, ev.conclude, q, r, state)
        if r.measured:
            advise.after_gates(ev, q, r, None)
    return results


def reference_for(base):
    """The run's baseline reference (found by its key, or built now with the baseline model); the baseline
    then takes its side from it and drops its model: configurations are measured without it."""
    from harness.measure.reference import FORMAT, ROWS, TOPK, ensure

    ident = reference_identity(base.spec, base.inputs, format=FORMAT, topk=TOPK, rows=ROWS)
    ref = ensure(base, ident, digest(ident))
    base.drop_model()
    base.adopt_reference(ref)
    return ref
