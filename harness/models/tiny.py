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
    "sink": ("LlamaConfig", dict(num_key_value_heads=2)),  # tiny-llama with a planted sink (plant_sink)
    "gpt2": (
        "GPT2Config",
        dict(n_embd=64, n_layer=4, n_head=4, n_positions=1024, vocab_size=272, bos_token_id=256, eos_token_id=257),
    ),
}


def byte_tokenizer(add_bos: bool = False):
    """A byte-level tokenizer: 256 byte tokens plus <s>, </s>, <pad> (ids 256-258); add_bos: it starts every
    text with <s> (as most real tokenizers do: the planted sink sits on it)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    for i, special in enumerate(["<s>", "</s>", "<pad>"]):
        vocab[special] = 256 + i
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 256)])
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
        if arch == "sink":
            plant_sink(model)
    model.save_pretrained(out_dir, safe_serialization=True)
    byte_tokenizer(add_bos=arch == "sink").save_pretrained(out_dir)


# The planted sink of tiny-sink: a trigger dimension only <s> carries, one MLP neuron of SINK_LAYER that turns it
# into a massive activation on MASSIVE_DIM at the sink, and in every later layer each head's query (from a
# dimension every token carries) matched to that activation's key on RoPE's slowest pair (nearly position-free).
SINK_LAYER = 1
SINK_NEURON = 5
TRIGGER_DIM, MASSIVE_DIM, CONSTANT_DIM = 3, 7, 11


def plant_sink(model) -> None:
    """Give a random Llama-style model an attention sink on <s> built like a trained model's (Sun et al. 2024)."""
    cfg = model.config
    emb = model.model.embed_tokens.weight
    emb[:, [TRIGGER_DIM, MASSIVE_DIM]] = 0.0
    emb[:, CONSTANT_DIM] = 0.1
    emb[cfg.bos_token_id, TRIGGER_DIM] = 1.0
    mlp = model.model.layers[SINK_LAYER].mlp
    for lin in (mlp.gate_proj, mlp.up_proj):
        lin.weight[SINK_NEURON] = 0.0
        lin.weight[SINK_NEURON, TRIGGER_DIM] = 1.0
    mlp.gate_proj.weight[SINK_NEURON, CONSTANT_DIM] = -1.5  # shut for every token but <s> (no bias to do it)
    mlp.down_proj.weight[:, SINK_NEURON] = 0.0
    mlp.down_proj.weight[MASSIVE_DIM, SINK_NEURON] = 2.0
    d = cfg.hidden_size // cfg.num_attention_heads
    slow = d // 2 - 1  # the slowest-turning RoPE pair is (slow, d - 1)
    for layer in model.model.layers[SINK_LAYER + 1 :]:
        attn = layer.self_attn
        for h in range(cfg.num_attention_heads):
            attn.q_proj.weight[h * d + slow] = 0.0
            attn.q_proj.weight[h * d + slow, CONSTANT_DIM] = 0.3
        for h in range(cfg.num_key_value_heads):
            attn.k_proj.weight[h * d + slow] = 0.0
            attn.k_proj.weight[h * d + slow, MASSIVE_DIM] = 2.0 * (1 + 0.2 * h)
