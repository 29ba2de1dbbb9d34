"""The baseline reference's pieces: top-k KL exact over all tokens and a lower bound otherwise, sampled query rows."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st


def _full_kl(lb: np.ndarray, lq: np.ndarray) -> np.ndarray:
    return (np.exp(lb) * (lb - lq)).sum(-1)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 40), st.integers(1, 40), st.integers(0, 10_000), st.floats(0.1, 5.0))
def test_topk_kl_is_exact_for_all_tokens_and_a_lower_bound_otherwise(V, K, seed, temp):
    from harness.measure.formulas import topk_kl

    K = min(K, V)
    g = np.random.default_rng(seed)
    lb = torch.log_softmax(torch.tensor(g.normal(size=(3, V)) * temp), -1).float()
    lq = torch.log_softmax(torch.tensor(g.normal(size=(3, V)) * temp), -1).float()
    full = _full_kl(lb.double().numpy(), lq.double().numpy())
    top_lp, top_ix = lb.topk(K, -1)
    got = topk_kl(top_lp, top_ix, lq).double().numpy()
    assert np.all(got <= full + 1e-5)  # log-sum inequality: the bucketed remainder hides divergence
    assert np.all(got >= -1e-5)
    if K == V:
        np.testing.assert_allclose(got, full, atol=1e-5)
    if K < V:  # q's remainder proportional to the baseline's: the bucket loses nothing
        p = lb.double().exp()
        rest = torch.ones_like(p, dtype=torch.bool).scatter(-1, top_ix, False)
        rb = (p * rest).sum(-1, keepdim=True)
        q = torch.where(rest, p * 0.5 / rb, 0.0).scatter(
            -1, top_ix, torch.softmax(torch.randn(3, K), -1).double() * 0.5
        )
        np.testing.assert_allclose(
            topk_kl(top_lp, top_ix, q.log().float()).double().numpy(),
            _full_kl(lb.double().numpy(), q.log().numpy()),
            atol=2e-4,
        )


def test_sampled_rows_spread_over_the_rows_after_the_sinks():
    from harness.measure.reference import sampled_rows

    assert sampled_rows(10, 1, 16) == list(range(1, 10))
    rows = sampled_rows(128, 1, 16)
    assert len(rows) == 16 and rows[0] == 1 and rows[-1] == 127 and rows == sorted(set(rows))
    assert max(np.diff(rows)) - min(np.diff(rows)) <= 1
