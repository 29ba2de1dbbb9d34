"""What a quantsink run costs against the floor: the same models doing only bare passes.

    python bench/signoff_cost.py [--model smollm2-135m] [--quant bnb-int8,rtn-w4g32]
                                 [--profiles smoke,nightly] [--warm-quant gptq-w4g128]

For each profile, in one process: the harness (plain-Python API, empty caches; quantization
time reported separately and left out of the ratio), then the floor: the baseline and each
quantized model doing bare SDPA forward passes over the same corpus tokens (and probe sequences)
plus bare batched greedy generation of the same prompts, prompt variants, open prompts and long
subset, at the same lengths, and the answer-margin measure's teacher-forced forwards. Then the
cache check: the smoke profile with --warm-quant added, run cold (empty caches) and warm (rerun).
The last line is
`overhead_ratio=<harness/floor, first profile> warm_speedup=<cold/warm>`.

    python bench/signoff_cost.py --floor-only --quant bnb-int8,bnb-nf4,rtn-w4g32,rtn-w3g32 --profiles smoke

only the teacher-forced floor: every generation replaced by one forward over the prompt and its new tokens (the
least an exact greedy measurement of these sets can cost here, what a configuration whose every row verifies
against the baseline's continuation pays), with the tokens it pushed through and the throughput: the bound a
time budget is checked against.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from harness.cli import run
from harness.config.build import build_spec
from harness.engine.session import Session
from harness.measure.answers import deciding_tokens
from harness.measure.generation import attention_impl, encode_prompt, generate
from harness.methods import quantize


def fresh_cache(real: Path) -> Path:
    """An empty cache that shares only the converted models (model resolution is not measured)."""
    d = Path(tempfile.mkdtemp(prefix="qs-bench-cache-"))
    if (real / "models").is_dir():
        (d / "models").symlink_to(real / "models", target_is_directory=True)
    return d


def harness(values: dict, cache: Path) -> tuple[float, float, dict]:
    os.environ["QS_CACHE_DIR"] = str(cache)
    t0 = time.perf_counter()
    res = run(dict(values), progress=lambda m: None)
    total = time.perf_counter() - t0
    quant = sum(c["quantize_seconds"] or 0 for c in res["configs"])
    return total, quant, res


@torch.no_grad()
def bare(model, s) -> float:
    """Bare forward passes (SDPA, no capture) over the corpus batches and the probe sequences (each
    twice: perturbed and BOS-ablated) plus bare batched generation of every prompt set the run
    generates (prompts, their variants, the long subset at its length)."""
    t0 = time.perf_counter()
    with attention_impl(model, "sdpa"):
        for ids in s.batches:
            model(input_ids=ids.to(model.device), use_cache=False)
        for _ in range(4):
            model(input_ids=s.probe_sequences.to(model.device), use_cache=False)
    g = s.spec
    answers = [bool(p.references) for p in s.prompts]  # answers stop at the end of their line, as in the run
    generate(
        model, s.tokenizer, [p.prompt for p in s.prompts], g.max_new_tokens, g.gen_batch_size, g.bos, first_line=answers
    )
    generate(model, s.tokenizer, s.variant_prompts[1], g.max_new_tokens, g.gen_batch_size, g.bos, first_line=True)
    if s.open_prompts:  # the degeneration gates' open prompts, generated in full
        generate(model, s.tokenizer, [p.prompt for p in s.open_prompts], g.max_new_tokens, g.gen_batch_size, g.bos)
    items = s.answer_items  # the answer-margin measure: one teacher-forced forward per answer text
    deciding_tokens(model, s.tokenizer, items["texts"], items["conts"], g.bos, g.gen_batch_size)
    generate(
        model,
        s.tokenizer,
        [p.prompt for p in s.long_prompts],
        g.long_new_tokens,
        g.gen_batch_size,
        g.bos,
        min_new_tokens=g.long_new_tokens,
    )
    return time.perf_counter() - t0


@torch.no_grad()
def scored(model, s) -> tuple[float, int]:
    """(seconds, tokens): the passes of `bare`, every generation replaced by one teacher-forced forward over the
    prompt and its new tokens (what a configuration whose every row verifies against the baseline's continuation
    costs: the least an exact greedy measurement of these sets can cost on this machine). Rows in length order,
    gen_batch_size at a time, logits only for the new tokens."""
    g = s.spec
    tok = s.tokenizer
    pad = tok.eos_token_id or 0

    def forward(rows: list[list[int]], keep: int) -> int:
        rows = sorted(rows, key=len)
        for a in range(0, len(rows), g.gen_batch_size):
            part = rows[a : a + g.gen_batch_size]
            width = max(map(len, part))
            ids = torch.full((len(part), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for r, row in enumerate(part):
                ids[r, : len(row)], mask[r, : len(row)] = torch.tensor(row), 1
            model(
                input_ids=ids.to(model.device),
                attention_mask=mask.to(model.device),
                use_cache=False,
                logits_to_keep=keep,
            )
        return sum(map(len, rows))

    def prompts(texts: list[str], new: int) -> int:
        return forward([encode_prompt(tok, t, g.bos) + [pad] * new for t in texts], new)

    items = s.answer_items  # the baseline's generations and deciding tokens: computed once, not timed
    t0 = time.perf_counter()
    n = 0
    with attention_impl(model, "sdpa"):
        for ids in s.batches:
            model(input_ids=ids.to(model.device), use_cache=False)
            n += ids.numel()
        for _ in range(4):
            model(input_ids=s.probe_sequences.to(model.device), use_cache=False)
            n += s.probe_sequences.numel()
        n += prompts([p.prompt for p in s.prompts], g.max_new_tokens)
        n += prompts(s.variant_prompts[1], g.max_new_tokens)
        if s.open_prompts:
            n += prompts([p.prompt for p in s.open_prompts], g.max_new_tokens)
        n += forward([encode_prompt(tok, t, g.bos) + list(c) for t, c in zip(items["texts"], items["conts"])], 1)
        n += prompts([p.prompt for p in s.long_prompts], g.long_new_tokens)
    return time.perf_counter() - t0, n


def floor(values: dict, cache: Path, how=bare) -> list:
    """The floor of a profile, per model: `how` (bare or scored) for the baseline, then each configuration."""
    os.environ["QS_CACHE_DIR"] = str(cache)
    s = Session(build_spec(dict(values)), progress=lambda m: None).prepare().baseline
    s.setup_threads()
    base = s.load()
    out = [how(base, s)]
    for q in s.spec.quant:
        model, _ = quantize(q, s.quant_context(q))  # not timed: the floor is the passes only
        out.append(how(model, s))
        del model
    return out


def run_values(a, report: Path, profile: str, quant: str | None = None) -> dict:
    """The settings of one bench run: the command line's model and device, no comparison, reports in `report`."""
    return dict(
        model=a.model, quant=quant or a.quant, profile=profile, compare="none", report_dir=str(report), device=a.device
    )


def floors_only(a) -> None:
    """--floor-only: each profile's teacher-forced floor for the given configurations, no harness run (the
    compute bound a budget can be checked against: the sets a profile measures at this machine's forward
    throughput; tasks and scenarios are left out, so it is a lower bound)."""
    from harness.system.files import cache_root

    report = Path(tempfile.mkdtemp(prefix="qs-bench-report-"))
    for profile in [p for p in a.profiles.split(",") if p]:
        values = run_values(a, report, profile)
        cache = fresh_cache(cache_root())
        per_model = floor(values, cache, scored)
        sec, toks = sum(t for t, _ in per_model), sum(n for _, n in per_model)
        shutil.rmtree(cache, ignore_errors=True)
        print(
            f"{profile}: {1 + len(a.quant.split(','))} models, floor with every generation teacher-forced "
            f"{sec:.1f} s ({toks} tokens, {toks / sec:.0f} tokens/s)",
            flush=True,
        )
    shutil.rmtree(report, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--quant", default="bnb-int8,rtn-w4g32")
    ap.add_argument("--profiles", default="smoke,nightly")
    ap.add_argument("--repeat", type=int, default=3, help="best of N harness/floor pairs for the smoke profile")
    ap.add_argument("--warm-quant", default="gptq-w4g128", help="added for the cold/warm cache check ('' to skip)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the harness and the floor both run there)")
    ap.add_argument("--floor-only", action="store_true", help="only the teacher-forced floor (no harness run)")
    a = ap.parse_args()
    if a.floor_only:
        floors_only(a)
        return
    from harness.system.files import cache_root

    real = cache_root()
    report = Path(tempfile.mkdtemp(prefix="qs-bench-report-"))
    # Warm-up, not timed: imports and the model files in the page cache, so that neither the
    # harness (timed first) nor the floor pays for them.
    warm = Session(
        build_spec(dict(model=a.model, quant=a.quant, compare="none", report_dir=str(report), device=a.device))
    ).prepare()
    warm.baseline.load()
    del warm
    rows, ratios = [], []
    for profile in [p for p in a.profiles.split(",") if p]:
        values = run_values(a, report, profile)
        # Harness and floor alternate; the best of `repeat` of each (this machine's timings jump by
        # 10-20% from run to run). Each harness run gets empty caches.
        runs, floors = [], []
        for _ in range(a.repeat if profile == "smoke" else 1):
            cache = fresh_cache(real)
            runs.append(harness(values, cache))
            floors.append(sum(floor(values, cache)))
            shutil.rmtree(cache, ignore_errors=True)
        h_total, h_quant, res = min(runs, key=lambda r: r[0] - r[1])
        f = min(floors)
        ratio = (h_total - h_quant) / f
        ratios.append(ratio)
        n_models = 1 + len(res["configs"])
        toks = n_models * res["corpus"]["n_sequences"] * res["corpus"]["seq_len"]
        rows.append(
            (
                profile,
                a.quant,
                h_total,
                h_quant,
                h_total - h_quant,
                f,
                ratio,
                res["environment"]["threads"],
                toks / (h_total - h_quant),
            )
        )
        print(
            f"{profile}: harness {h_total:.1f} s (quantize {h_quant:.1f} s), floor {f:.1f} s, ratio {ratio:.2f}",
            flush=True,
        )
    warm_speedup = None
    if a.warm_quant:
        values = run_values(a, report, "smoke", quant=f"{a.quant},{a.warm_quant}")
        cache = fresh_cache(real)
        cold, cold_q, _ = harness(values, cache)
        warm, warm_q, res = harness(values, cache)
        hits = [c.get("info", {}).get("cache_hit") for c in res["configs"] if c["method"] == "gptq"]
        warm_speedup = cold / warm
        shutil.rmtree(cache, ignore_errors=True)
        print(
            f"cache: cold {cold:.1f} s (quantize {cold_q:.1f} s), warm {warm:.1f} s (quantize {warm_q:.1f} s), "
            f"GPTQ cache hit on rerun: {hits}",
            flush=True,
        )
    shutil.rmtree(report, ignore_errors=True)
    print()
    print(f"device {a.device}, model {a.model}")
    print(
        "| profile | configs | harness total (s) = time to sign off | of which quantize (s) | harness passes (s) "
        "| floor (s) | overhead ratio | threads | corpus tokens/s (all models, whole harness) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for p, q, t, qs, hp, f, r, th, tps in rows:
        print(f"| {p} | {q} | {t:.1f} | {qs:.1f} | {hp:.1f} | {f:.1f} | {r:.2f} | {th} | {tps:.0f} |")
    ratio = f"{ratios[0]:.2f}" if ratios else "n/a"
    print(
        f"overhead_ratio={ratio} warm_speedup={warm_speedup:.2f}"
        if warm_speedup
        else f"overhead_ratio={ratio} warm_speedup=n/a"
    )


if __name__ == "__main__":
    main()
