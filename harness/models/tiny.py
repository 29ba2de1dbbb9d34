"""Seeded random `tiny-<arch>` models and their byte-level tokenizer, for the harness's own tests.

A few hundred thousand parameters each; built from a config (no download) and
saved once to the cache so every later load is a plain local directory.
"""

from __future__ import annotations

from pathlib import Path

TINY_VERSION = 1  # bump when configs change: part of the cache key

_COMMON = dict(
    vocab_size=272,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=4,
    num_attention_heads=4,
    max_position_embeddings=1024,
    tie_word_embeddings=False,
    bos_token_id=256,
    eos_token_id=257,
    pad_token_id=258,
)

TINY_ARCHS: dict[str, tuple[str, dict]] = {
    "llama": ("LlamaConfig", dict(num_key_value_heads=2)),
    "qwen2": ("Qwen2Config", dict(num_key_value_heads=2)),
    "mistral": ("MistralConfig", dict(num_key_value_heads=2, sliding_window=16)),
    "gemma": ("GemmaConfig", dict(num_key_value_heads=1, head_dim=16)),
    "phi3": ("Phi3Config", dict(num_key_value_heads=4, pad_token_id=258)),
    "gpt2": (
        "GPT2Config",
        dict(n_embd=64, n_layer=4, n_head=4, n_positions=1024, vocab_size=272, bos_token_id=256, eos_token_id=257),
    ),
}


def byte_tokenizer():
    """A byte-level tokenizer: 256 byte tokens plus <s>, </s>, <pad> (ids 256-258)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    for i, special in enumerate(["<s>", "</s>", "<pad>"]):
        vocab[special] = 256 + i
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", model_max_length=1024
    )


def build_tiny(arch: str, out_dir: Path, seed: int = 0) -> None:
    """Write a seeded random model of `arch` with the byte tokenizer into out_dir."""
    import torch
    import transformers

    klass_name, extra = TINY_ARCHS[arch]
    kwargs = dict(_COMMON)
    if arch == "gpt2":
        kwargs = {k: v for k, v in kwargs.items() if k in ("tie_word_embeddings",)}
    kwargs.update(extra)
    config = getattr(transformers, klass_name)(**kwargs)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config)
    # Random init puts nearly uniform attention everywhere; scale up query/key weights so
    # the tiny models have peaked, head-specific attention that metrics can distinguish.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(k in name for k in ("q_proj", "k_proj", "c_attn", "qkv_proj")) and p.dim() == 2:
                p.mul_(4.0)
    model.save_pretrained(out_dir, safe_serialization=True)
    byte_tokenizer().save_pretrained(out_dir)
