"""Reference mode vs lockstep, side by side in one invocation: agreement, peak memory, size on disk.

    python bench/reference_mode.py [--model smollm2-135m] [--quant rtn-w4g32] [--profile smoke]
                              [--n-sequences N] [--skip-agreement]

(1) agreement: the same configuration measured in lockstep and against a reference: kld_mean (the
    reference keeps the baseline's top-256 log-probabilities plus the exact remainder mass) and the
    per-head attention JS (16 sampled query rows per sequence instead of all of them).
(2) peak memory: each mode in its own process measuring one configuration (the reference already
    built); RSS sampled every 20 ms while the run measures, and that peak above the RSS after imports
    and inputs (what the models and their passes add); the median of 3 runs per mode (identical runs
    differ by a few hundred MB). Ratio = reference / lockstep.
(3) reference size on disk.
Last line: `reference_memory=<ratio above imports> reference_memory_rss=<ratio of whole peaks>
kld_relerr=<...> js_worst_relerr=<...>`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, threading, time
from harness.config.build import build_spec
from harness.engine.session import Session

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

values = json.loads(sys.argv[1])
s = Session(build_spec(values), lambda m: None).prepare()
s.baseline.tokenizer, s.baseline.sequences  # inputs read in both modes before the figure is taken
before, peak, done = rss_mb(), [0.0], threading.Event()

def sample():  # RSS every 20 ms while the configuration is measured (ru_maxrss also counts start-up)
    while not done.is_set():
        peak[0] = max(peak[0], rss_mb())
        time.sleep(0.02)

t = threading.Thread(target=sample, daemon=True)
t.start()
s.run_all()
done.set()
t.join()
print(json.dumps({"after_inputs_mb": before, "peak_mb": max(peak[0], rss_mb())}))
"""


def child(values: dict) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(values)], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def memory(values: dict, repeats: int = 3) -> tuple[dict, dict, float, float]:
    """(reference-mode figures, lockstep figures, ratio above imports and inputs, ratio of whole peaks)
    of measuring values' configuration; the reference must exist already. Peak RSS of identical runs
    varies by a few hundred MB (allocator timing across threads), so each mode's figure is the median
    of `repeats` runs, the modes alternating."""
    pairs = [(child({**values, "reference": True}), child({**values, "lockstep": "on"})) for _ in range(repeats)]
    med = len(pairs) // 2

    def pick(i):
        runs = sorted((p[i] for p in pairs), key=lambda r: r["peak_mb"])
        return {**runs[med], "peaks_mb": [round(r["peak_mb"]) for r in runs]}

    refm, lockm = pick(0), pick(1)
    grown = lockm["peak_mb"] - lockm["after_inputs_mb"]  # ~0 on tiny models: their passes fit in import-time RSS
    above = (refm["peak_mb"] - refm["after_inputs_mb"]) / grown if grown > 1 else float("nan")
    return refm, lockm, above, refm["peak_mb"] / lockm["peak_mb"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--quant", default="rtn-w4g32")
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--n-sequences", default=None)
    ap.add_argument("--skip-agreement", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    a = ap.parse_args()
    import numpy as np

    from harness.cli import run

    os.environ["QS_RESULTS_CACHE"] = "off"
    tmp = Path(tempfile.mkdtemp(prefix="qs-bench-ref-"))
    base = {
        "model": a.model,
        "quant": a.quant,
        "profile": a.profile,
        "report_dir": str(tmp / "runs"),
        "n_prompts": "4",
        "n_stability_prompts": "2",
        "long_n_prompts": "1",
        "n_probe_sequences": "2",
        "scenarios": "none",
        "reference_dir": str(tmp / "refs"),
    }
    if a.n_sequences:
        base["n_sequences"] = a.n_sequences
    kld = js = float("nan")
    if not a.skip_agreement:
        lock = run({**base, "lockstep": "on"}, lambda m: None)["configs"][0]["metrics"]
        ref = run({**base, "reference": True}, lambda m: None)["configs"][0]["metrics"]
        kld = abs(ref["kld_mean"] - lock["kld_mean"]) / lock["kld_mean"]
        ja, jb = np.asarray(lock["attn_js"]), np.asarray(ref["attn_js"])
        js = abs(jb.max() - ja.max()) / ja.max()
        rel = np.abs(jb - ja) / np.maximum(ja, 1e-12)
        print(
            f"(1) {a.model} {a.quant} ({a.profile}): kld_mean lockstep {lock['kld_mean']:.5f} reference "
            f"{ref['kld_mean']:.5f} (rel. error {kld:.4f}); worst-head attn_js {ja.max():.5f} vs {jb.max():.5f} "
            f"(rel. error {js:.4f}); per head: median rel. error {np.median(rel):.3f}, "
            f"p95 {np.quantile(rel, 0.95):.3f}; "
            f"top1_agreement {lock['top1_agreement']:.4f} vs {ref['top1_agreement']:.4f}; ppl_ratio "
            f"{lock['ppl_ratio']:.5f} vs {ref['ppl_ratio']:.5f}"
        )
    else:
        run({**base, "reference": True}, lambda m: None)  # builds the reference
    if a.skip_memory:
        print(f"reference_memory=nan reference_memory_rss=nan kld_relerr={kld:.4f} js_worst_relerr={js:.4f}")
        return
    refm, lockm, above, whole = memory(base)
    print(
        f"(2) peak RSS measuring {a.quant} (median of 3 runs each): reference {refm['peak_mb']:.0f} MB "
        f"{refm['peaks_mb']} ({refm['after_inputs_mb']:.0f} after imports and inputs), lockstep "
        f"{lockm['peak_mb']:.0f} MB {lockm['peaks_mb']} ({lockm['after_inputs_mb']:.0f}); above imports: "
        f"{above:.3f}, whole: {whole:.3f}"
    )
    size = sum(p.stat().st_size for p in (tmp / "refs").rglob("*") if p.is_file())
    print(f"(3) reference on disk: {size / 2**20:.1f} MiB")
    print(
        f"reference_memory={above:.3f} reference_memory_rss={whole:.3f} kld_relerr={kld:.4f} js_worst_relerr={js:.4f}"
    )


if __name__ == "__main__":
    main()
