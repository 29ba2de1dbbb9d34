"""The fault zoo (harness/testing/zoo.py): its spec grammar, the planted sink of tiny-sink, and that each fault
damages what its ground truth says and nothing before it."""

import pytest
import torch

from harness.errors import UsageError
from harness.methods import parse_spec
from harness.testing import zoo


@pytest.mark.parametrize(
    "spec",
    ["fault-neuron-s0.5", "fault-query-l3h2-s0.5", "fault-key-l2h1", "fault-mlp-l2-s0.3", "fault-kvsink-s0.9",
     "fault-late-n12", "fault-diffuse-s0.5", "fault-fp16", "fault-bf16", "fault-sink"],
)  # fmt: skip
def test_zoo_specs_round_trip(spec):
    cfg = parse_spec(spec)
    assert cfg.spec == spec and parse_spec(cfg.spec) == cfg


def test_zoo_spec_fields_and_bad_specs():
    cfg = parse_spec("fault-query-l3h2-s0.5")
    assert (cfg.kind, cfg.layer, cfg.head, cfg.strength) == ("query", 3, 2, 0.5)
    assert parse_spec("fault-late-n40").after == 40
    for bad, why in [
        ("fault-mlp", "needs its layer"),
        ("fault-query-l1-s2", "0 < X <= 1"),
        ("fault-neuron-x3", "fault option 'x3'"),
        ("fault-nan-s0.5", "test-only fault kinds"),
    ]:
        with pytest.raises(UsageError, match=why):
            parse_spec(bad)


def _hidden_and_keys(model, ids):
    keys = {}
    hooks = [
        layer.self_attn.k_proj.register_forward_hook(lambda m, a, o, i=i: keys.__setitem__(i, o.detach().clone()))
        for i, layer in enumerate(model.model.layers)
    ]
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True, output_attentions=True)
    for h in hooks:
        h.remove()
    return out, keys


@pytest.fixture(scope="module")
def sink_model():
    import copy

    from harness.models.sources import load_model, load_tokenizer, resolve_model

    src = resolve_model("tiny-sink")
    model, tok = load_model(src.local_dir), load_tokenizer(src.local_dir)
    ids = tok("The capital of France is Paris. The quick brown fox jumps.", return_tensors="pt")["input_ids"]
    return (lambda: copy.deepcopy(model)), tok, ids


def test_tiny_sink_has_a_massive_activation_and_an_attention_sink(sink_model):
    from harness.models.tiny import SINK_LAYER, SINK_NEURON

    fresh, tok, ids = sink_model
    assert ids[0, 0] == tok.bos_token_id  # its tokenizer starts texts with <s>, where the sink sits
    out, _ = _hidden_and_keys(fresh(), ids)
    h = out.hidden_states[SINK_LAYER + 1][0]
    assert h[0].abs().max() > 50 * h[1:].abs().amax(-1).median()  # massive activation at the sink
    later = torch.stack([a[0, :, 4:, 0].mean() for a in out.attentions[SINK_LAYER + 1 :]])
    assert later[0] > 0.5 and bool((later > 0.15).all()), later  # every later layer attends to the sink
    assert zoo.sink_neuron(fresh(), tok) == (SINK_LAYER, SINK_NEURON)  # found from activations, not told


def _ctx(model, tok):
    from harness.methods.base import QuantContext

    return QuantContext(model_dir=None, model_key="x", load_baseline=lambda: model, tokenizer=tok)


def _plant(spec, fresh, tok):
    from harness.methods.registry import get_method

    model = fresh()
    ctx = _ctx(model, tok)
    get_method("fault").load_handler()(parse_spec(spec), ctx)
    return model, ctx.info["planted"]


@pytest.mark.parametrize(
    ("spec", "family", "layer"),
    [("fault-neuron-s0.5", "sink damage", 1), ("fault-query-l2h1", "head damage", 2),
     ("fault-key-l2h1", "head damage", 2), ("fault-mlp-l2", "local damage", 2)],
)  # fmt: skip
def test_localized_faults_leave_every_earlier_layer_intact(sink_model, spec, family, layer):
    fresh, tok, ids = sink_model
    base, base_keys = _hidden_and_keys(fresh(), ids)
    model, truth = _plant(spec, fresh, tok)
    assert (truth["family"], truth["layer"]) == (family, layer)
    out, keys = _hidden_and_keys(model, ids)
    for i in range(layer):  # hidden_states[i + 1] is layer i's output
        assert torch.equal(out.hidden_states[i + 1], base.hidden_states[i + 1]), i
    changed = not torch.allclose(out.hidden_states[layer + 1], base.hidden_states[layer + 1])
    changed = changed or not torch.allclose(out.attentions[layer], base.attentions[layer])
    assert changed
    if family == "head damage":  # attention faults never move the sink's own state (it reads only itself)
        assert all(torch.allclose(a[0, 0], b[0, 0]) for a, b in zip(out.hidden_states, base.hidden_states))
        moved = (out.attentions[layer] - base.attentions[layer]).abs().amax(dim=(0, 2, 3))
        assert {h for h in range(len(moved)) if moved[h] > 1e-6} == set(truth["heads"])


def test_kv_fault_changes_only_the_sinks_cached_keys(sink_model):
    fresh, tok, ids = sink_model
    base, base_keys = _hidden_and_keys(fresh(), ids)
    model, truth = _plant("fault-kvsink-s0.9", fresh, tok)
    out, keys = _hidden_and_keys(model, ids)
    assert truth["family"] == "kv-cache"
    assert all(torch.equal(a[0, 0], b[0, 0]) for a, b in zip(out.hidden_states, base.hidden_states))
    for i in keys:
        assert torch.allclose(keys[i][0, 0], 0.1 * base_keys[i][0, 0], atol=1e-6)
        assert torch.equal(keys[i][0, 1:], base_keys[i][0, 1:]) or i > 0  # later layers read a changed sink


def test_late_fault_spares_prefill_and_the_first_decoded_tokens(sink_model):
    fresh, tok, ids = sink_model
    base_model = fresh()
    model, truth = _plant("fault-late-n6", fresh, tok)
    assert truth["family"] == "long-only"
    kw = dict(max_new_tokens=16, do_sample=False, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, base_model(input_ids=ids).logits)
        a, b = model.generate(ids, **kw)[0, ids.shape[1] :], base_model.generate(ids, **kw)[0, ids.shape[1] :]
    assert torch.equal(a[:7], b[:7]) and not torch.equal(a, b)


def test_benign_round_trips_and_diffuse_noise(sink_model):
    fresh, tok, ids = sink_model
    base = fresh()
    for spec, family in [("fault-fp16", "no damage"), ("fault-diffuse-s0.5", "diffuse damage")]:
        model, truth = _plant(spec, fresh, tok)
        assert truth == {"family": family, "layer": None, "module": None, "heads": []}
        w, w0 = model.model.layers[0].mlp.up_proj.weight, base.model.layers[0].mlp.up_proj.weight
        rel = float((w - w0).norm() / w0.norm())
        assert (rel < 1e-3) if family == "no damage" else (0.05 < rel < 0.3), (spec, rel)
