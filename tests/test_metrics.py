"""Metric formulas against independent numpy computations and invariants."""

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from harness.measure import formulas as M
from harness.methods.rtn import fake_quantize
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


def test_bootstrap_ci_contains_mean_and_is_seeded():
    x = np.random.default_rng(1).normal(size=200)
    lo, hi = S.bootstrap_ci(x, seed=3)
    assert lo < x.mean() < hi
    assert (lo, hi) == S.bootstrap_ci(x, seed=3)
    assert all(math.isnan(v) for v in S.bootstrap_ci([1.0, float("nan")]))


def test_key_votes_against_a_loop():
    """key_votes counts heads whose visible rows give a key more than eps on average."""
    import numpy as np
    import torch

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


# ---- behaviour probes and sink recovery ----

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from harness.measure.behaviour import bos_variants, prompt_variants, swap_early  # noqa: E402
from harness.metrics.evidence import behaviour_metrics, sink_recovery  # noqa: E402


@given(st.text(min_size=1, max_size=40))
@settings(max_examples=200, deadline=None)
def test_prompt_variants_are_neutral_edits(text):
    spaced, newline, flipped = prompt_variants(text)
    assert newline == text + "\n"
    # exactly one space added: after the first space, or in front when there is none
    if " " in text:
        k = text.index(" ")
        assert spaced == text[:k] + " " + text[k:]
    else:
        assert spaced == " " + text
    # only the first letter changes, to its other case; everything before and after it is untouched
    letters = [i for i, ch in enumerate(text) if ch.isalpha()]
    if not letters:
        assert flipped == text
    else:
        k = letters[0]
        tail = len(text) - k - 1
        assert flipped[:k] == text[:k] and flipped[len(flipped) - tail :] == text[k + 1 :]
        assert flipped[k : len(flipped) - tail] == text[k].swapcase()


def test_prompt_variants_hand_worked():
    assert prompt_variants("The capital of France is") == [
        "The  capital of France is",
        "The capital of France is\n",
        "the capital of France is",
    ]
    assert prompt_variants("42") == [" 42", "42\n", "42"]


def test_swap_and_bos_variants_hand_worked():
    ids = torch.tensor([[1, 5, 6, 7, 8]])
    assert swap_early(ids, 1).tolist() == [[1, 6, 5, 7, 8]]
    w, wo = bos_variants(ids, 1)  # row starts with BOS: body = 5 6 7 8
    assert w.tolist() == [[1, 5, 6, 7, 8]] and wo.tolist() == [[5, 6, 7, 8]]
    w, wo = bos_variants(torch.tensor([[5, 6, 7, 8]]), 1)  # no BOS: body = first T-1 tokens
    assert w.tolist() == [[1, 5, 6, 7]] and wo.tolist() == [[5, 6, 7]]


def test_sink_recovery_hand_worked():
    r = sink_recovery(
        {"loss_delta": 0.4, "kld_mean": 0.2, "misgeneration_rate": 0.0},
        {"loss_delta": 0.1, "kld_mean": 0.3, "misgeneration_rate": 0.1},
    )
    assert r["loss_delta"] == pytest.approx(0.75)  # protection closed 3/4 of the loss gap
    assert r["kld_mean"] == pytest.approx(-0.5)  # protection made KL worse
    assert r["misgeneration_rate"] is None  # no gap to recover
    assert r["loss_delta_plain"] == 0.4 and r["loss_delta_protected"] == 0.1
    assert sink_recovery({"loss_delta": float("nan")}, {"loss_delta": 0.1})["loss_delta"] is None


class _P:
    def __init__(self, id, refs):
        self.id, self.references = id, tuple(refs)


def test_behaviour_metrics_hand_worked():
    ref = [_P("a", ["Paris"]), _P("b", ["4"])]
    gens = [
        {"id": "a", "correct_baseline": True, "correct_quantized": True},
        {"id": "b", "correct_baseline": True, "correct_quantized": True},
    ]
    var_base = [" Paris.", " Paris", " Paris!", " 4", " 4", " 4"]
    var_quant = [" Paris.", " Lyon", " Paris", " 4", " 4", " 4"]  # prompt a flips on one variant
    long = [
        {
            "id": "l",
            "prompt": "p",
            "baseline": "x",
            "quantized": "y",
            "degenerate": "loop",
            "degenerate_baseline": None,
            "first_divergence": 3,
            "exact": False,
            "correct_baseline": None,
            "correct_quantized": None,
            "reference": None,
            "quantized_ids": [1] * 10,
        }
    ]
    own = [(2.0, 2), (4.0, 2)]  # baseline's own continuations: mean nll 1.5
    qn = [(4.0, 2), (5.0, 2)]  # quantized continuations: mean nll 2.25
    spread_b, spread_q = np.array([0.1, 0.2, np.nan]), np.array([0.2, 0.4, 0.9])
    met, views = behaviour_metrics(ref, gens, var_base, var_quant, long, own, qn, spread_b, spread_q)
    assert met["stability_rate"] == 0.5 and met["stability_rate_baseline"] == 1.0
    assert met["gen_ppl_ratio"] == pytest.approx(np.exp(0.75))
    assert met["long_degenerate_rate"] == 1.0 and met["long_mean_first_divergence"] == 3
    assert met["perturbation_spread"] == pytest.approx(2.0)  # NaN row (no-op swap) left out
    lo, hi = views["stability_rate"].ci
    assert 0 <= lo <= 0.5 <= hi <= 1
