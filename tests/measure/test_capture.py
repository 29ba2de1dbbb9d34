"""Streaming capture against output_attentions (eager) on every tiny architecture."""

import copy

import numpy as np
import pytest
import torch

from harness.errors import CaptureError
from harness.measure.hooks import attention_modules, capture
from harness.measure.passes import compare_pair, forward_stats
from harness.methods.rtn import RTNConfig, apply_rtn
from harness.models.tiny import TINY_ARCHS


def _np_sink_mass(attn):  # [B,H,T,T] numpy -> [B,H]
    return attn[:, :, 1:, 0].mean(-1)


def _np_js(p, q):  # rows t>=1 of [B,H,T,T]
    p, q = p[:, :, 1:, :].astype(np.float64), q[:, :, 1:, :].astype(np.float64)
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log(p / m), 0).sum(-1)
        kq = np.where(q > 0, q * np.log(q / m), 0).sum(-1)
    return (0.5 * (kp + kq)).mean(-1)


@pytest.mark.parametrize("arch", list(TINY_ARCHS))
def test_sink_mass_and_js_match_output_attentions(arch, tiny):
    model, tok = tiny(arch)
    quant = apply_rtn(copy.deepcopy(model), RTNConfig(w_bits=3, group=16))
    torch.manual_seed(1)
    ids = torch.randint(0, 256, (2, 40))  # longer than mistral's sliding window (16)
    with torch.no_grad():
        ref_b = [a.numpy() for a in model(input_ids=ids, output_attentions=True).attentions]
        ref_q = [a.numpy() for a in quant(input_ids=ids, output_attentions=True).attentions]
    assert len(ref_b) == model.config.num_hidden_layers
    b, q = compare_pair(model, quant, ids)
    for layer in range(len(ref_b)):
        np.testing.assert_allclose(b.sink_mass[:, layer].numpy(), _np_sink_mass(ref_b[layer]), atol=1e-5)
        np.testing.assert_allclose(q.sink_mass[:, layer].numpy(), _np_sink_mass(ref_q[layer]), atol=1e-5)
        np.testing.assert_allclose(q.js[:, layer].numpy(), _np_js(ref_b[layer], ref_q[layer]), atol=1e-5)
    assert float(q.js.max()) > 0  # the quantized model's attention really moved


def test_hooks_are_removed(tiny):
    model, _ = tiny("llama")
    mods = attention_modules(model)
    before = [len(m._forward_hooks) for m in mods]  # transformers may hold its own hooks
    with capture(model, on_attn=lambda i, p: None, on_hidden=lambda i, h: None):
        assert [len(m._forward_hooks) for m in mods] == [n + 1 for n in before]
    assert [len(m._forward_hooks) for m in mods] == before
    with pytest.raises(RuntimeError):
        with capture(model, on_attn=lambda i, p: None):
            raise RuntimeError("boom")
    assert [len(m._forward_hooks) for m in mods] == before


def test_sdpa_model_is_switched_to_eager(tiny):
    from harness.models.sources import load_model, resolve_model

    model = load_model(resolve_model("tiny-llama").local_dir, attn="sdpa")
    st = forward_stats(model, torch.randint(0, 256, (1, 12)))
    assert model.config._attn_implementation == "eager"
    assert float(st.sink_mass.sum()) > 0


def test_missing_attention_weights_is_an_error(tiny):
    model, _ = tiny("llama")
    mods = attention_modules(model)
    # simulate SDPA's silent behaviour: the module returns no probabilities
    handles = [m.register_forward_hook(lambda mod, a, out: (out[0], None)) for m in mods]
    try:
        with pytest.raises(CaptureError, match="no attention probabilities"):
            forward_stats(model, torch.randint(0, 256, (1, 8)))
    finally:
        for h in handles:
            h.remove()


def test_unknown_architecture_is_a_clear_error(tiny):
    """A decoder layer without a recognisable attention module: an error naming it, never zeros."""
    model, _ = tiny("llama")
    odd = copy.deepcopy(model)
    for layer in odd.model.layers:
        layer.mixer = layer.self_attn
        del layer.self_attn
    with pytest.raises(CaptureError, match="decoder layer 0 has no attention module.*not supported"):
        forward_stats(odd, torch.randint(0, 256, (1, 8)))
