"""AWQ is calibrated on every calibration sample: GPTQModel's AWQ stacks a layer's captured inputs only when the
batches have one shape, and with ragged samples it kept the last (shortest) one alone for the scale search."""

import importlib.util

import pytest
import torch

from harness.methods import QuantContext, parse_spec, quantize
from harness.methods.awq import calibration_blocks, scale_search_tokens
from harness.models.tiny import byte_tokenizer

RAGGED = [f"sample {i}: " + "the quick brown fox jumps over the lazy dog. " * (1 + i) for i in range(6)]


@pytest.mark.parametrize("add_bos", [False, True])
def test_calibration_blocks_have_one_length_and_keep_the_samples_in_order(add_bos):
    tok = byte_tokenizer(add_bos=add_bos)
    blocks = calibration_blocks(tok, RAGGED, max_positions=100)
    stream = [t for text in RAGGED for t in tok(text, add_special_tokens=False)["input_ids"]]
    body = 99 if add_bos else 100
    assert len(blocks) == len(stream) // body and {len(b) for b in blocks} == {100}
    assert [t for b in blocks for t in (b[1:] if add_bos else b)] == stream[: len(blocks) * body]
    assert all((b[0] == tok.bos_token_id) == add_bos for b in blocks)
    # 512 tokens at most; a stream shorter than one block is one block
    assert {len(b) for b in calibration_blocks(tok, RAGGED * 4, max_positions=4096)} == {512}
    (short,) = calibration_blocks(tok, ["just a few words"], max_positions=4096)
    assert len(short) == len("just a few words") + add_bos


def test_a_scale_search_on_part_of_the_calibration_is_an_error_before_anything_is_cached():
    log = {"awq": [{"module": "self_attn.q_proj", "scale_retained_tokens": 70, "scale_aggregation": "latest_batch"}]}
    with pytest.raises(RuntimeError, match="searched scales on 70 of 2522 calibration tokens.*latest_batch"):
        scale_search_tokens(log, 2522)
    log["awq"][0].update(scale_retained_tokens=2522, scale_aggregation="batch")
    assert scale_search_tokens(log, 2522) == 2522


@pytest.fixture(scope="module")
def one_layer_llama(tmp_path_factory):
    """One decoder layer whose output widths are multiples of 64 (GPTQModel's AWQ walks rows in blocks of 64)."""
    import transformers

    cfg = transformers.LlamaConfig(
        vocab_size=272,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        max_position_embeddings=256,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("awq-one-layer")
    transformers.AutoModelForCausalLM.from_config(cfg).save_pretrained(out)
    byte_tokenizer().save_pretrained(out)
    return out


@pytest.mark.slow
def test_awq_scale_search_sees_every_calibration_sample_whatever_their_lengths(
    one_layer_llama, isolated_cache, monkeypatch
):
    if importlib.util.find_spec("gptqmodel") is None:
        pytest.skip("gptqmodel is not installed: pip install gptqmodel")
    from gptqmodel.models.base import BaseQModel

    from harness.models.sources import load_model, load_tokenizer

    logs = []
    real = BaseQModel.quantize

    def spy(self, *args, **kwargs):
        logs.append(real(self, *args, **kwargs))
        return logs[-1]

    monkeypatch.setattr(BaseQModel, "quantize", spy)
    tok = load_tokenizer(one_layer_llama)
    ctx = QuantContext(
        model_dir=one_layer_llama,
        model_key=str(one_layer_llama),
        load_baseline=lambda: load_model(one_layer_llama),
        tokenizer=tok,
        calibration=lambda n, seed: (RAGGED[:n], "ragged"),
        gptq_samples=len(RAGGED),
        progress=lambda m: None,
    )
    quantize(parse_spec("awq-w4g32"), ctx)
    tokens = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in RAGGED)  # 1005, samples of 55-280
    rows = logs[0]["awq"]
    seen = min(int(r["scale_retained_tokens"]) for r in rows)
    assert {r["scale_aggregation"] for r in rows} == {"batch"}, rows[0]
    assert tokens - 256 < seen <= tokens  # every 256-token block (the model's positions); before: the shortest sample
    assert ctx.info["calibration"] == dict(samples=6, blocks=3, block_tokens=256, tokens=768, scale_search_tokens=768)
