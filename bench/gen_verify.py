"""Verifying the baseline's continuations instead of decoding them (measure/generation.py reference_ids), timed
side by side with decoding every prompt, on every generation set a run makes, for the baseline itself and each
configuration.

    python bench/gen_verify.py [--model tiny-llama] [--quant rtn-w4g32,rtn-w3g32] [--profile smoke] [--repeat 1]
                               [--clock wall|cpu] [--random-weights]

The sets are the run's, with its settings (engine/continuations.py): prompts (answers stop at the end of their
line), open prompts, prompt variants and the long subset (EOS suppressed to its length), greedy, the profile's
batch size; the reference is the baseline's own continuation of each set. Both paths must return the same texts
and ids (the script stops otherwise); figures are the best of --repeat. The baseline's rows (every row verified)
price the pass alone: break_even is its share of decoding, the share of rows a configuration must verify for
verifying to pay. Last line: speedup=<decoding seconds over verifying seconds, summed over the configurations'
sets (the baseline's own rows left out)>.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from harness.config.build import build_spec
from harness.engine.session import Session
from harness.measure.generation import generate
from harness.methods import quantize


def _best(fn, repeat: int, clock):
    best, out = None, None
    for _ in range(repeat):
        t = clock()
        out = fn()
        secs = clock() - t
        best = secs if best is None else min(best, secs)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="tiny-llama")
    ap.add_argument("--quant", default="rtn-w4g32,rtn-w3g32")
    ap.add_argument("--profile", default="smoke")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="cpu: process CPU time (a shared machine)")
    ap.add_argument(
        "--random-weights",
        action="store_true",
        help="the model's shapes with random weights (the pass's price on real shapes; no configurations)",
    )
    a = ap.parse_args()
    clock = time.perf_counter if a.clock == "wall" else time.process_time
    values = dict(
        model=a.model, quant=a.quant, profile=a.profile, compare="none", report_dir=tempfile.mkdtemp(prefix="qs-gv-")
    )
    s = Session(build_spec(values), progress=lambda m: None).prepare().baseline
    s.setup_threads()
    if a.random_weights:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(s.inputs.source.local_dir)).eval()
    else:
        base = s.load()
    g = s.spec
    sets = [  # (name, texts, new tokens, min_new, first_line) as a configuration generates them
        ("prompts", [p.prompt for p in s.prompts], g.max_new_tokens, 0, [bool(p.references) for p in s.prompts]),
        ("open prompts", [p.prompt for p in s.open_prompts], g.max_new_tokens, 0, False),
        ("prompt variants", s.variant_prompts[1], g.max_new_tokens, 0, True),
        ("long", [p.prompt for p in s.long_prompts], g.long_new_tokens, g.long_new_tokens, False),
    ]
    sets = [x for x in sets if x[1]]

    def run(model, texts, new, min_new, lines, ref=None, stats=None):
        return generate(
            model,
            s.tokenizer,
            texts,
            new,
            g.gen_batch_size,
            g.bos,
            return_ids=True,
            min_new_tokens=min_new,
            first_line=lines,
            reference_ids=ref,
            stats=stats,
        )

    run(base, *sets[0][1:])  # warm-up
    refs = {name: run(base, *rest)[1] for name, *rest in sets}
    print(f"{a.model} at {a.profile}: batch {g.gen_batch_size}, {s.threads} threads, {a.clock} seconds")
    print("| configuration | set | rows | decode all (s) | verify first (s) | rows checked | rows verified | speedup |")
    print("|---|---|---|---|---|---|---|---|")
    total, pass_share = [0.0, 0.0], None
    for q in [None, *([] if a.random_weights else g.quant)]:
        spec, model = ("baseline", base) if q is None else (q.spec, quantize(q, s.quant_context(q))[0])
        sums = [0.0, 0.0]
        for name, *rest in sets:
            dec, plain = _best(lambda m=model, r=rest: run(m, *r), a.repeat, clock)
            stats: dict = {}
            ver, checked = _best(lambda m=model, r=rest, st=stats, ref=refs[name]: run(m, *r, ref, st), a.repeat, clock)
            if checked != plain:
                raise SystemExit(f"{spec} {name}: verified continuations differ from decoded ones")
            n, v, c = len(rest[0]), stats["verified"] // a.repeat, stats["checked"] // a.repeat
            print(f"| {spec} | {name} | {n} | {dec:.2f} | {ver:.2f} | {c} | {v} | {dec / ver:.2f}x |", flush=True)
            sums[0] += dec
            sums[1] += ver
        print(f"| {spec} | all | | {sums[0]:.2f} | {sums[1]:.2f} | | | {sums[0] / sums[1]:.2f}x |", flush=True)
        if spec == "baseline":
            pass_share = sums[1] / sums[0]
        else:
            total[0] += sums[0]
            total[1] += sums[1]
            del model
    print(f"break_even: verifying pays where more than {pass_share:.0%} of a configuration's rows verify")
    if total[1]:
        print(f"speedup={total[0] / total[1]:.2f}")


if __name__ == "__main__":
    main()
