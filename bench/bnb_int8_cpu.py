"""bitsandbytes LLM.int8 on the CPU: its Linear8bitLt against the harness's Int8MixedLinear (same numbers, bit for bit).

    python bench/bnb_int8_cpu.py [--threads 1] [--prompts 16] [--new 16] [--prompt-len 16] [--rounds 2]
                                 [--outlier-features 2] [--skip-layers]

1. Per layer, SmolLM2-135M's shapes (q/o 576->576, k/v 576->192, gate/up 576->1536, down 1536->576) at decoding
   (16 rows x 1 token) and corpus (4 x 128) inputs: ms per call of nn.Linear fp32, Linear8bitLt, Int8MixedLinear,
   and whether the two int8 outputs are equal.
2. Greedy generation of P random prompts x N new tokens (SDPA) on a random-weight model of SmolLM2-135M's config
   (never its real weights): fp32, the decoder Linears as Linear8bitLt (threshold 6.0, as transformers makes them),
   then swapped by harness.methods.bnb.int8_in_torch; seconds and whether the tokens agree.

Random weights have no outlier features: --outlier-features K scales K features of every RMSNorm by 40 so that
outlier columns occur, as in trained LLMs. bitsandbytes' per-call warning log record is switched off (it costs
extra when a handler such as pytest's records it), so the ratios count computation only.
"""

from __future__ import annotations

import argparse
import copy
import logging
import time

from harness.methods.bnb import int8_in_torch

SHAPES = [("q/o", 576, 576), ("k/v", 576, 192), ("gate/up", 576, 1536), ("down", 1536, 576)]
INPUTS = [("decoding 16x1", (16, 1), 60), ("corpus 4x128", (4, 128), 4)]  # name, leading shape, calls per round
SMOLLM2_135M = dict(
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    vocab_size=49152,
    max_position_embeddings=8192,
    rope_theta=100000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
)


def to_linear8bitlt(lin, threshold: float = 6.0):
    """A Linear8bitLt quantized from lin's weight, as transformers' load_in_8bit builds one (fp16 -> int8 rows)."""
    import bitsandbytes as bnb
    import torch

    mod = bnb.nn.Linear8bitLt(
        lin.in_features, lin.out_features, lin.bias is not None, has_fp16_weights=False, threshold=threshold
    )
    mod.weight = bnb.nn.Int8Params(lin.weight.data.clone(), has_fp16_weights=False, requires_grad=False)
    if lin.bias is not None:
        mod.bias = torch.nn.Parameter(lin.bias.data.clone(), requires_grad=False)
    return mod.to("cpu").eval()  # quantizes


def timed(fns, calls: int, rounds: int = 5) -> list[float]:
    """ms per call of each function: the best of `rounds` rounds, the functions taking turns in each (a busy machine
    slows all of them alike)."""
    for fn in fns:
        fn()
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            t = time.perf_counter()
            for _ in range(calls):
                fn()
            best[k] = min(best[k], (time.perf_counter() - t) / calls * 1e3)
    return best


def layers_table() -> list[str]:
    import torch

    from harness.methods.bnb_int8 import Int8MixedLinear

    rows = [
        "| layer | input | fp32 Linear ms | Linear8bitLt ms | Int8MixedLinear ms | bnb / swap | swap / fp32 | equal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    g = torch.Generator().manual_seed(0)
    for name, i, o in SHAPES:
        lin = torch.nn.Linear(i, o, bias=False).requires_grad_(False)
        kernel = to_linear8bitlt(lin)
        swap = Int8MixedLinear.of(kernel, int_mm=False).eval()
        for label, lead, calls in INPUTS:
            x = torch.randn(*lead, i, generator=g)
            x[..., 5] *= 20.0  # an outlier column
            with torch.no_grad():
                t = timed([lambda m=m, x=x: m(x) for m in (lin, kernel, swap)], calls)
                same = torch.equal(kernel(x), swap(x))
            rows.append(
                f"| {name} {i}->{o} | {label} | {t[0]:.3f} | {t[1]:.3f} | {t[2]:.3f} | {t[1] / t[2]:.2f} "
                f"| {t[2] / t[0]:.2f} | {same} |"
            )
            print(rows[-1], flush=True)
    return rows


def random_smollm2(outlier_features: int):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(bos_token_id=1, eos_token_id=2, pad_token_id=2, **SMOLLM2_135M)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="sdpa").eval()
    feats = list(range(3, 3 + 14 * outlier_features, 14))
    for layer in model.model.layers:
        for norm in (layer.input_layernorm, layer.post_attention_layernorm):
            norm.weight.data[feats] *= 40.0
    return model


def _int8(model):
    """The model's decoder Linears as Linear8bitLt (transformers keeps the output head as it is)."""
    import torch

    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for child, lin in list(parent.named_children()):
                if isinstance(lin, torch.nn.Linear):
                    setattr(parent, child, to_linear8bitlt(lin))
    return model


def generation_table(a) -> list[str]:
    import torch

    fp32 = random_smollm2(a.outlier_features)
    kernel = _int8(copy.deepcopy(fp32))
    swap = _int8(copy.deepcopy(fp32))
    n_swapped = int8_in_torch(swap)
    models = {"fp32 Linear": fp32, "Linear8bitLt": kernel, f"Int8MixedLinear ({n_swapped} layers)": swap}
    ids = torch.randint(
        3, SMOLLM2_135M["vocab_size"], (a.prompts, a.prompt_len), generator=torch.Generator().manual_seed(1)
    )

    def gen(model, n: int):
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                pad_token_id=2,
            )
        return out[:, a.prompt_len :]

    secs = dict.fromkeys(models, float("inf"))
    tokens = {k: gen(m, 2) for k, m in models.items()}  # warm-up
    for r in range(a.rounds):
        for k, m in models.items():
            t = time.perf_counter()
            tokens[k] = gen(m, a.new)
            secs[k] = min(secs[k], time.perf_counter() - t)
            print(f"round {r + 1}: {k} {time.perf_counter() - t:.1f} s", flush=True)
    (fp32_s, kernel_s, swap_s), (fp32_t, kernel_t, swap_t) = secs.values(), tokens.values()
    return [
        f"{a.prompts} prompts x {a.prompt_len} tokens, {a.new} new tokens, greedy, random SmolLM2-135M "
        f"({a.outlier_features} outlier features), {torch.get_num_threads()} thread(s), best of {a.rounds}",
        "",
        "| execution | seconds | x fp32 |",
        "|---|---|---|",
        *(f"| {k} | {v:.2f} | {v / fp32_s:.2f} |" for k, v in secs.items()),
        "",
        f"Linear8bitLt / Int8MixedLinear: {kernel_s / swap_s:.2f}x; tokens identical: {torch.equal(kernel_t, swap_t)} "
        f"({int((kernel_t == swap_t).sum())} of {kernel_t.numel()}; {int((fp32_t == swap_t).sum())} as fp32's)",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--new", type=int, default=16, help="new tokens per prompt")
    ap.add_argument("--prompt-len", type=int, default=16)
    ap.add_argument("--outlier-features", type=int, default=2, help="RMSNorm features scaled by 40 (0: none)")
    ap.add_argument("--rounds", type=int, default=2, help="generation rounds (the best counts)")
    ap.add_argument("--skip-layers", action="store_true", help="generation only")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    lines = [] if a.skip_layers else [*layers_table(), ""]
    lines += generation_table(a)
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
