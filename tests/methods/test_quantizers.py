"""Each method really changes the model: module types, weight grids, moved logits."""

import importlib.util

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.methods import QuantContext, parse_spec, quantize
from harness.methods.rtn import fake_quantize
from harness.models.structure import linear_modules as quantizable_weights


def _ctx(tmp_path=None, name="llama"):
    from harness.models.sources import load_model, load_tokenizer, resolve_model

    src = resolve_model(f"tiny-{name}")
    tok = load_tokenizer(src.local_dir)
    texts = [f"calibration text number {i}: the quick brown fox jumps over the lazy dog. " * 4 for i in range(8)]
    return QuantContext(
        model_dir=src.local_dir,
        model_key=f"tiny-{name}",
        load_baseline=lambda: load_model(src.local_dir),
        tokenizer=tok,
        calibration=lambda n, seed: (texts[:n], "test-calib"),
        gptq_samples=8,
        progress=lambda m: None,
    ), src


def _logits(model, tok):
    ids = tok("hello quantized world", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


@pytest.mark.parametrize("spec", ["rtn-w4g16", "rtn-w3g32-asym", "rtn-w8", "rtn-w2g16"])
@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_rtn_weights_on_grid_and_logits_move(spec, arch, tiny):
    base, tok = tiny(arch)
    ctx, _ = _ctx(name=arch)
    cfg = parse_spec(spec)
    model, _ = quantize(cfg, ctx)
    ws = quantizable_weights(model)
    assert ws
    for name, mod, transposed in ws:
        w = mod.weight.detach().t() if transposed else mod.weight.detach()
        g = cfg.group or w.shape[1]
        groups = w.reshape(w.shape[0], -1, g)
        distinct = max(len(torch.unique(groups[r, k])) for r in range(0, w.shape[0], 7) for k in range(groups.shape[1]))
        assert distinct <= 2**cfg.bits, name
    assert (_logits(model, tok) - _logits(base, tok)).abs().max() > 1e-4


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="pip install bitsandbytes")
@pytest.mark.parametrize(
    "spec,module", [("bnb-int8", "Linear8bitLt"), ("bnb-nf4", "Linear4bit"), ("bnb-fp4", "Linear4bit")]
)
def test_bnb_module_types_and_logits(spec, module, tiny):
    base, tok = tiny("llama")
    ctx, _ = _ctx()
    model, _ = quantize(parse_spec(spec), ctx)
    assert module in ctx.info["quantized_module_types"]
    if module == "Linear4bit":  # on CPU: dense Linear layers holding bitsandbytes' own dequantized weights
        assert "dense Linear" in ctx.info["executed_as"]
    else:  # on CPU: bitsandbytes' int8 forward op for op (tests/methods/test_bnb_int8.py)
        assert "Int8MixedLinear" in ctx.info["executed_as"]
    assert module not in {type(m).__name__ for m in model.modules()}
    assert (_logits(model, tok) - _logits(base, tok)).abs().max() > 1e-4


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="pip install bitsandbytes")
@pytest.mark.parametrize("spec", ["bnb-nf4", "bnb-fp4"])
def test_bnb_4bit_dense_weights_are_bitsandbytes_own_dequantization(spec, tiny, monkeypatch):
    """The densified layers hold exactly what bitsandbytes dequantizes (bit for bit), and the logits agree with
    bitsandbytes' own CPU kernel within its bfloat16 activations' rounding (measured max |diff| 0.012 on this tiny
    model; the bound 0.05 leaves room for other CPUs)."""
    import bitsandbytes as bnb

    _, tok = tiny("llama")
    ctx, _ = _ctx()
    dense, _ = quantize(parse_spec(spec), ctx)
    monkeypatch.setenv("QS_BNB_KERNEL", "1")
    ctx2, _ = _ctx()
    kernel, _ = quantize(parse_spec(spec), ctx2)
    assert "executed_as" not in ctx2.info
    layers = [(n, m) for n, m in kernel.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert layers
    for name, mod in layers:  # before the kernel's first forward repacks its storage
        want = bnb.functional.dequantize_4bit(mod.weight.data, mod.weight.quant_state).float()
        got = dense.get_submodule(name).weight
        assert torch.equal(got, want.reshape(got.shape)), name
    diff = (_logits(dense, tok) - _logits(kernel, tok)).abs().max().item()
    assert diff < 0.05


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("gptqmodel") is None, reason="pip install gptqmodel")
def test_gptq_quantizes_caches_and_moves_logits(tiny, tmp_path, isolated_cache, monkeypatch):
    base, tok = tiny("llama")
    ctx, _ = _ctx()
    cfg = parse_spec("gptq-w4g32")
    monkeypatch.chdir(tmp_path)
    model, secs = quantize(cfg, ctx)
    assert ctx.info["cache_hit"] is False
    assert not (tmp_path / "logs").exists(), "GPTQModel's per-module logs go to the cache, not ./logs"
    kinds = ctx.info["quantized_module_types"]
    assert any("QuantLinear" in k or k in ("TorchLinear", "TorchQuantLinear") for k in kinds), kinds
    first = _logits(model, tok)
    assert (first - _logits(base, tok)).abs().max() > 1e-4
    ctx2, _ = _ctx()
    model2, secs2 = quantize(cfg, ctx2)
    assert ctx2.info["cache_hit"] is True
    assert torch.allclose(_logits(model2, tok), first, atol=1e-5)
    # The dense execution used for measurement gives the kernel's own numbers.
    monkeypatch.setenv("QS_GPTQ_KERNEL", "1")
    ctx3, _ = _ctx()
    kernel_model, _ = quantize(cfg, ctx3)
    assert "executed_as" not in ctx3.info
    assert any(hasattr(m, "qweight") for m in kernel_model.modules())
    assert torch.allclose(_logits(kernel_model, tok), first, atol=1e-5)


def test_fault_noop_is_caught_by_logit_gate(tiny):
    from harness.gates.decide import evaluate_gate
    from harness.gates.policy import load_policy
    from harness.metrics.views import GateView

    base, tok = tiny("llama")
    ctx, _ = _ctx()
    model, _ = quantize(parse_spec("fault-noop"), ctx)
    delta = float((_logits(model, tok) - _logits(base, tok)).abs().max())
    assert delta == 0.0
    limit = load_policy().gates_for("4")["logit_delta_max"]
    assert not evaluate_gate("fault-noop", "logit_delta_max", limit, GateView(delta))["passed"]


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="pip install bitsandbytes")
def test_path_loads_a_prequantized_checkpoint(tiny, tmp_path):
    """path:DIR compares an already quantized checkpoint: save a bnb-int8 model, load it back via path:."""
    base, tok = tiny("llama")
    ctx, _ = _ctx()
    model, _ = quantize(parse_spec("bnb-int8"), ctx)
    model.save_pretrained(tmp_path / "q")
    tok.save_pretrained(tmp_path / "q")
    ctx2, _ = _ctx()
    loaded, _ = quantize(parse_spec(f"path:{tmp_path / 'q'}"), ctx2)
    assert "Linear8bitLt" in {type(m).__name__ for m in loaded.modules()}
    assert ctx2.info["path"]["kind"] == "local"
    assert torch.allclose(_logits(loaded, tok), _logits(model, tok), atol=1e-3)


@settings(max_examples=80, deadline=None)
@given(
    arrays(np.float32, (4, 32), elements=st.floats(-50, 50, width=32)),
    st.integers(2, 8),
    st.sampled_from([None, 8, 16, 32]),
    st.booleans(),
)
def test_rtn_error_at_most_half_step_and_grid(w, bits, group, asym):
    t = torch.tensor(w)
    q = fake_quantize(t, bits, group, asym)
    g = group or 32
    x, qx = t.reshape(4, -1, g).double(), q.reshape(4, -1, g).double()
    if asym:
        step = (x.amax(-1) - x.amin(-1)) / (2**bits - 1)
    else:
        step = x.abs().amax(-1) / (2 ** (bits - 1) - 1)
    err = (x - qx).abs().amax(-1)
    # float32 arithmetic adds a few ulps of the group's magnitude
    slack = 8 * np.finfo(np.float32).eps * x.abs().amax(-1)
    assert torch.all(err <= step / 2 * (1 + 1e-5) + slack + 1e-7)
    for r in range(4):
        for k in range(x.shape[1]):
            assert len(torch.unique(qx[r, k])) <= 2**bits
