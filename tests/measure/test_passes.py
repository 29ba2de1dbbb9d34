"""Lockstep streaming passes, chunked prefill through KV caches, sink K/V and sink protection."""

import copy

import numpy as np
import pytest
import torch

from harness.errors import CaptureError
from harness.measure.kvcache import KVSpec
from harness.measure.passes import Participant, compare_pair, forward_stats, measure_batch
from harness.measure.protect import SinkSource
from harness.methods.rtn import RTNConfig, apply_rtn
from harness.models.tiny import TINY_ARCHS

FULL_ATTENTION = [a for a in TINY_ARCHS if a != "mistral"]


def _ids(T=40, B=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (B, T), generator=g)


@pytest.mark.parametrize("arch", FULL_ATTENTION)
def test_chunked_pass_equals_one_call(arch, tiny):
    """Prefill in chunks through a plain cache reproduces the one-call pass (every statistic)."""
    model, _ = tiny(arch)
    ids = _ids()
    one = forward_stats(model, ids)
    chunked = forward_stats(model, ids, chunk=7)
    for f in ("sink_mass", "entropy", "massive", "sink_hidden", "sink_k", "sink_v", "logp"):
        np.testing.assert_allclose(
            getattr(chunked, f).numpy(), getattr(one, f).numpy(), rtol=1e-4, atol=1e-5, err_msg=f
        )
    assert torch.equal(chunked.votes, one.votes)


def test_sliding_window_in_chunks_is_a_clear_error(tiny):
    model, _ = tiny("mistral")  # sliding window 16: later chunks cannot see position 0
    with pytest.raises(CaptureError, match="sliding-window"):
        forward_stats(model, _ids(T=40), chunk=8)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_sink_kv_is_what_the_cache_holds(arch, tiny):
    """The sink's key/value equal position 0 of transformers' own cache after a plain forward."""
    model, _ = tiny(arch)
    ids = _ids()
    st = forward_stats(model, ids)
    with torch.no_grad():
        cache = model(input_ids=ids, use_cache=True).past_key_values
    for i, layer in enumerate(cache.layers):
        np.testing.assert_allclose(st.sink_k[:, i].numpy(), layer.keys[:, :, 0, :].flatten(1).numpy(), atol=1e-6)
        np.testing.assert_allclose(st.sink_v[:, i].numpy(), layer.values[:, :, 0, :].flatten(1).numpy(), atol=1e-6)


def test_kv_quantization_changes_the_sink_kv_and_logits(tiny):
    model, _ = tiny("llama")
    ids = _ids()
    b, q = compare_pair(model, Participant(model, KVSpec("hqq", 2, 16, 8)), ids)
    rel = ((q.sink_k - b.sink_k).norm(dim=-1) / b.sink_k.norm(dim=-1)).mean()
    assert 0.05 < float(rel) < 2  # the sink's key as attention reads it went through 2-bit rounding
    assert float(q.kl.mean()) > 0 and float(q.js.max()) > 0


def test_protection_of_the_baseline_is_the_identity(tiny):
    model, _ = tiny("llama")
    ids = _ids()
    b, p = compare_pair(model, Participant(model, protect=SinkSource(model)), ids)
    assert float(p.kl.max()) < 1e-6 and float(p.js.max()) < 1e-6


def test_protection_restores_the_sink_states(tiny):
    model, _ = tiny("llama")
    quant = apply_rtn(copy.deepcopy(model), RTNConfig(w_bits=2, group=16))
    ids = _ids()
    src = SinkSource(model)
    b, q = compare_pair(model, quant, ids)
    _, p = compare_pair(model, Participant(quant, protect=src), ids)
    _, pk = compare_pair(model, Participant(model, KVSpec("hqq", 2, 16, 8), protect=src), ids)
    assert float((q.sink_hidden - b.sink_hidden).norm()) > 1e-2  # unprotected: the sink moved
    np.testing.assert_allclose(p.sink_hidden.numpy(), b.sink_hidden.numpy(), atol=1e-5)
    np.testing.assert_allclose(p.sink_k.numpy(), b.sink_k.numpy(), atol=1e-5)
    np.testing.assert_allclose(pk.sink_k.numpy(), b.sink_k.numpy(), atol=1e-5)  # kept out of the rounding
    assert float(p.kl.mean()) > 0  # the rest of the model is still quantized


def test_a_failing_runner_is_reported_and_the_others_finish(tiny):
    model, _ = tiny("llama")
    quant = apply_rtn(copy.deepcopy(model), RTNConfig(w_bits=4, group=16))
    broken = copy.deepcopy(model)
    layer2 = broken.model.layers[2]

    def boom(mod, args, out):
        raise RuntimeError("kernel exploded")

    layer2.register_forward_hook(boom)
    ids = _ids()
    b, out = measure_batch(Participant(model), {"ok": Participant(quant), "broken": Participant(broken)}, ids)
    assert isinstance(out["broken"], RuntimeError)
    _, alone = compare_pair(model, quant, ids)
    np.testing.assert_allclose(out["ok"].js.numpy(), alone.js.numpy(), atol=1e-7)
    np.testing.assert_allclose(out["ok"].kl.numpy(), alone.kl.numpy(), atol=1e-7)


def test_protected_generation_of_the_baseline_equals_plain(tiny):
    from harness.measure.generation import generate

    model, tok = tiny("llama")
    prompts = ["hello there", "a", "the quick brown fox", "xyz"]
    plain = generate(model, tok, prompts, 16, return_ids=True)[1]
    prot = generate(model, tok, prompts, 16, return_ids=True, protect=SinkSource(model))[1]
    kv = generate(model, tok, prompts, 16, return_ids=True, kv=KVSpec("hqq", 2, 16, 4))[1]
    assert prot == plain
    assert kv != plain  # generation really read the 2-bit cache
