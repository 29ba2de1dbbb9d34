"""Write a random-weight checkpoint with the shapes of a known model (timing does not depend on
the weights), plus a tokenizer copied from a directory, for benches on real shapes.

python bench/random_model.py --shape llama3-8b --tokenizer DIR --out DIR [--device cuda]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

SHAPES = {
    # Llama-3-8B: 32 layers, 32 heads, 8 KV heads, hidden 4096, vocab 128256.
    "llama3-8b": dict(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
        max_position_embeddings=8192,
        rope_theta=500000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="llama3-8b", choices=sorted(SHAPES))
    ap.add_argument("--tokenizer", required=True, help="directory with tokenizer.json / tokenizer_config.json")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    a = ap.parse_args()
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = LlamaConfig(bos_token_id=1, eos_token_id=2, pad_token_id=2, **SHAPES[a.shape])
    torch.manual_seed(0)
    with torch.device(a.device):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float16)
    model.save_pretrained(out, safe_serialization=True)
    for f in Path(a.tokenizer).iterdir():
        if f.name.startswith("tokenizer") or f.name.endswith(".jinja"):
            shutil.copy(f, out / f.name)
    print(f"wrote {a.shape} ({sum(p.numel() for p in model.parameters()) / 1e9:.2f} B parameters) to {out}")


if __name__ == "__main__":
    main()
