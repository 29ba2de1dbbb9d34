"""The methods people ship (AWQ, FP8, torchao, HQQ, GGUF types, compressed-tensors/AWQ checkpoints) really ran:
the values they left behind lie on their grid, and the logits moved."""

import importlib.util
import json
import sys

import numpy as np
import pytest
import torch

from harness.errors import MissingBackend, UsageError
from harness.methods import QuantContext, bit_class, get_method, parse_spec, quantize
from harness.models.structure import linear_modules

TEXTS = [f"calibration text number {i}: the quick brown fox jumps over the lazy dog. " * 4 for i in range(8)]


def _ctx(model_dir, tok):
    from harness.models.sources import load_model

    return QuantContext(
        model_dir=model_dir,
        model_key=str(model_dir),
        load_baseline=lambda: load_model(model_dir),
        tokenizer=tok,
        calibration=lambda n, seed: (TEXTS[:n], "test-calib"),
        gptq_samples=8,
        progress=lambda m: None,
    )


def _run(spec, tiny, arch="llama"):
    from harness.models.sources import resolve_model

    base, tok = tiny(arch)
    ctx = _ctx(resolve_model(f"tiny-{arch}").local_dir, tok)
    model, _ = quantize(parse_spec(spec), ctx)
    return base, tok, model, ctx


def _logits(model, tok):
    ids = tok("hello quantized world", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def _moved(model, base, tok):
    return float((_logits(model, tok) - _logits(base, tok)).abs().max()) > 1e-4


def _pairs(model, base):
    """(name, quantized weight [out, in], baseline weight [out, in]) for every decoder Linear."""
    theirs = {n: m for n, m, _ in linear_modules(base)}
    return [(n, m.weight.detach().float(), theirs[n].weight.detach().float()) for n, m, _ in linear_modules(model)]


def _max_distinct(w, group):
    g = w.reshape(-1, group)
    return max(len(torch.unique(g[i])) for i in range(g.shape[0]))


def need(pkg, install):
    if importlib.util.find_spec(pkg) is None:
        pytest.skip(f"{pkg} is not installed: {install}")


# --- FP8 ---------------------------------------------------------------------------------------------


def test_fp8_round_trip_hand_worked():
    from harness.methods.fp8 import fp8_round_trip

    # per row: scale = 2/448; 1.0 -> 224 (exact in E4M3), 0.3 -> 67.2 -> 64 (steps of 8 in [64, 128)), -2 -> -448
    q, scale = fp8_round_trip(torch.tensor([[1.0, 0.3, -2.0]]), "e4m3")
    assert torch.allclose(q, torch.tensor([[1.0, 64 * 2 / 448, -2.0]]), rtol=1e-6)
    assert torch.allclose(scale, torch.tensor([[2 / 448]]))
    # E5M2 has 2 mantissa bits: 0.3 / (2/57344) = 8601.6 -> 8192 (steps of 2048 in [8192, 16384))
    q, _ = fp8_round_trip(torch.tensor([[1.0, 0.3, -2.0]]), "e5m2")
    assert torch.allclose(q[0, 1], torch.tensor(8192 * 2 / 57344), rtol=1e-6)


@pytest.mark.parametrize(
    "spec,fmt,per_tensor", [("fp8-e4m3", "e4m3", False), ("fp8-e5m2", "e5m2", False), ("fp8-e4m3-pt", "e4m3", True)]
)
def test_fp8_weights_are_float8_values_times_scale(spec, fmt, per_tensor, tiny):
    base, tok, model, ctx = _run(spec, tiny)
    f8 = {"e4m3": torch.float8_e4m3fn, "e5m2": torch.float8_e5m2}[fmt]
    fmax = torch.finfo(f8).max
    for name, w, w0 in _pairs(model, base):
        scale = (w0.abs().amax() if per_tensor else w0.abs().amax(-1, keepdim=True)) / fmax  # from the baseline
        units = w / scale
        assert torch.allclose(units.to(f8).float(), units, rtol=1e-5, atol=0), name  # representable in float8
        assert not torch.equal(w, w0), name
    assert ctx.info["simulated"] is True and "simulated" in ctx.info["executed_as"]
    assert _moved(model, base, tok)


def test_w8a8_fp8_quantizes_each_token_of_every_input(tiny):
    base, tok, model, ctx = _run("w8a8-fp8", tiny)
    mods = [m for _, m, _ in linear_modules(model)]
    assert {type(m).__name__ for m in mods} == {"SimulatedFP8ActLinear"}
    x = torch.randn(2, 5, mods[0].in_features) * torch.tensor([1.0, 30.0, 0.01, 5.0, 1e3])[None, :, None]
    amax = x.abs().amax(-1, keepdim=True)  # one scale per token
    expected_in = (x / (amax / 448)).to(torch.float8_e4m3fn).float() * (amax / 448)
    with torch.no_grad():
        out = mods[0](x)
        assert torch.allclose(out, torch.nn.functional.linear(expected_in, mods[0].weight), atol=1e-5)
        assert not torch.allclose(out, torch.nn.functional.linear(x, mods[0].weight), atol=1e-5)
    assert ctx.info["simulated"] is True and _moved(model, base, tok)


# --- torchao -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec,tensor,bits,group",
    [
        ("torchao-int8wo", "Int8Tensor", 8, None),
        ("torchao-int4wo-g32", "IntxUnpackedToInt8Tensor", 4, 32),
        ("torchao-int8dq", "Int8Tensor", 8, None),
    ],
)
def test_torchao_weights_are_its_tensors_on_the_grid(spec, tensor, bits, group, tiny):
    need("torchao", "pip install 'torchao>=0.18'")
    base, tok, model, ctx = _run(spec, tiny)
    assert ctx.info["quantized_module_types"] == [tensor]
    for _, mod, _ in linear_modules(model):
        w = mod.weight
        assert type(w).__name__ == tensor
        assert _max_distinct(w.dequantize().float(), group or w.shape[1]) <= 2**bits
        if spec == "torchao-int8dq":
            assert w.act_quant_kwargs is not None  # activations are quantized too
    assert _moved(model, base, tok)


def test_torchao_int4_config_per_device():
    """CPU: torchao's int4 CPU path (Intx, asymmetric, the spec's group); CUDA with bf16: Int4WeightOnlyConfig."""
    need("torchao", "pip install 'torchao>=0.18'")
    from harness.methods.torchao import torchao_config

    cfg = parse_spec("torchao-int4wo-g64")
    cpu = torchao_config(cfg, "cpu", "fp32")
    assert type(cpu).__name__ == "IntxWeightOnlyConfig" and cpu.weight_dtype == torch.int4
    assert cpu.granularity.group_size == 64 and cpu.mapping_type.name == "ASYMMETRIC"
    cuda = torchao_config(cfg, "cuda", "bf16")
    assert type(cuda).__name__ == "Int4WeightOnlyConfig" and cuda.group_size == 64


# --- HQQ ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec,bits,group", [("hqq-w4g32", 4, 32), ("hqq-w2g16", 2, 16), ("hqq-w3g64", 3, 64)])
def test_hqq_weights_are_hqqs_own_dequantized_values(spec, bits, group, tiny):
    need("hqq", "pip install 'hqq>=0.2'")
    from hqq.core.quantize import BaseQuantizeConfig, HQQLinear

    base, tok, model, ctx = _run(spec, tiny)
    for i, (name, w, w0) in enumerate(_pairs(model, base)):
        assert _max_distinct(w, group) <= 2**bits, name
        if i % 9 == 0:  # a few layers against HQQLinear's forward on the baseline weights
            lin = torch.nn.Linear(w0.shape[1], w0.shape[0], bias=False)
            lin.weight.data = w0.clone()
            ref = HQQLinear(
                lin, BaseQuantizeConfig(nbits=bits, group_size=group), compute_dtype=torch.float32, device="cpu"
            )
            x = torch.randn(3, w0.shape[1])
            assert torch.allclose(ref(x), x @ w.T, atol=1e-5), name
    assert ctx.info["quantized_module_types"] == ["HQQLinear"] and _moved(model, base, tok)


# --- GGUF types --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "qtype,levels", [("q4_0", 16), ("q4_1", 16), ("q5_0", 32), ("q5_1", 32), ("q8_0", 256), ("mxfp4", 16)]
)
def test_gguf_weights_equal_ggufs_own_dequantize(qtype, levels, tiny):
    from gguf import GGMLQuantizationType, quants

    base, tok, model, _ = _run(f"gguf-{qtype}", tiny)
    t = GGMLQuantizationType[qtype.upper()]
    for name, w, w0 in _pairs(model, base):
        raw = quants.quantize(w0.numpy(), t)
        assert raw.dtype == np.uint8 and raw.nbytes < w0.numel() * 4  # really packed
        assert np.array_equal(w.numpy(), quants.dequantize(raw, t)), name
        assert _max_distinct(w, 32) <= levels, name
    assert _moved(model, base, tok)


def test_gguf_ternary_types_need_256_wide_rows_and_are_ternary(tiny):
    from harness.methods.gguf import gguf_round_trip

    with pytest.raises(UsageError, match="blocks of 256 weights.*input width 64"):
        _run("gguf-tq2_0", tiny)
    w = torch.randn(4, 512)
    for qtype in ("tq1_0", "tq2_0"):
        q = gguf_round_trip(w, qtype)
        assert _max_distinct(q, 256) <= 3 and not torch.equal(q, w)


# --- AWQ and checkpoints through path: ---------------------------------------------------------------


@pytest.fixture(scope="module")
def awq_model_dir(tmp_path_factory):
    """A small Llama whose output widths are multiples of 64 (GPTQModel's AWQ walks rows in blocks of 64)."""
    import transformers

    from harness.models.tiny import byte_tokenizer

    cfg = transformers.LlamaConfig(
        vocab_size=272,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        bos_token_id=256,
        eos_token_id=257,
        pad_token_id=258,
    )
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("awq-base")
    transformers.AutoModelForCausalLM.from_config(cfg).save_pretrained(out)
    byte_tokenizer().save_pretrained(out)
    return out


def _awq(model_dir, tok):
    """quantize awq-w4g32 (calibrated into the cache): (model, info)."""
    ctx = _ctx(model_dir, tok)
    model, _ = quantize(parse_spec("awq-w4g32"), ctx)
    return model, ctx.info


@pytest.mark.slow
def test_awq_is_activation_aware_on_the_grid_cached_and_loads_through_path(awq_model_dir, isolated_cache):
    need("gptqmodel", "pip install gptqmodel")
    from harness.methods.rtn import fake_quantize
    from harness.models.sources import load_model, load_tokenizer

    tok = load_tokenizer(awq_model_dir)
    model, info = _awq(awq_model_dir, tok)
    base = load_model(awq_model_dir)
    assert info["cache_hit"] is False
    assert any("Awq" in k for k in info["quantized_module_types"]), info
    differs_from_rtn = 0
    for name, w, w0 in _pairs(model, base):
        assert _max_distinct(w, 32) <= 16, name
        differs_from_rtn += not torch.equal(w, fake_quantize(w0, 4, 32, asym=True))
    assert differs_from_rtn  # the per-channel scale search changed what plain RTN would give
    first = _logits(model, tok)
    assert (first - _logits(base, tok)).abs().max() > 1e-4
    again, info2 = _awq(awq_model_dir, tok)
    assert info2["cache_hit"] is True and torch.allclose(_logits(again, tok), first, atol=1e-6)
    # the cached directory is an AWQ checkpoint: path: reads its bit class and runs GPTQModel's kernel
    cfg = parse_spec(f"path:{info['cache_dir']}")
    assert bit_class(cfg) == "4"
    ctx = _ctx(awq_model_dir, tok)
    loaded, _ = quantize(cfg, ctx)
    assert ctx.info["format"] == "awq" and any("Awq" in type(m).__name__ for m in loaded.modules())
    assert torch.allclose(_logits(loaded, tok), first, atol=0.05)  # the CPU kernel computes in bf16


def _compressed_tensors_checkpoint(model, out, bits=4, group=32):
    """Write model as a compressed-tensors pack-quantized W{bits}A16 checkpoint (scales from min/max per group)."""
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (
        QuantizationArgs,
        QuantizationConfig,
        QuantizationScheme,
        QuantizationStatus,
        apply_quantization_config,
    )
    from compressed_tensors.quantization.utils import calculate_qparams

    args = QuantizationArgs(num_bits=bits, type="int", symmetric=True, strategy="group", group_size=group)
    apply_quantization_config(
        model,
        QuantizationConfig(
            config_groups={"group_0": QuantizationScheme(targets=["Linear"], weights=args)}, ignore=["lm_head"]
        ),
    )
    for _, mod in model.named_modules():
        if hasattr(mod, "weight_scale"):
            g = mod.weight.detach().reshape(mod.weight.shape[0], -1, group)
            scale, zero = calculate_qparams(g.amin(-1), g.amax(-1), args)
            mod.weight_scale.data.copy_(scale.to(mod.weight_scale.dtype))
            mod.weight_zero_point.data.copy_(zero.to(mod.weight_zero_point.dtype))
            mod.quantization_status = QuantizationStatus.FROZEN
    compressor = ModelCompressor.from_pretrained_model(model, quantization_format="pack-quantized")
    compressor.compress_model(model)
    model.save_pretrained(out)
    compressor.update_config(out)


def test_path_loads_a_compressed_tensors_checkpoint_with_its_bit_class(tiny, tmp_path):
    need("compressed_tensors", "pip install 'compressed-tensors>=0.20'")
    from harness.models.sources import load_model, resolve_model

    base, tok = tiny("llama")
    src = resolve_model("tiny-llama").local_dir
    out = tmp_path / "ct"
    _compressed_tensors_checkpoint(load_model(src), out)
    tok.save_pretrained(out)
    q = json.loads((out / "config.json").read_text())["quantization_config"]
    assert q["quant_method"] == "compressed-tensors" and q["format"] == "pack-quantized"
    cfg = parse_spec(f"path:{out}")
    assert bit_class(cfg) == "4"
    ctx = _ctx(src, tok)
    model, _ = quantize(cfg, ctx)
    assert ctx.info["format"] == "compressed-tensors"
    moved = _moved(model, base, tok)  # the first forward decompresses the packed weights
    for name, w, _ in _pairs(model, base):
        assert _max_distinct(w, 32) <= 16, name
    assert moved


def test_path_names_the_known_formats_for_an_unknown_one(tmp_path):
    from types import SimpleNamespace

    (tmp_path / "config.json").write_text(json.dumps({"quantization_config": {"quant_method": "mystery", "bits": 4}}))
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(1)}, str(tmp_path / "model.safetensors"))
    cfg = parse_spec(f"path:{tmp_path}")
    with pytest.raises(
        UsageError,
        match="format 'mystery' is not one quantsink knows; known formats: awq, bitsandbytes, compressed-tensors",
    ):
        cfg.preflight(SimpleNamespace(allow_pickle=False))


# --- grammar, bit classes, availability --------------------------------------------------------------


@pytest.mark.parametrize(
    "spec,canonical,cls,bpw",
    [
        ("awq-w4g128", "awq-w4g128", "4", 4 + 20 / 128),
        ("awq-w3", "awq-w3g128", "3", 3 + 19 / 128),
        ("fp8-e4m3-pc", "fp8-e4m3", "8", 8 + 32 / 576),
        ("fp8-e5m2-pt", "fp8-e5m2-pt", "8", 8.0),
        ("w8a8-fp8", "w8a8-fp8", "8", 8 + 32 / 576),
        ("torchao-int8wo", "torchao-int8wo", "8", 8 + 32 / 576),
        ("torchao-int4wo", "torchao-int4wo-g128", "4", 4.25),
        ("torchao-int8dq", "torchao-int8dq", "8", 8 + 32 / 576),
        ("hqq-w4g64", "hqq-w4g64", "4", 4.5),
        ("hqq-w2g16", "hqq-w2g16", "2", 4.0),
        ("gguf-q4_0", "gguf-q4_0", "4", 4.5),
        ("gguf-q5_1", "gguf-q5_1", "5", 6.0),
        ("gguf-q8_0", "gguf-q8_0", "8", 8.5),
        ("gguf-mxfp4", "gguf-mxfp4", "4", 4.25),
        ("gguf-tq1_0", "gguf-tq1_0", "2", 1.6875),
    ],
)
def test_specs_bit_classes_and_bits_per_weight(spec, canonical, cls, bpw):
    cfg = parse_spec(spec)
    assert cfg.spec == canonical and bit_class(cfg) == cls
    own = cfg.bits_per_weight
    assert (own(576) if callable(own) else own) == pytest.approx(bpw)
    assert parse_spec(canonical) == cfg


@pytest.mark.parametrize(
    "spec,says",
    [
        ("awq-w5g128", "AWQ takes 2, 3, 4, 8 bits, not 5"),
        ("awq-w4g96", "AWQ takes groups 16, 32, 64, 128, not 96"),
        ("fp8-e3m4", "unknown FP8 format 'e3m4'"),
        ("fp8-w4", "FP8 has no 4-bit mode"),
        ("fp8-e4m3-pc-pt", "give one scale granularity"),
        ("w8a8-int8", "int8 activations: torchao-int8dq"),
        ("torchao-int4wo-g16", "takes groups 32, 64, 128"),
        ("torchao-int2wo", "unknown torchao mode 'int2wo'"),
        ("hqq-w5g64", "hqq takes 2, 3, 4, 8 bits, not 5"),
        ("hqq-w4g48", "powers of two"),
        ("gguf-q4_k", "K-quants (Q4_K) are not offered"),
        ("gguf-q3_0", "unknown GGUF type 'q3_0'"),
    ],
)
def test_bad_specs_say_what_each_method_offers(spec, says):
    with pytest.raises(UsageError) as e:
        parse_spec(spec)
    msg = str(e.value)
    assert says in msg and "; valid: " in msg and "\n" not in msg, msg


@pytest.mark.parametrize(
    "spec,fits",
    [
        ("awq-w4g128", "awq groups that fit this model: 64, 32, 16 (e.g. awq-w4g64)"),
        ("torchao-int4wo-g128", "torchao groups that fit this model: 64, 32 (e.g. torchao-int4wo-g64)"),
        ("hqq-w3g128", "hqq groups that fit this model: 64, 32, 16, 8 (e.g. hqq-w3g64)"),
    ],
)
def test_a_group_the_model_cannot_take_names_the_groups_that_fit(spec, fits):
    """tiny-llama's o_proj reads 64 features: group 128 is a usage error naming the groups that fit."""
    from types import SimpleNamespace

    from harness.models.sources import resolve_model
    from harness.models.structure import meta_model

    meta = meta_model(resolve_model("tiny-llama").local_dir)
    with pytest.raises(UsageError) as e:
        parse_spec(spec).preflight(SimpleNamespace(meta=meta))
    assert "does not divide the input width 64" in str(e.value) and str(e.value).endswith(fits), str(e.value)


@pytest.mark.parametrize("name,pkg", [("awq", "gptqmodel"), ("torchao", "torchao"), ("hqq", "hqq"), ("gguf", "gguf")])
def test_a_missing_backend_names_its_install_line(name, pkg, monkeypatch):
    method = get_method(name)
    monkeypatch.setitem(sys.modules, pkg, None)  # find_spec(pkg) is None: the package looks absent
    assert method.missing() == f"needs '{pkg}': {method.install}" and "pip install" in method.install
    with pytest.raises(MissingBackend, match="pip install"):
        method.load_handler()


def test_methods_listing_shows_every_shipped_method():
    from harness.methods import availability

    listed = {name: state for name, _, state in availability()}
    for name in ("awq", "fp8", "w8a8", "torchao", "hqq", "gguf"):
        assert listed[name] == "available" or listed[name].startswith("needs '"), (name, listed[name])


def test_checkpoint_cache_identity_follows_its_content(tmp_path):
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "config.json").write_text(json.dumps({"a": 1}))
    q = parse_spec(f"path:{ck}")
    first = q.cache_identity()
    (ck / "config.json").write_text(json.dumps({"a": 2}))
    assert q.cache_identity() != first
    assert parse_spec("path:some-org/some-model").cache_identity() is None
