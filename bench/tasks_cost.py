"""Wall time of the task phase alone (--tasks: the baseline's side and each configuration's), with the task gates.

    python bench/tasks_cost.py --profile nightly [--tasks basics] [--quant bnb-int8,rtn-w3g32] [--model smollm2-135m]

Builds the run as `pytest suites` would (same settings, same inputs), quantizes the configurations, then times
harness.engine.tasks: the baseline's per-sample results (computed once per task and model; --fresh ignores the
disk cache) and each configuration's, and prints the seconds of each and every task gate with the bundled policy's
outcome and interval.
"""

import argparse
import time

from harness.config.build import build_spec
from harness.engine import tasks
from harness.engine.session import Session
from harness.gates.decide import evaluate_gate
from harness.gates.policy import load_policy
from harness.measure.passes import Participant


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--profile", default="nightly")
    ap.add_argument("--tasks", default=None, help="default: the profile's")
    ap.add_argument("--quant", default="bnb-int8,rtn-w3g32")
    ap.add_argument("--fresh", action="store_true", help="score the baseline again (QS_CACHE_DIR elsewhere)")
    a = ap.parse_args()
    values = {"model": a.model, "profile": a.profile, "quant": a.quant}
    if a.tasks:
        values["tasks"] = a.tasks
    if a.fresh:
        import os
        import tempfile

        os.environ["QS_CACHE_DIR"] = tempfile.mkdtemp(prefix="qs-tasks-")
    spec = build_spec(values)
    s = Session(spec, progress=lambda m: print(f"  {m}", flush=True)).prepare()
    base = s.baseline
    base.setup_threads()
    n = sum(len(getattr(t, "items", ())) for t in s.inputs.tasks)
    print(f"profile {a.profile}, tasks {spec.tasks} ({n} plain samples), model {a.model}, {base.threads} threads")
    t0 = time.perf_counter()
    tasks.baseline_side(base)
    print(f"baseline: {time.perf_counter() - t0:.1f} s")
    limits = load_policy().gates_for(None)
    for q in spec.quant:
        model = s.evaluator.quantize(q, s.evaluator.new_result(q))
        t0 = time.perf_counter()
        met, views, rows = tasks.measure(base, Participant(model))
        print(f"{q.spec}: {time.perf_counter() - t0:.1f} s, {len(rows)} samples, scores {met.get('task_scores')}")
        for metric, view in views.items():
            if metric in limits:
                print("  " + evaluate_gate(q.spec, metric, limits[metric], view)["detail"])
        del model


if __name__ == "__main__":
    main()
