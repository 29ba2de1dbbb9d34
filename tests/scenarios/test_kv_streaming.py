"""Issue 23 item 6: KV-cache configurations stream through their own quantized cache, which evicts (sink +
window) and stores the kept positions as the backend's quantized cache would.

The evicting cache is checked against transformers' QuantizedCache (nothing evicted: the same logits, bit for
bit) and against a reference written out by hand on tiny-llama: embeddings, each layer's projections, RoPE,
attention over the kept keys under the hand-built visibility rule, with the stored older positions
quantized-dequantized by hand (quanto: min/max groups of the flattened tensor, itself checked against quanto)
or by hqq's own quantizer, following the residual/flush rule of transformers' QuantizedLayer.
"""

import numpy as np
import pytest
import torch

from harness.measure.evicting import evicting_quantized_cache, quantized_count, set_keep
from harness.measure.kvcache import KVSpec, cache_kwarg, make_cache
from harness.scenarios.streaming import stream

pytest.importorskip("optimum.quanto")
pytest.importorskip("hqq")

SINKS, WINDOW, CHUNK, RESIDUAL = 3, 16, 8, 15  # the residual fills to exactly 15 (flush) on every other chunk;
# between flushes the oldest quantized window keys are dropped (the requantize path)
# Tolerance on per-token NLL (nats). The reference repeats the model's float32 operations (same modules, same
# shapes); what can differ is the order of a few reductions (softmax, matmul blocking): about 1e-6 on the
# activations. A float difference can in principle move an element across a rounding boundary of the 4-bit grid
# (one step: range / 15 of its group); that shows as a jump far above 1e-6, so 1e-4 catches any rule mismatch
# (a wrong position kept, quantized or not: ~1e-2 here, asserted below) while tolerating float noise.
TOL = 1e-4


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 256, (2, 64), generator=torch.Generator().manual_seed(1))


def _fq_quanto(x: torch.Tensor, bits: int, group: int) -> torch.Tensor:
    """Quanto's KV quantization written out: groups of `group` consecutive elements of the flattened tensor
    (axis 0), min/max affine grid of 2^bits levels, round to nearest, dequantized."""
    flat = x.reshape(-1, group)
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    scale = (hi - lo) / (2**bits - 1)
    q = torch.clamp(torch.round((flat - lo) / scale), 0, 2**bits - 1)
    return (q * scale + lo).reshape(x.shape)


def _fq_hqq(x: torch.Tensor, bits: int, group: int) -> torch.Tensor:
    """hqq's own quantize -> dequantize, with the arguments transformers' HQQ layer passes (axis 0)."""
    from hqq.core.quantize import Quantizer

    q, meta = Quantizer.quantize(x, axis=0, device=str(x.device), compute_dtype=x.dtype, nbits=bits, group_size=group)
    meta["compute_dtype"] = x.dtype
    return Quantizer.dequantize(q, meta)


FQ = {"quanto": _fq_quanto, "hqq": _fq_hqq}


def test_hand_quanto_grid_equals_quanto_quantize_dequantize():
    from transformers.cache_utils import QuantoQuantizedLayer

    x = torch.randn(2, 2, 10, 16, generator=torch.Generator().manual_seed(0))
    for bits, group in ((4, 32), (2, 16), (4, 8)):
        layer = QuantoQuantizedLayer(nbits=bits, q_group_size=group)
        backend = layer._dequantize(layer._quantize(x, axis=0))
        mine = _fq_quanto(x, bits, group)
        assert (backend - mine).abs().max() < 1e-6
        assert (mine - x).abs().max() > 1e-3  # it quantizes


@torch.no_grad()
def _reference(model, ids, backend: str, bits: int, group: int, policy: str, residual: int = RESIDUAL) -> torch.Tensor:
    """Per-token NLL [B, T-1] of a llama model streamed in CHUNK-token calls, by hand (see the module docstring)."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    inner, fq = model.model, FQ[backend]
    B, T = ids.shape
    H, kvH = model.config.num_attention_heads, model.config.num_key_value_heads
    hd = model.config.hidden_size // H
    held: list[int] = []  # positions the cache holds, oldest first
    n_q = 0  # of them, the first n_q are stored quantized; the rest are the full-precision residual
    state = [None] * len(inner.layers)  # per layer (K, V) as stored: dequantized older positions, then residual
    logits = []
    for a in range(0, T, CHUNK):
        b = min(a + CHUNK, T)
        q_pos, k_pos = list(range(a, b)), held + list(range(a, b))
        sink = policy == "sink_window"
        ok = torch.tensor([[j <= t and (t - j < WINDOW or (sink and j < SINKS)) for j in k_pos] for t in q_pos])
        keep = torch.tensor([j >= b - WINDOW + 1 or (sink and j < SINKS) for j in k_pos])
        n_fp_kept = int(keep[n_q:].sum())
        flush = a == 0 or n_fp_kept >= residual
        x = inner.embed_tokens(ids[:, a:b])
        cos, sin = inner.rotary_emb(x, torch.arange(a, b)[None].expand(B, -1))
        for i, layer in enumerate(inner.layers):
            att, h = layer.self_attn, layer.input_layernorm(x)
            q, k, v = (p(h).view(B, b - a, -1, hd).transpose(1, 2) for p in (att.q_proj, att.k_proj, att.v_proj))
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            K = k if state[i] is None else torch.cat([state[i][0], k], -2)
            V = v if state[i] is None else torch.cat([state[i][1], v], -2)
            s = q @ K.repeat_interleave(H // kvH, 1).transpose(-1, -2) * hd**-0.5
            p = torch.softmax(s.masked_fill(~ok, float("-inf")).float(), -1)
            o = (p @ V.repeat_interleave(H // kvH, 1)).transpose(1, 2).reshape(B, b - a, -1)
            x = x + att.o_proj(o)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
            Kk, Vk = K[..., keep, :], V[..., keep, :]
            if flush:  # every kept position quantized as one tensor
                state[i] = (fq(Kk, bits, group), fq(Vk, bits, group))
            else:  # older kept positions quantized again if some were dropped, the rest kept as they are
                nq = int(keep[:n_q].sum())
                if nq < n_q:
                    Kk = torch.cat([fq(Kk[..., :nq, :], bits, group), Kk[..., nq:, :]], -2) if nq else Kk
                    Vk = torch.cat([fq(Vk[..., :nq, :], bits, group), Vk[..., nq:, :]], -2) if nq else Vk
                state[i] = (Kk, Vk)
        logits.append(model.lm_head(inner.norm(x)))
        n_q = int(keep.sum()) if flush else int(keep[:n_q].sum())
        held = [j for j, kp in zip(k_pos, keep.tolist(), strict=True) if kp]
    logp = torch.log_softmax(torch.cat(logits, 1).float(), -1)
    return -logp[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)


@pytest.mark.parametrize("backend", ["quanto", "hqq"])
def test_without_eviction_the_cache_is_transformers_quantized_cache(tiny, ids, backend):
    model, _ = tiny("llama")
    kv, kw = KVSpec(backend, 4, 32, RESIDUAL), cache_kwarg(model)
    out = []
    for cache in (make_cache(model, kv), evicting_quantized_cache(model, kv)):
        with torch.no_grad():
            out.append(
                torch.cat(
                    [model(input_ids=ids[:, a : a + 6], use_cache=True, **{kw: cache}).logits for a in range(0, 64, 6)],
                    1,
                )
            )
    assert torch.equal(out[0], out[1])


@pytest.mark.parametrize("backend", ["quanto", "hqq"])
@pytest.mark.parametrize("policy", ["sink_window", "window_only"])
def test_evicting_quantized_cache_equals_the_hand_built_reference(tiny, ids, backend, policy):
    model, _ = tiny("llama")
    kv = KVSpec(backend, 4, 32, RESIDUAL)
    reads: dict = {}
    got = stream({"base": model, "q": model}, ids, policy, SINKS, WINDOW, chunk=CHUNK, kvs={"q": kv}, reads=reads)
    ref = _reference(model, ids, backend, 4, 32, policy)
    diff = (got["q"][0] - ref).abs().max().item()
    print(f"{backend} {policy}: max |NLL - reference| = {diff:.2e}")
    assert diff < TOL
    # the reference is sharp enough to fail: quantization moves the loss far beyond the tolerance ...
    plain = got["base"][0]
    assert (plain - ref).abs().max() > 100 * TOL
    # ... and so does quantizing where the cache keeps full precision (every kept position quantized at once)
    assert (_reference(model, ids, backend, 4, 32, policy, residual=1) - ref).abs().max() > 100 * TOL
    # most key reads were of quantized K/V, and the KL against the plain baseline is positive
    share = reads["q"]["quantized"] / reads["q"]["total"]
    assert 0.1 < share < 1
    assert float(got["q"][1][:, WINDOW:].mean()) > 0


def test_the_cache_holds_only_the_sinks_and_the_window(tiny, ids):
    model, _ = tiny("llama")
    cache, kw = evicting_quantized_cache(model, KVSpec("quanto", 4, 32, RESIDUAL)), cache_kwarg(model)
    held = torch.empty(0, dtype=torch.long)
    for a in range(0, 64, CHUNK):
        k_pos = torch.cat([held, torch.arange(a, a + CHUNK)])
        keep = (k_pos < SINKS) | (k_pos > a + CHUNK - WINDOW)
        set_keep(cache, keep)
        with torch.no_grad():
            model(
                input_ids=ids[:, a : a + CHUNK],
                position_ids=torch.arange(a, a + CHUNK)[None],
                use_cache=True,
                **{kw: cache},
            )
        held = k_pos[keep]
        for layer in cache.layers:
            stored = quantized_count(cache) + (layer.keys.shape[-2] if layer.keys.dim() == 4 else 0)
            assert stored == len(held) == layer.get_seq_length()
        if a >= WINDOW:
            assert len(held) == SINKS + WINDOW - 1


@pytest.mark.parametrize("masked", [False, True])
def test_packed_chunked_prefill_reduces_as_one_call(tiny, monkeypatch, masked):
    """The packed scenario's chunked path (how a KV configuration is read) keeps rows and documents in place:
    through a plain cache it gives what one call gives; through a 2-bit quantized cache it gives something else."""
    from transformers import DynamicCache

    from harness.scenarios import packing

    model, _ = tiny("llama")
    g = torch.Generator().manual_seed(2)
    lays = [packing.pack([torch.randint(0, 256, (20,), generator=g).tolist() for _ in range(4)], "eos", 257)] * 2
    one = packing.measure(model, lays, masked)
    q = packing.measure(model, lays, masked, KVSpec("quanto", 2, 32, RESIDUAL), chunk=16)
    monkeypatch.setattr(packing, "make_cache", lambda m, kv: DynamicCache(config=m.config))
    chunked = packing.measure(model, lays, masked, KVSpec("quanto", 4, 32, RESIDUAL), chunk=16)
    for k in ("nll", "start", "zero"):
        assert np.allclose(one[k], chunked[k], atol=2e-5), k
    assert np.abs(q["nll"] - one["nll"]).max() > 1e-3


@pytest.fixture(scope="module")
def kv_run(tmp_path_factory, tiny_run_in):
    run = tiny_run_in(tmp_path_factory.mktemp("kvscen"))
    return run(
        quant="kv-quanto-w4g32,rtn-w8+kv-hqq-w4g32",
        scenarios="streaming,packed",
        stream_len=64,
        stream_window=16,
        stream_sinks=2,
        n_sequences=2,
        n_prompts=2,
        n_probe_sequences=2,
        n_stability_prompts=1,
        long_new_tokens=2,
        max_new_tokens=2,
    )


def test_kv_configurations_get_every_scenario_gate_decided_through_their_own_cache(kv_run):
    gates = ("stream_gap_delta", "packed_doc_loss_delta", "packed_start_rate_delta")
    assert len(kv_run["configs"]) == 2
    for c in kv_run["configs"]:
        for name in gates:
            g = next(x for x in c["gates"] if x["metric"] == name)
            assert g["outcome"] != "not_applicable", (c["spec"], name, g)
            assert g["ci_low"] is not None and g["ci_high"] is not None
        st_, pk = c["scenarios"]["streaming"], c["scenarios"]["packed"]
        assert "skipped" not in st_ and "skipped" not in pk
        backend = "quanto" if "quanto" in c["spec"] else "hqq"
        for rec in (st_["kv_cache"], pk["kv_cache"]):
            assert rec["backend"] == backend and rec["q_group_size"] == 32 and rec["nbits"] == 4
        assert 0 < st_["kv_cache"]["quantized_read_share"] < 1
        assert st_["kl_sink_window"]["value"] > 0  # its cache is not the baseline's


@pytest.mark.filterwarnings("ignore:No artists with labels")  # a plot whose only record is skipped
def test_a_skipped_scenario_reason_spans_the_figure_columns_in_report_html():
    """Issue 23 item 12: a skip reason sits in one cell spanning the figure columns (it used to fill the narrow
    'loss full' column and squeeze the table); measured rows keep one cell per column."""
    import re

    from harness.report.scenarios import html_section

    fig = {"value": 1.0, "ci_low": 0.9, "ci_high": 1.1}
    reason = "the tokenizer has no <BOS> token: sub-scenario skipped"
    results = {
        "baseline": {"scenarios": {"streaming": {"loss_full": fig}, "packed": {"subs": {"bos": {"skipped": reason}}}}},
        "configs": [{"spec": "x", "gates": [], "scenarios": {"streaming": {"skipped": reason}}}],
    }
    html = html_section(results)
    tables = re.findall(r"<table>.*?</table>", html)
    streaming, packed = tables[0], tables[1]
    assert "<td colspan=9 class=skipped>the tokenizer has no &lt;BOS&gt; token" in streaming
    assert "<td colspan=5 class=skipped>the tokenizer has no &lt;BOS&gt; token" in packed
    for table in tables:  # every row covers the header's columns
        n = table.count("<th>", 0, table.index("</tr>"))
        for row in re.findall(r"<tr>(.*?)</tr>", table)[1:]:
            spans = [int(x) for x in re.findall(r"colspan=(\d+)", row)]
            assert row.count("<td") - len(spans) + sum(spans) == n
