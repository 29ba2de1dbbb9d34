"""Plain-Python entry point: the same run as `pytest suites`, without pytest (e.g. nightly jobs)."""
from __future__ import annotations

from .session import Session
from .spec import RunSpec, build_spec


def run(spec: RunSpec | dict, progress=None) -> dict:
    """Measure every configuration, write REPORT_DIR/<run_id>/ and the index line; return results."""
    if isinstance(spec, dict):
        spec = build_spec(spec)
    session = Session(spec, progress).prepare()
    session.run_all()
    results = session.results()
    from .results import write_run

    write_run(results, spec.report_dir)
    return results


def main(argv=None) -> int:
    """`python -m harness --model ... --quant ...`: exit 0 pass, 1 fail, 4 usage error."""
    import argparse
    import sys

    from .errors import UsageError

    p = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    for flag in ("model", "revision", "quant", "bits", "methods", "device", "baseline-dtype", "corpus", "prompts",
                 "bos", "sink-positions", "policy", "profile", "report-dir", "compare", "lockstep"):
        p.add_argument(f"--{flag}")
    p.add_argument("--signoff", action="store_true", default=None)
    a = vars(p.parse_args(argv))
    try:
        results = run({k: v for k, v in a.items()})
    except UsageError as e:
        print(f"ERROR: {e}", file=sys.stderr)
        return 4
    print(f"verdict: {results['verdict']} (run {results['run_id']})")
    return 0 if results["verdict"] == "pass" else 1
