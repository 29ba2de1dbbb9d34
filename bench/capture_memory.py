"""Memory and time of the streaming attention capture against a bare eager forward pass.

python bench/capture_memory.py [--model smollm2-135m] [--lengths 512,1024,2048]

For each sequence length and mode, a fresh process loads the model, warms up, resets the
kernel's peak-RSS counter (/proc/self/clear_refs), runs one pass and reports the peak RSS
above what it held before the pass ("extra"). Modes:
  bare      eager forward, no hooks (what any eager pass costs: one layer's scores + logits)
  captured  the harness's single-model pass (sink mass, entropy, key votes, hidden and K/V
            of the sink, log-probabilities), reduced layer by layer
  compared  the harness's lockstep pass of the model against itself as baseline (JS per
            layer: one layer's baseline rows held at a time)
  all-maps  output_attentions=True: every layer's map held (what the capture avoids)
"capture overhead" = extra(mode) - extra(bare), compared with the size of all layers' maps
(L x H x T^2 x 4 bytes). Times are the best of two passes in the same process.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

MODES = ("bare", "captured", "compared", "all-maps")


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child(model_name: str, T: int, mode: str) -> dict:
    import torch

    from harness.measure.passes import compare_pair, forward_stats
    from harness.models.sources import load_model, resolve_model

    src = resolve_model(model_name)
    model = load_model(src.local_dir)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(100, 20000, (1, T), generator=g)

    def run():
        with torch.no_grad():
            if mode == "bare":
                model(input_ids=ids, use_cache=False)
            elif mode == "all-maps":
                model(input_ids=ids, use_cache=False, output_attentions=True)
            elif mode == "captured":
                forward_stats(model, ids)
            else:
                compare_pair(model, model, ids)

    with torch.no_grad():
        model(input_ids=ids[:, :16], use_cache=False)  # warm-up (lazy inits, thread pools)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current RSS
    before = _rss_kb("VmRSS")
    t0 = time.perf_counter()
    run()
    t1 = time.perf_counter() - t0
    peak = _rss_kb("VmHWM")
    t0 = time.perf_counter()
    run()
    t2 = time.perf_counter() - t0
    cfg = model.config
    return {
        "T": T,
        "mode": mode,
        "extra_mb": (peak - before) / 1024,
        "seconds": min(t1, t2),
        "maps_mb": cfg.num_hidden_layers * cfg.num_attention_heads * T * T * 4 / 2**20,
        "threads": torch.get_num_threads(),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--lengths", default="512,1024,2048")
    ap.add_argument("--child", nargs=2, metavar=("T", "MODE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.model, int(a.child[0]), a.child[1])))
        return
    rows = []
    for T in [int(x) for x in a.lengths.split(",")]:
        for mode in MODES:
            out = subprocess.run(
                [sys.executable, __file__, "--model", a.model, "--child", str(T), mode],
                capture_output=True,
                text=True,
                env=os.environ.copy(),
            )
            if out.returncode != 0:
                raise SystemExit(f"child T={T} {mode} failed:\n{out.stderr[-2000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"model {a.model}, batch 1, fp32, {rows[0]['threads']} threads; extra = peak RSS above the loaded model")
    print(
        "| tokens | all maps (MB) | bare eager extra (MB) | captured extra (MB) | compared extra (MB) | "
        "capture overhead / maps | compared overhead / maps | output_attentions extra (MB) | "
        "bare eager (s) | captured (s) | captured / bare | compared (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    by = {(r["T"], r["mode"]): r for r in rows}
    for T in sorted({r["T"] for r in rows}):
        b, c, p, m = (by[(T, k)] for k in MODES)
        maps = b["maps_mb"]
        print(
            f"| {T} | {maps:.0f} | {b['extra_mb']:.0f} | {c['extra_mb']:.0f} | {p['extra_mb']:.0f} | "
            f"{(c['extra_mb'] - b['extra_mb']) / maps:.1%} | {(p['extra_mb'] - b['extra_mb']) / maps:.1%} | "
            f"{m['extra_mb']:.0f} | {b['seconds']:.2f} | {c['seconds']:.2f} | {c['seconds'] / b['seconds']:.2f} | "
            f"{p['seconds']:.2f} |"
        )


if __name__ == "__main__":
    main()
