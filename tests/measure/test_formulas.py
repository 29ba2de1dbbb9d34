"""Metric formulas against independent numpy computations and invariants."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.measure import formulas as M
from harness.metrics import stats as S


def _dist(rng, shape):
    x = rng.random(shape) + 1e-3
    return x / x.sum(-1, keepdims=True)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 12))
def test_js_bounds_symmetry_zero(seed, n):
    rng = np.random.default_rng(seed)
    p, q = torch.tensor(_dist(rng, (3, n))), torch.tensor(_dist(rng, (3, n)))
    js = M.js_divergence(p, q)
    assert torch.all(js >= 0) and torch.all(js <= math.log(2) + 1e-12)
    assert torch.allclose(js, M.js_divergence(q, p))
    assert torch.allclose(M.js_divergence(p, p), torch.zeros(3, dtype=torch.float64), atol=1e-12)
    # numpy reference
    m = 0.5 * (p.numpy() + q.numpy())
    ref = 0.5 * (p.numpy() * np.log(p.numpy() / m)).sum(-1) + 0.5 * (q.numpy() * np.log(q.numpy() / m)).sum(-1)
    assert np.allclose(js.numpy(), ref)


def test_js_disjoint_is_ln2():
    p, q = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert M.js_divergence(p, q).item() == pytest.approx(math.log(2))


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 50))
def test_kl_nonnegative_and_matches_numpy(seed, v):
    rng = np.random.default_rng(seed)
    p, q = _dist(rng, (4, v)), _dist(rng, (4, v))
    kl = M.token_kl(torch.tensor(np.log(p)), torch.tensor(np.log(q)))
    assert torch.all(kl >= 0)
    assert np.allclose(kl.numpy(), (p * np.log(p / q)).sum(-1))
    assert torch.allclose(
        M.token_kl(torch.tensor(np.log(p)), torch.tensor(np.log(p))), torch.zeros(4, dtype=torch.float64)
    )


def test_sink_mass_hand_worked():
    # one head, 3 positions: rows 1 and 2 put 0.5 and 0.2 on position 0 -> mean 0.35
    a = torch.tensor([[[[1.0, 0, 0], [0.5, 0.5, 0], [0.2, 0.3, 0.5]]]])
    assert M.sink_mass(a).item() == pytest.approx(0.35)
    # sinks at 0 and 1: only row 2 counts, 0.2 + 0.3
    assert M.sink_mass(a, (0, 1)).item() == pytest.approx(0.5)
    assert S.sink_rate(np.array([[0.35, 0.9], [0.1, 0.85]]), 0.3) == 0.75
    assert S.sink_rate(np.array([[0.35, 0.9], [0.1, 0.85]]), 0.8) == 0.5


def test_massive_ratio_hand_worked():
    h = torch.ones(1, 4, 3)
    h[0, 0, 1] = -200.0
    assert M.massive_ratio(h).item() == pytest.approx(200.0)


def test_nll_matches_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    ids = torch.randint(0, 7, (2, 5))
    nll = M.token_nll(torch.log_softmax(logits, -1), ids)
    ref = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 7), ids[:, 1:].reshape(-1), reduction="none")
    assert torch.allclose(nll.reshape(-1), ref, atol=1e-6)


def test_key_votes_against_a_loop():
    """key_votes counts heads whose visible rows give a key more than eps on average."""
    from harness.measure.formulas import key_votes

    g = torch.Generator().manual_seed(0)
    B, H, T = 2, 3, 7
    logits = torch.randn(B, H, T, T, generator=g) * 3
    logits[:, :, :, 3] += 2.5  # a second sink at position 3
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    attn = logits.masked_fill(mask, float("-inf")).softmax(-1)
    rows = slice(1, T)
    got = key_votes(attn, rows, eps=0.3).numpy()
    a = attn.numpy()
    want = np.zeros((B, T), dtype=int)
    for b in range(B):
        for h in range(H):
            for s in range(T):
                ts = [t for t in range(1, T) if t >= s]
                if ts and np.mean([a[b, h, t, s] for t in ts]) > 0.3:
                    want[b, s] += 1
    assert (got == want).all()
    assert got[:, 3].sum() > 0


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([1e-1, 1e-2, 1e-3, 1e-4]))
def test_js_float32_keeps_precision_for_close_maps(seed, scale):
    """Float32 maps that barely differ: the stable form matches a float64 textbook reference."""
    rng = np.random.default_rng(seed)
    p = _dist(rng, (4, 256))
    q = p * np.exp(scale * rng.standard_normal(p.shape))
    q /= q.sum(-1, keepdims=True)
    m = 0.5 * (p + q)
    ref = 0.5 * (p * np.log(p / m)).sum(-1) + 0.5 * (q * np.log(q / m)).sum(-1)
    p32, q32 = torch.tensor(p, dtype=torch.float32), torch.tensor(q, dtype=torch.float32)
    got = M.js_divergence(p32, q32).double().numpy()
    # inputs were rounded to float32: compare with the reference on the rounded inputs
    p2, q2 = p32.double().numpy(), q32.double().numpy()
    m2 = 0.5 * (p2 + q2)
    ref2 = 0.5 * (p2 * np.log(p2 / m2)).sum(-1) + 0.5 * (q2 * np.log(q2 / m2)).sum(-1)
    assert np.allclose(got, ref2, rtol=1e-3, atol=1e-9), (got, ref2)
    assert np.allclose(got, ref, rtol=0.05, atol=1e-8)
