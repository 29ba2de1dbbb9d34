"""What scale-out, the shared reference and the results cache buy, measured side by side in one invocation.

    python bench/scale.py [--model smollm2-135m] [--quant bnb-int8,bnb-nf4,rtn-w4g32,rtn-w3g32]
                          [--changed rtn-w3g32=rtn-w3g64] [--memory-quant rtn-w4g32]
                          [--skip-ray] [--skip-nightly] [--skip-memory]   (a skipped figure prints nan)

(c) the nightly pattern: a cold run of the configurations (empty caches but the converted model),
    then the same run with one configuration changed: the results cache reuses the others.
(b) the same configurations fanned out over a local 2-CPU Ray cluster (one task per configuration,
    in reference mode: the driver builds the reference, each task measures against it) vs one
    serial process (lockstep off: one configuration at a time beside the baseline).
(a) peak memory of measuring one configuration against a reference vs in lockstep with the baseline,
    each in its own process (bench/reference_mode.py: peak RSS above the process after imports and inputs,
    and the whole peak; the median of 3 runs per mode).
Last line: `rerun_cost=<changed-run time / cold time> reference_memory=<reference / lockstep, above
imports> reference_memory_rss=<whole peaks> ray_speedup=<serial / ray>`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from signoff_cost import fresh_cache  # bench/ is this script's directory, first on sys.path


def timed(values: dict) -> tuple[float, dict]:
    from harness.cli import run

    t0 = time.perf_counter()
    res = run(values, progress=lambda m: None)
    return time.perf_counter() - t0, res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--quant", default="bnb-int8,bnb-nf4,rtn-w4g32,rtn-w3g32")
    ap.add_argument("--changed", default="rtn-w3g32=rtn-w3g64", help="OLD=NEW: the configuration that changes")
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--skip-nightly", action="store_true", help="leave out (c)")
    ap.add_argument("--skip-memory", action="store_true", help="leave out (a)")
    ap.add_argument("--memory-quant", default="rtn-w4g32", help="the configuration of the memory comparison (a)")
    a = ap.parse_args()
    from harness.system.files import cache_root

    real = cache_root()
    os.environ["QS_RESULTS_CACHE"] = "on"
    os.environ["QS_CACHE_DIR"] = str(fresh_cache(real))
    out = Path(tempfile.mkdtemp(prefix="qs-bench-scale-"))
    base = {"model": a.model, "report_dir": str(out)}
    old, new = a.changed.split("=")
    cold = rerun = float("nan")
    if not a.skip_nightly:
        cold, res = timed({**base, "quant": a.quant})
        changed_quant = ",".join(new if q == old else q for q in a.quant.split(","))
        rerun, res2 = timed({**base, "quant": changed_quant})
        reused = [c["spec"] for c in res2["configs"] if c.get("cache")]
        print(
            f"(c) cold run {cold:.1f} s ({a.quant}); rerun with {old} -> {new}: {rerun:.1f} s "
            f"(reused from the results cache: {', '.join(reused) or 'none'})"
        )
    speed = float("nan")
    if not a.skip_ray:
        os.environ["QS_RESULTS_CACHE"] = "off"
        serial, _ = timed({**base, "quant": a.quant, "lockstep": "off"})
        fanned, _ = timed(
            {**base, "quant": a.quant, "ray_address": "local", "reference": True, "reference_dir": str(out / "refs")}
        )
        speed = serial / fanned
        print(
            f"(b) {len(a.quant.split(','))} configurations: serial (one process, lockstep off) {serial:.1f} s, "
            f"local Ray cluster ({os.cpu_count()} CPUs, reference mode) {fanned:.1f} s: {speed:.2f}x"
        )
    above = whole = float("nan")
    if not a.skip_memory:
        os.environ["QS_RESULTS_CACHE"] = "off"
        from reference_mode import memory

        mem = {**base, "quant": a.memory_quant, "reference_dir": str(out / "refs-mem")}
        timed({**mem, "reference": True})  # builds the reference
        refm, lockm, above, whole = memory(mem)
        print(
            f"(a) peak RSS measuring {a.memory_quant} (median of 3 runs each): against the reference "
            f"{refm['peak_mb']:.0f} MB {refm['peaks_mb']} ({refm['after_inputs_mb']:.0f} after imports and inputs), "
            f"in lockstep {lockm['peak_mb']:.0f} MB {lockm['peaks_mb']} "
            f"({lockm['after_inputs_mb']:.0f}): above imports {above:.3f}, whole {whole:.3f}"
        )
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(os.environ["QS_CACHE_DIR"], ignore_errors=True)
    print(
        f"rerun_cost={rerun / cold:.3f} reference_memory={above:.3f} reference_memory_rss={whole:.3f} "
        f"ray_speedup={speed:.2f}"
    )


if __name__ == "__main__":
    main()
