"""CUDA paths on tiny models: capture, lockstep comparison, KV caches, protection, bnb.

Skipped (with the reason) on machines without a GPU; scripts/cuda_check.sh runs them.
"""

import copy

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def cuda_tiny():
    from harness.models.sources import load_model, load_tokenizer, resolve_model

    src = resolve_model("tiny-llama")
    return load_model(src.local_dir, device="cuda"), load_tokenizer(src.local_dir)


def _ids():
    return torch.randint(0, 256, (2, 40), generator=torch.Generator().manual_seed(1))


def test_capture_on_cuda_matches_output_attentions(cuda_tiny):
    from harness.measure.passes import forward_stats

    model, _ = cuda_tiny
    ids = _ids()
    with torch.no_grad():
        ref = model(input_ids=ids.cuda(), output_attentions=True, use_cache=False).attentions
    st = forward_stats(model, ids)
    want = torch.stack([a[:, :, 1:, 0].mean(-1).float().cpu() for a in ref], 1)
    np.testing.assert_allclose(st.sink_mass.numpy(), want.numpy(), atol=1e-5)


def test_lockstep_kv_and_protection_on_cuda(cuda_tiny):
    from harness.measure.kvcache import KVSpec
    from harness.measure.passes import Participant, compare_pair
    from harness.measure.protect import SinkSource
    from harness.methods.rtn import RTNConfig, apply_rtn

    model, _ = cuda_tiny
    quant = apply_rtn(copy.deepcopy(model), RTNConfig(w_bits=3, group=16))
    ids = _ids()
    b, q = compare_pair(model, quant, ids)
    assert float(q.js.max()) > 0 and float(q.kl.mean()) > 0
    _, k = compare_pair(model, Participant(model, KVSpec("hqq", 2, 32, 8)), ids)
    assert float(k.kl.mean()) > 0
    _, p = compare_pair(model, Participant(model, protect=SinkSource(model)), ids)
    assert float(p.kl.max()) < 1e-5


def test_generation_on_cuda_with_kv_cache_and_protection(cuda_tiny):
    from harness.measure.generation import generate
    from harness.measure.kvcache import KVSpec
    from harness.measure.protect import SinkSource

    model, tok = cuda_tiny
    prompts = ["hello there", "a", "the quick brown fox"]
    plain = generate(model, tok, prompts, 12, return_ids=True)[1]
    assert generate(model, tok, prompts, 12, return_ids=True, protect=SinkSource(model))[1] == plain
    # hqq only: quanto compiles its CUDA extension on first use (minutes), not worth a lease's time
    kv = generate(model, tok, prompts, 12, return_ids=True, kv=KVSpec("hqq", 4, 32, 8))[1]
    assert len(kv) == len(prompts) and all(0 < len(ids) <= 12 for ids in kv)
    # The first 8 tokens are decoded from the full-precision residual: they match the plain run's.
    assert all(a[:1] == b[:1] for a, b in zip(kv, plain))


def test_bnb_nf4_suite_on_cuda(tiny_run):
    pytest.importorskip("bitsandbytes")
    res = tiny_run.pytest(
        "-q",
        device="cuda",
        quant="bnb-nf4,rtn-w4g16,kv-hqq-w4g32",
        protect_sink=True,
        n_sequences=4,
        seq_len=48,
        max_new_tokens=6,
        n_prompts=8,
        long_new_tokens=12,
    )
    out = res.stdout.str()
    # tiny-llama has no sink and 4 sequences are too few to decide the corpus gates: inconclusive, exit 0 (the same
    # run on the CPU decides only logit_delta_max and a few generation gates, none of them failing)
    assert res.ret == 0, out[-3000:]
    assert "measurement failed" not in out, out[-3000:]
    r, _ = tiny_run.results()
    assert [c["verdict"] for c in r["configs"] if c["verdict"] == "skipped"] == [], "every configuration must run"
    assert all(c["gates"] and c["metrics"]["kld_mean"] > 0 for c in r["configs"])
