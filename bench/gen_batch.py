"""Greedy generation throughput by batch size (left-padded batches, SDPA) on the default model.

    python bench/gen_batch.py [--model smollm2-135m] [--new 32] [--sizes 1,4,8,16,32,64]

Chooses the profiles' gen_batch_size: the smallest size within 10% of the best throughput.
Also reports how many continuations differ from the unbatched ones (see docs/performance.md).
"""

import argparse
import time

from harness.data.sets import load_prompts
from harness.measure.generation import generate
from harness.models.sources import load_model, load_tokenizer, resolve_model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--sizes", default="1,4,8,16,32,64")
    a = ap.parse_args()
    src = resolve_model(a.model)
    model, tok = load_model(src.local_dir), load_tokenizer(src.local_dir)
    prompts = [p.prompt for p in load_prompts("bundled").prompts]
    generate(model, tok, prompts[:4], 4, 4)  # warm-up
    rows, ref = [], None
    for b in [int(x) for x in a.sizes.split(",")]:
        t = time.perf_counter()
        out = generate(model, tok, prompts, a.new, b)
        secs = time.perf_counter() - t
        ref = out if b == 1 else ref
        diff = sum(x != y for x, y in zip(out, ref)) if ref is not None else None
        rows.append((b, secs, len(prompts) * a.new / secs, diff))
        print(f"batch {b}: {secs:.1f} s", flush=True)
    best = max(r[2] for r in rows)
    pick = min(r[0] for r in rows if r[2] >= 0.9 * best)
    print(f"\n{len(prompts)} prompts x {a.new} new tokens\n")
    print("| batch size | seconds | new tokens/s | continuations differing from batch 1 |")
    print("|---|---|---|---|")
    for b, s, tps, d in rows:
        print(f"| {b} | {s:.1f} | {tps:.1f} | {d if d is not None else 'n/a'} |")
    print(f"chosen_batch_size={pick}")


if __name__ == "__main__":
    main()
