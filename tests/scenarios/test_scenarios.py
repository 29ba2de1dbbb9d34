"""Deployment scenarios (--scenarios): the streaming cache really evicts, packed sequences are laid out as
documented, the BOS policy pairs the same body tokens, every scenario gate has an interval and an outcome,
bad settings are one-line usage errors."""

import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.errors import UsageError
from harness.metrics.catalogue import METRICS
from harness.scenarios import packing
from harness.scenarios.streaming import additive, kept, stream, visible

SCENARIO_METRICS = [m for m in METRICS if m.family == "scenario"]


def _nll(model, ids, mask=None, pos=None):
    kw = {"attention_mask": mask} if mask is not None else {}
    if pos is not None:
        kw["position_ids"] = pos[None].expand(ids.shape[0], -1)
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids, use_cache=False, **kw).logits.float(), -1)
    return -logp[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 256, (2, 48), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("policy", ["sink_window", "window_only"])
def test_chunked_evicting_cache_equals_token_by_token_decoding_and_a_hand_built_mask(tiny, ids, policy):
    model, _ = tiny("llama")
    k, w = 3, 8
    chunked = stream({"m": model}, ids, policy, k, w, chunk=16)["m"][0]
    decoded = stream({"m": model}, ids, policy, k, w, chunk=1)["m"][0]  # one token per call: cache of k + w
    # hand-built [T, T] mask, written out without visible(): j <= t and (t - j < w or, with sinks, j < k)
    T = ids.shape[1]
    ok = torch.tensor(
        [[j <= t and (t - j < w or (policy == "sink_window" and j < k)) for j in range(T)] for t in range(T)]
    )
    whole = _nll(model, ids, additive(ok, model.dtype, model.device))
    assert torch.allclose(chunked, decoded, atol=2e-5)
    assert torch.allclose(chunked, whole, atol=2e-5)


def test_full_cache_policy_is_the_plain_forward(tiny, ids):
    model, _ = tiny("llama")
    assert torch.allclose(stream({"m": model}, ids, "full", 3, 8, chunk=16)["m"][0], _nll(model, ids), atol=2e-5)


def test_window_only_removes_the_first_tokens_from_every_later_view(tiny, ids):
    model, _ = tiny("llama")
    k, w = 3, 8
    other = ids.clone()
    other[:, :k] = (ids[:, :k] + 7) % 256  # change only the first k tokens
    for policy, same in (("window_only", True), ("sink_window", False)):
        a = stream({"m": model}, ids, policy, k, w, chunk=16)["m"][0]
        b = stream({"m": model}, other, policy, k, w, chunk=16)["m"][0]
        # a query sees w positions per layer, so through L layers a token reaches L * (w - 1) positions on:
        # from query k + L * (w - 1) on, nothing of the first k tokens arrives without the sink
        late = slice(k + model.config.num_hidden_layers * (w - 1), None)
        assert torch.equal(a[:, late], b[:, late]) == same, policy


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(1, 24), st.integers(0, 60), st.integers(1, 20))
def test_masks_and_eviction_agree(k, w, a, c):
    """A key the chunk's queries may see is never evicted before them; what stays is at most k + w - 1."""
    q = torch.arange(a, a + c)
    keys = torch.arange(0, a + c)
    for policy in ("sink_window", "window_only"):
        ok = visible(q, keys, policy, k, w)
        assert bool((ok.sum(1) <= w + (k if policy == "sink_window" else 0)).all())
        if policy == "window_only":
            assert not bool((ok & (keys[None, :] <= q[:, None] - w)).any())  # nothing w or more behind
        else:
            assert bool(ok[:, keys < min(k, a + 1)].all())  # the sinks stay in every view
        keep = kept(keys, a, policy, k, w)  # cache after the chunks before this one
        needed = ok[:, keys < a].any(0)
        assert bool((keep[keys < a] | ~needed).all())
        assert int(keep[keys < a].sum()) <= k + w - 1


def test_packed_layout_places_separators_where_documented():
    docs = [[10, 11, 12], [20, 21], [30, 31, 32, 33]]
    lay = packing.pack(docs, "eos", 99)
    assert lay.ids == [10, 11, 12, 99, 20, 21, 99, 30, 31, 32, 33]
    assert lay.starts == [0, 3, 6] and lay.bodies == [(0, 3), (4, 6), (7, 11)]
    lay = packing.pack(docs, "bos", 98)
    assert lay.ids == [98, 10, 11, 12, 98, 20, 21, 98, 30, 31, 32, 33]
    assert lay.starts == [0, 4, 7] and lay.bodies == [(1, 4), (5, 7), (8, 12)]
    lay = packing.pack(docs, "none", None)
    assert lay.ids == [10, 11, 12, 20, 21, 30, 31, 32, 33] and lay.starts == [0, 3, 5]
    mask, pos = packing.block_mask(packing.pack(docs, "bos", 98), torch.float32, "cpu")
    assert pos.tolist() == [0, 1, 2, 3, 0, 1, 2, 0, 1, 2, 3, 4]
    seen = mask[0, 0] == 0
    assert seen[5].tolist() == [False] * 4 + [True] * 2 + [False] * 6  # block 2 row 1 sees its BOS and itself


def test_masked_packing_scores_each_document_as_if_alone(tiny):
    model, _ = tiny("llama")
    g = torch.Generator().manual_seed(1)
    docs = [torch.randint(0, 256, (9,), generator=g).tolist() for _ in range(4)]
    lay = packing.pack(docs, "bos", 256)
    raw = packing.measure(model, [lay], masked=True)
    for d, (_a, _b) in enumerate(lay.bodies):
        alone = torch.tensor([[256] + docs[d]])
        want = _nll(model, alone)[0, 1:].double().mean().item()  # the document's tokens after its first
        assert raw["nll"][0, d] == pytest.approx(want, abs=2e-5)
    assert raw["start"].shape == (1, 4, 4, 4)  # [N, D, L, H]
    assert np.allclose(raw["zero"][0, 1:], 0.0)  # masked: later documents cannot see position 0


def test_scenario_gate_formulas_against_numpy():
    from harness.metrics.catalogue import BY_NAME

    rng = np.random.default_rng(0)
    ev = {
        k: rng.normal(3, 0.2, 6) for k in ("f_b", "sw_b", "wo_b", "f_q", "sw_q", "wo_q", "al_b", "nv_b", "al_q", "nv_q")
    }
    i = np.array([0, 2, 2, 5])
    want = np.mean(ev["sw_q"][i] - ev["f_q"][i]) - np.mean(ev["sw_b"][i] - ev["f_b"][i])
    assert BY_NAME["stream_gap_delta"].stat(ev, i) == pytest.approx(want)
    nb = np.array([[1.0, 2.0, 2.0], [1.0, 1.0, 1.0]])
    nq = np.array([[1.5, 2.5, 3.0], [1.0, 1.2, 1.4]])  # row 0: first +0.5, later +0.5, +1.0; row 1: 0, +.2, +.4
    pk = {"nll_b": nb, "nll_q": nq}
    assert BY_NAME["packed_doc_loss_delta"].stat(pk, np.arange(2)) == pytest.approx(((0.75 - 0.5) + 0.3) / 2)
    mass = np.zeros((2, 3, 2, 5))
    mass_q = mass.copy()
    mass_q[:, 1:, 0, :2] = 0.5  # two of the ten heads give later starts 0.5
    ev = {"start_b": mass, "start_q": mass_q}
    assert BY_NAME["packed_start_rate_delta"].stat(ev, np.arange(2)) == pytest.approx(0.2)


def test_every_scenario_metric_is_gated_by_the_bundled_policy():
    from harness.gates.policy import load_policy

    limits = load_policy().gates_for(None)
    assert SCENARIO_METRICS and all(
        m.gate and m.kind == "t" and m.evidence in ("streaming", "packed", "bos") for m in SCENARIO_METRICS
    )
    assert {m.name for m in SCENARIO_METRICS} <= set(limits)


def test_without_scenarios_no_scenario_gate_is_listed():
    from harness.config.build import build_spec
    from harness.scenarios import gates

    spec = build_spec({"model": "tiny-llama", "quant": "rtn-w4g32"})
    assert spec.scenarios == "none"
    assert gates({m.name: None for m in METRICS if m.gate}, spec).keys().isdisjoint(m.name for m in SCENARIO_METRICS)
    spec = build_spec({"model": "tiny-llama", "quant": "rtn-w4g32", "scenarios": "bos"})
    assert set(gates({m.name: None for m in SCENARIO_METRICS}, spec)) == {"bos_removal_delta"}
    assert build_spec({"profile": "nightly"}).scenarios == "bos"
    assert build_spec({"profile": "signoff"}).scenarios == "streaming,packed,bos"


@pytest.mark.parametrize(
    "values, words",
    [
        ({"scenarios": "streaming", "stream_window": "1024"}, "must be smaller than the streaming sequence"),
        ({"scenarios": "streaming", "stream_sinks": "300"}, "must not be larger than --stream-window"),
        ({"scenarios": "streming"}, "did you mean 'streaming'"),
    ],
)
def test_bad_scenario_settings_are_usage_errors(values, words):
    from harness.config.build import build_spec

    with pytest.raises(UsageError, match=words):
        build_spec({"model": "tiny-llama", "quant": "rtn-w4g32", **values})


def test_bad_window_exits_4_in_one_line_from_python_m_harness():
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "--model",
            "tiny-llama",
            "--quant",
            "rtn-w4g32",
            "--scenarios",
            "streaming",
            "--stream-window",
            "2048",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 4
    line = [x for x in res.stderr.splitlines() if "stream-window" in x]
    assert len(line) == 1 and "must be smaller" in line[0]


def test_a_tokenizer_without_a_separator_is_a_documented_skip(tiny):
    from harness.measure.passes import Participant
    from harness.scenarios.runner import _bos, _packed, _Side

    model, base_tok = tiny("llama")
    corpus = SimpleNamespace(
        name="t", documents=["".join(chr(97 + (i * 7 + j) % 26) for j in range(90)) for i in range(6)]
    )
    spec = SimpleNamespace(seq_len=32, n_probe_sequences=4, batch_size=4, seed=0)
    base = SimpleNamespace(
        spec=spec,
        tokenizer=_NoSeparators(base_tok),
        inputs=SimpleNamespace(corpus=corpus),
        model=model,
        progress=lambda m: None,
        scenario_state={},
    )
    out = _packed(base, {"q": Participant(model)}, _Side(base))
    rec, views = out["q"]
    assert "no EOS token" in rec["subs"]["eos"]["skipped"] and "no BOS token" in rec["subs"]["bos_masked"]["skipped"]
    assert "docs" in rec["subs"]["none"] and views["packed_doc_loss_delta"].absent
    rec, views = _bos(base, {"q": Participant(model)}, _Side(base))["q"]
    assert "no BOS token" in rec["skipped"] and views["bos_removal_delta"].absent


class _NoSeparators:
    """A tokenizer with neither EOS nor BOS (the byte tokenizer's text encoding otherwise)."""

    eos_token_id = bos_token_id = None

    def __init__(self, tok):
        self._tok = tok

    def __call__(self, text, **kw):
        return self._tok(text, **kw)

    def decode(self, ids):
        return self._tok.decode(ids)


def test_figures_intervals_resample_documents():
    from harness.scenarios.evidence import mean_fig

    x = np.array([1.0, 1.0, 5.0, 5.0])
    by_doc = mean_fig(x, [0, 0, 1, 1])  # two documents: delete-one means 5 and 1, SE 2, t(1) = 12.706
    assert by_doc["value"] == 3.0
    assert (by_doc["ci_low"], by_doc["ci_high"]) == pytest.approx((3 - 12.706 * 2, 3 + 12.706 * 2), abs=1e-3)
    by_seq = mean_fig(x, [0, 1, 2, 3])  # four independent items: SE 2 / sqrt(3), t(3) = 3.182
    assert by_seq["ci_high"] == pytest.approx(3 + 3.1824 * 2 / math.sqrt(3), abs=1e-3)


def test_bos_figures_hand_worked():
    from harness.scenarios.evidence import bos_side

    raw = {
        "always": {"nll": np.array([1.0, 3.0]), "mass": np.full((2, 2, 2), 0.5)},
        "never": {"nll": np.array([2.0, 4.0]), "mass": np.full((2, 2, 2), 0.1)},
    }
    f = bos_side(raw, "never", [0, 1])
    assert f["always"]["loss"]["value"] == 2.0 and f["never"]["loss"]["value"] == 3.0
    assert f["always"]["sink_rate"]["value"] == 1.0 and f["never"]["sink_rate"]["value"] == 0.0
    assert f["removal"]["value"] == 1.0 and f["auto"]["same_as"] == "never" and f["auto"]["loss"]["value"] == 3.0
    # every document reads no head above 0.3: the interval over documents is [0, 0], not a guess over heads
    assert (f["never"]["sink_rate"]["ci_low"], f["never"]["sink_rate"]["ci_high"]) == (0.0, 0.0)
