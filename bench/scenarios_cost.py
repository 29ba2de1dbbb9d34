"""Wall time of the deployment scenarios alone (no corpus pass, no generation) for a profile.

python bench/scenarios_cost.py --profile nightly [--scenarios bos] [--quant bnb-nf4] [--model smollm2-135m]

Builds the run as `pytest suites` would (same settings, same inputs), quantizes the configurations,
then times harness.scenarios.runner.run_group for the baseline and every configuration together and
prints each scenario's seconds (the baseline's side included, as in a run) and every scenario gate
view with the bundled policy's outcome. The test-only fault methods (fault-bf16, fault-sink) are
available here: the policy's scenario limits were checked with them (docs/policy.md).
"""

import argparse
import time

import harness.testing  # noqa: F401  (registers the fault methods)
from harness.config.build import build_spec
from harness.engine.session import Session
from harness.gates.decide import evaluate_gate
from harness.gates.policy import load_policy
from harness.measure.passes import Participant
from harness.scenarios.runner import records, run_group


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--scenarios", default=None, help="default: the profile's")
    ap.add_argument("--quant", default="bnb-nf4")
    ap.add_argument("--json", default=None, help="write the baseline's and every configuration's records here")
    a = ap.parse_args()
    values = {"model": a.model, "profile": a.profile, "quant": a.quant}
    if a.scenarios:
        values["scenarios"] = a.scenarios
    spec = build_spec(values)
    s = Session(spec, progress=lambda m: print(f"  {m}", flush=True)).prepare()
    base = s.baseline
    base.setup_threads()
    parts = {q.spec: Participant(s.evaluator.quantize(q, s.evaluator.new_result(q))) for q in spec.quant}
    t0 = time.perf_counter()
    out = run_group(base, parts)
    total = time.perf_counter() - t0
    print(
        f"profile {a.profile}, scenarios {spec.scenarios}, model {a.model}, configurations {a.quant}, "
        f"{base.threads} threads"
    )
    for name, rec in records(base).items():
        print(f"{name}: {rec.get('seconds')} s (baseline and {len(parts)} configuration(s))")
    print(f"total {total:.1f} s")
    if a.json:
        import json

        from harness.report.results import clean

        recs = {k: (v if isinstance(v, BaseException) else v[0]) for k, v in out.items()}
        with open(a.json, "w") as f:
            json.dump(
                clean(
                    {
                        "baseline": records(base),
                        "configs": {k: str(v) if isinstance(v, BaseException) else v for k, v in recs.items()},
                    }
                ),
                f,
                indent=1,
            )
    limits = load_policy().gates_for(None)
    for spec_name, r in out.items():
        if isinstance(r, BaseException):
            print(f"{spec_name}: failed: {r}")
            continue
        for metric, view in r[1].items():
            print(
                "  " + evaluate_gate(spec_name, metric, limits[metric], view)["detail"]
                if metric in limits
                else f"  {spec_name}: {metric} {view}"
            )


if __name__ == "__main__":
    main()
