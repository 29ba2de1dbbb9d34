"""Int8MixedLinear is bitsandbytes' CPU LLM.int8 forward, bit for bit: random layers with outlier columns, the
batch-composition dependence, the training path, the saved format, and a tiny model through the registry.

Every comparison is torch.equal (tolerance 0): the swap runs the same float32 operations on the same values in
the same order as bitsandbytes' default kernels, so any difference is a bug, not rounding.
"""

import importlib.util
import logging

import pytest
import torch

pytestmark = pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="pip install bitsandbytes")

SMOLLM2 = [(576, 1536), (1536, 576), (576, 192)]  # gate/up, down, k/v of SmolLM2-135M


@pytest.fixture(autouse=True)
def _quiet_bnb():
    """bitsandbytes logs a warning at every int8 call on float32 inputs."""
    log = logging.getLogger("bitsandbytes")
    level = log.level
    log.setLevel(logging.ERROR)
    yield
    log.setLevel(level)


def _pair(i, o, bias=False, threshold=6.0, seed=0):
    """(bitsandbytes Linear8bitLt quantized on the CPU, its Int8MixedLinear)."""
    import bitsandbytes as bnb

    from harness.methods.bnb_int8 import Int8MixedLinear

    g = torch.Generator().manual_seed(seed)
    mod = bnb.nn.Linear8bitLt(i, o, bias=bias, has_fp16_weights=False, threshold=threshold)
    w = torch.randn(o, i, generator=g) * 0.05
    mod.weight = bnb.nn.Int8Params(w, has_fp16_weights=False, requires_grad=False)
    if bias:
        mod.bias = torch.nn.Parameter(torch.randn(o, generator=g) * 0.1, requires_grad=False)
    mod = mod.to("cpu").eval()  # quantizes
    return mod, Int8MixedLinear.of(mod, int_mm=False).eval()


def _inputs(shape, seed=1):
    """Gaussian activations with planted outliers: a large one, one just over, one exactly at the threshold, and
    the fp16 value 6.09765625 (a threshold of 6.099 rounds down to it in fp16)."""
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 2.0
    rows = x.view(-1, shape[-1])
    rows[0, 5] = 40.0
    rows[-1, 7] = -6.1
    rows[rows.shape[0] // 2, 11] = 6.0
    rows[0, 13] = 6.09765625
    return x


def _both(mod, swap, x):
    with torch.no_grad():
        return mod(x), swap(x)


@pytest.mark.parametrize("i,o", SMOLLM2)
@pytest.mark.parametrize("shape", [(16, 1), (4, 128), (1, 1), (3,)])
def test_smollm2_shapes_bit_identical(i, o, shape):
    """Decoding (16 rows x 1 token), corpus (4 x 128), a single row, a 2-D input: equal to the last bit."""
    mod, swap = _pair(i, o)
    want, got = _both(mod, swap, _inputs((*shape, i)))
    assert got.dtype == want.dtype == torch.float32 and got.shape == want.shape
    assert torch.equal(got, want)


@pytest.mark.parametrize("threshold", [6.0, 6.099, 5.3, 0.0])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("bias", [False, True])
def test_thresholds_dtypes_bias_bit_identical(threshold, dtype, bias):
    """Thresholds exact and not exact in fp16 (rounded up, rounded down), none; every activation dtype (bitsandbytes
    quantizes their fp16 rounding and computes the outlier part in the input's dtype); bias. Inputs of several
    dtypes in a row also move the bias's dtype as Linear8bitLt does."""
    mod, swap = _pair(96, 40, bias=bias, threshold=threshold)
    for shape in [(5, 96), (2, 7, 96), (1, 96)]:
        want, got = _both(mod, swap, _inputs(shape).to(dtype))
        assert got.dtype == want.dtype == dtype
        assert torch.equal(got, want), shape


def _edge_cases(k):
    nan, inf = float("nan"), float("inf")
    out = {}
    for name, shape, where, value in [
        ("a zero row in a batch", (4, k), (1, slice(None)), 0.0),
        ("a single zero row", (1, k), (0, slice(None)), 0.0),
        ("a row of outliers in a batch", (3, k), (1, slice(None)), 7.0),
        ("a single row of outliers", (1, k), (0, slice(None)), 7.0),
        ("NaN in an outlier column", (4, k), (2, 3), nan),
        ("NaN", (4, k), (2, 9), nan),
        ("inf", (4, k), (2, 9), inf),
        ("beyond fp16's range", (4, k), (2, 9), 1e6),
    ]:
        x = _inputs(shape)
        x[0, 3] = 20.0
        x[where] = value
        out[name] = x
    return out


def test_edge_inputs_give_bitsandbytes_answers_nan_for_nan():
    """Zero rows (absmax 0), rows of outliers only, NaN (also hiding an outlier column's maximum), inf, values
    beyond fp16: the same outputs, NaN where bitsandbytes gives NaN."""
    mod, swap = _pair(64, 24, bias=True)
    for name, x in _edge_cases(64).items():
        want, got = _both(mod, swap, x)
        assert torch.equal(got.isnan(), want.isnan()), name
        assert torch.equal(got.nan_to_num(), want.nan_to_num()), name


def test_outlier_columns_depend_on_the_batch_as_in_bitsandbytes():
    """Row 1 has no outlier; alone it is all int8, next to row 0 (an outlier in column 5) its column 5 runs in
    float32 and the int8 part's scale changes. Both answers are bitsandbytes' own."""
    mod, swap = _pair(576, 1536)
    x = torch.randn(2, 576, generator=torch.Generator().manual_seed(3))
    x[0, 5] = 30.0
    x[1, 5] = 4.0
    alone_want, alone_got = _both(mod, swap, x[1:])
    batch_want, batch_got = _both(mod, swap, x)
    assert torch.equal(alone_got, alone_want) and torch.equal(batch_got, batch_want)
    assert not torch.equal(batch_got[1], alone_got[0])  # the dependence is real, and reproduced


def test_training_mode_is_bitsandbytes_cpu_training_path():
    """In training mode bitsandbytes' CPU forward is MatMul8bitFp (x @ dequantized W); so is the swap's."""
    mod, swap = _pair(96, 40, bias=True)
    mod.train()
    swap.train()
    want, got = _both(mod, swap, _inputs((4, 96)))
    assert torch.equal(got, want)


def test_int_mm_path_equals_the_float_path():
    """bitsandbytes multiplies with torch._int_mm on AVX-512 CPUs, else in float32; the products are integers below
    2^24 for 576 inputs (576 * 127^2), so both give the same numbers."""
    from harness.methods.bnb_int8 import Int8MixedLinear

    mod, swap = _pair(576, 192)
    via_int = Int8MixedLinear.of(mod, int_mm=True).eval()
    x = _inputs((16, 1, 576))
    with torch.no_grad():
        assert torch.equal(via_int(x), swap(x))


def test_state_dict_is_linear8bitlt_format():
    """Same keys and tensors as Linear8bitLt (weight = CB, bias, SCB, weight_format): save_pretrained writes a
    bitsandbytes checkpoint (test_quantizers' path: test loads one back)."""
    mod, swap = _pair(96, 40, bias=True)
    with torch.no_grad():
        mod(_inputs((2, 96)))  # after the first forward bitsandbytes keeps CB / SCB in its state
    want, got = mod.state_dict(), swap.state_dict()
    assert sorted(got) == sorted(want)
    for k in want:
        assert torch.equal(got[k], want[k]) and got[k].dtype == want[k].dtype, k
    assert isinstance(swap, torch.nn.Linear)


def _ctx():
    from harness.methods import QuantContext
    from harness.models.sources import load_model, load_tokenizer, resolve_model

    src = resolve_model("tiny-llama")
    return QuantContext(
        model_dir=src.local_dir,
        model_key="tiny-llama",
        load_baseline=lambda: load_model(src.local_dir),
        tokenizer=load_tokenizer(src.local_dir),
        progress=lambda m: None,
    )


def _plant_outlier_features(model):
    """Scale two features of every norm that feeds a Linear, as trained LLMs' outlier features do (a random tiny
    model's activations never reach 6)."""
    for layer in model.model.layers:
        for norm in (layer.input_layernorm, layer.post_attention_layernorm):
            norm.weight.data[[3, 17]] *= 40.0


def test_tiny_model_through_the_registry_bit_identical(tiny, monkeypatch):
    """bnb-int8 through quantize(): every Linear8bitLt swapped, logits equal to bitsandbytes' kernel's (QS_BNB_KERNEL=1)
    on a padded batch and on one prompt alone, with outlier columns in play."""
    import bitsandbytes as bnb

    from harness.methods import parse_spec, quantize
    from harness.methods.bnb_int8 import Int8MixedLinear

    ctx = _ctx()
    swapped, _ = quantize(parse_spec("bnb-int8"), ctx)
    assert "Int8MixedLinear" in ctx.info["executed_as"]
    layers = [m for m in swapped.modules() if isinstance(m, Int8MixedLinear)]
    assert layers and not any(isinstance(m, bnb.nn.Linear8bitLt) for m in swapped.modules())
    assert f"({len(layers)} layers)" in ctx.info["executed_as"]
    assert not any(m.training for m in layers)
    monkeypatch.setenv("QS_BNB_KERNEL", "1")
    ctx2 = _ctx()
    kernel, _ = quantize(parse_spec("bnb-int8"), ctx2)
    assert "executed_as" not in ctx2.info
    assert sum(isinstance(m, bnb.nn.Linear8bitLt) for m in kernel.modules()) == len(layers)
    for model in (swapped, kernel):
        _plant_outlier_features(model)
    seen = []
    hooks = [m.register_forward_pre_hook(lambda m, a: seen.append(a[0].abs().max().item())) for m in layers]
    tok = ctx.tokenizer
    tok.padding_side = "left"
    tok.pad_token = tok.pad_token or tok.eos_token
    batch = tok(
        ["hello quantized world", "a longer second prompt, so the first is padded"], return_tensors="pt", padding=True
    )
    alone = tok(["hello quantized world"], return_tensors="pt")
    with torch.no_grad():
        for enc in (batch, alone):
            assert torch.equal(swapped(**enc).logits, kernel(**enc).logits)
    for h in hooks:
        h.remove()
    assert max(seen) >= 6.0  # the outlier path ran


def test_keep_swaps_baseline_modules_into_the_int8_model():
    """-keep: finds the swapped layers by name (they are nn.Linear, as Linear8bitLt is)."""
    from harness.methods import parse_spec, quantize
    from harness.methods.bnb_int8 import Int8MixedLinear

    ctx = _ctx()
    model, _ = quantize(parse_spec("bnb-int8-keep:layers.1.mlp.down_proj"), ctx)
    assert type(model.model.layers[1].mlp.down_proj) is torch.nn.Linear
    assert isinstance(model.model.layers[1].mlp.up_proj, Int8MixedLinear)


def test_a_bitsandbytes_with_its_own_cpu_int8_kernels_keeps_linear8bitlt(monkeypatch):
    """The swap reproduces bitsandbytes' pure-torch default kernels; a build that registers CPU kernels of its own
    for them runs as it is."""
    import bitsandbytes as bnb

    from harness.methods import bnb as bnb_method
    from harness.methods import parse_spec, quantize

    assert bnb_method.int8_in_torch_is_faithful()
    monkeypatch.setattr(bnb_method, "_bnb_cpu_kernel", lambda op: op == "int8_mm_dequant")
    ctx = _ctx()
    model, _ = quantize(parse_spec("bnb-int8"), ctx)
    assert "executed_as" not in ctx.info
    assert any(isinstance(m, bnb.nn.Linear8bitLt) for m in model.modules())


def test_int8_in_torch_swaps_cpu_modules_and_leaves_dispatched_ones():
    """A Linear8bitLt with an accelerate hook (its weights moved in by the hook) keeps bitsandbytes' module."""
    from harness.methods.bnb import int8_in_torch
    from harness.methods.bnb_int8 import Int8MixedLinear

    plain, _ = _pair(96, 40)
    hooked, _ = _pair(96, 40, seed=1)
    hooked._hf_hook = object()
    model = torch.nn.Sequential(plain, hooked)
    assert int8_in_torch(model) == 1
    assert isinstance(model[0], Int8MixedLinear) and model[1] is hooked
