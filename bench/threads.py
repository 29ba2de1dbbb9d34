"""Measure torch thread counts for the harness's hot paths on this machine (forward + generation).

python bench/threads.py [--model smollm2-135m]
"""

import argparse
import time

import torch

from harness.data.sets import load_prompts
from harness.measure.generation import generate
from harness.measure.passes import forward_stats
from harness.models.sources import load_model, load_tokenizer, resolve_model


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    a = ap.parse_args()
    src = resolve_model(a.model)
    model, tok = load_model(src.local_dir), load_tokenizer(src.local_dir)
    ids = torch.randint(0, 1000, (4, 128))
    prompts = [p.prompt for p in load_prompts("bundled").prompts[:32]]
    print("threads | captured forward 4x128 (s) | bare SDPA forward 4x128 (s) | generate 32 prompts x 16 (s)")
    for n in (1, 2):
        torch.set_num_threads(n)
        forward_stats(model, ids[:1, :16])
        t = time.perf_counter()
        forward_stats(model, ids)
        cap = time.perf_counter() - t
        model.set_attn_implementation("sdpa")
        with torch.no_grad():
            t = time.perf_counter()
            model(input_ids=ids)
            bare = time.perf_counter() - t
        model.set_attn_implementation("eager")
        t = time.perf_counter()
        generate(model, tok, prompts, 16, 16)
        gen = time.perf_counter() - t
        print(f"{n} | {cap:.2f} | {bare:.2f} | {gen:.2f}")


if __name__ == "__main__":
    main()
