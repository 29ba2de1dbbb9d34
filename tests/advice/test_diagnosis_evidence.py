"""The diagnosis reads located evidence (harness/advice/locate.py): hand-built per-layer and per-head measurements
of each fault family, shaped as the fault zoo produces them on tiny-sink (4 layers, 4 heads)."""

from harness.advice.diagnosis import diagnose
from harness.advice.locate import locate
from harness.methods import parse_spec

Q = parse_spec("rtn-w4")
ZERO = [0.0, 0.0, 0.0, 0.0]


def _result(fail=(), thin=(), **metrics):
    from harness.gates.records import ConfigResult

    gates = [{"metric": m, "outcome": "fail", "passed": False} for m in fail]
    gates += [{"metric": m, "outcome": "inconclusive", "passed": False} for m in thin]
    gates += [{"metric": "kld_mean", "outcome": "pass", "passed": True}] if "kld_mean" not in fail else []
    return ConfigResult("x", "rtn", 4, None, "4", {}, verdict="fail", gates=gates, metrics=metrics)


def _js(layer_rows: dict) -> list:
    return [layer_rows.get(i, ZERO) for i in range(4)]


def test_nothing_failed_is_no_damage_and_names_the_thin_evidence():
    d = diagnose(Q, _result(thin=["attn_js", "degenerate_rate"], sink_hidden_relerr=[0.001] * 4))
    assert d["family"] == "no damage" and d["layer"] is None
    assert (
        d["summary"]
        == "no damage found; evidence thin for attn_js, degenerate_rate: more sequences or prompts decide them"
    )


def test_one_head_changed_with_the_sink_intact_is_head_damage_at_its_layer():
    js = _js({2: [0.0, 0.32, 0.0, 0.0], 3: [0.02, 0.015, 0.016, 0.011]})
    d = diagnose(Q, _result(fail=["attn_js"], sink_hidden_relerr=ZERO, sink_key_relerr=ZERO, attn_js=js))
    assert (d["family"], d["layer"], d["heads"], d["onset_layer"], d["peak_layer"]) == ("head damage", 2, [1], 2, 2)
    assert d["sink_mediated"] is False and "head 1 of 4" in " ".join(d["evidence"])


def test_sink_keys_off_in_every_layer_with_its_state_intact_is_the_kv_cache():
    js = _js({0: [0.001] * 4, 2: [0.35] * 4, 3: [0.25] * 4})
    m = dict(sink_hidden_relerr=ZERO, sink_key_relerr=[1.0] * 4, attn_js=js)
    d = diagnose(Q, _result(fail=["sink_kv_relerr", "attn_js"], **m))
    assert d["family"] == "kv-cache" and d["layer"] is None


def test_every_head_changing_after_an_unchanged_layer_is_the_mlp_before_it():
    js = _js({3: [0.03, 0.028, 0.025, 0.026]})
    m = dict(
        sink_hidden_relerr=[0.0, 0.0, 0.001, 0.001], sink_key_relerr=ZERO, attn_js=js, sink_recovery={"kld_mean": 0.01}
    )
    d = diagnose(Q, _result(fail=["attn_js"], **m))
    assert (d["family"], d["layer"], d["module"], d["onset_layer"], d["peak_layer"]) == (
        "local damage", 2, "layers.2.mlp", 2, 3
    )  # fmt: skip


def test_sink_state_damaged_where_protection_closes_the_gap_is_sink_damage_at_the_onset():
    js = _js({2: [0.26, 0.26, 0.23, 0.25], 3: [0.2] * 4})
    m = dict(sink_hidden_relerr=[0.0, 0.95, 0.96, 0.97], sink_key_relerr=[0, 0, 0.9, 0.9], attn_js=js)
    d = diagnose(Q, _result(fail=["sink_hidden_cos", "attn_js"], sink_recovery={"kld_mean": 0.55}, **m))
    assert (d["family"], d["layer"], d["sink_mediated"]) == ("sink damage", 1, True)
    # without --protect-sink, the collapse of the sink's massive activation says the same
    r = _result(fail=["sink_hidden_cos"], massive_ratio=[62, 50, 40, 33], **m)
    assert diagnose(Q, r, base_massive=[62, 5400, 3600, 3200])["family"] == "sink damage"


def test_damage_from_the_first_layer_is_diffuse():
    js = _js({0: [0.002] * 4, 1: [0.003] * 4, 2: [0.045] * 4, 3: [0.05] * 4})
    m = dict(sink_hidden_relerr=[0.06, 0.03, 0.03, 0.03], sink_key_relerr=[0.2, 0.25, 0.06, 0.05], attn_js=js)
    d = diagnose(Q, _result(fail=["attn_js", "sink_kv_relerr"], sink_recovery={"kld_mean": -0.01}, **m))
    assert d["family"] == "diffuse damage" and d["layer"] is None and d["onset_layer"] == 0


def test_outputs_equal_on_the_corpus_but_long_generations_diverge_is_long_only():
    m = dict(attn_js=_js({}), exact_match_rate=1.0, long_exact_match_rate=0.0, long_mean_first_divergence=13.0)
    d = diagnose(Q, _result(fail=["logit_delta_max"], **m))
    assert d["family"] == "long-only" and "diverge after 13 tokens" in d["evidence"][0]
    same = diagnose(Q, _result(fail=["logit_delta_max"], **(m | {"long_exact_match_rate": 1.0})))
    assert same["family"] == "no damage" and "quantizes anything" in same["next_step"]


def test_narrative_says_why_the_recommendation_keeps_another_layer():
    js = _js({2: [0.0, 0.32, 0.0, 0.0]})
    sens = {"layers": [{"name": "layers.2", "kl_share": 0.2}, {"name": "layers.3", "kl_share": 0.6}], "modules": []}
    rec = {"keep": ["layers.3"], "spec": "rtn-w4-keep:layers.3"}
    d = diagnose(Q, _result(fail=["attn_js"], sink_hidden_relerr=ZERO, attn_js=js), sens, rec)
    assert d["layer"] == 2 and "keep layers.3" in d["next_step"]
    assert any("keeps layers.3 rather than layer 2" in e and "20%" in e for e in d["evidence"]), d["evidence"]
    agree = diagnose(
        Q, _result(fail=["attn_js"], sink_hidden_relerr=ZERO, attn_js=js), sens, rec | {"keep": ["layers.2"]}
    )
    assert not any("rather than" in e for e in agree["evidence"])


def test_locate_onsets_and_peak():
    w = locate({"sink_hidden_relerr": [0.0, 0.0, 0.5, 0.6], "attn_js": _js({3: [0.2] * 4})})
    assert (w.sink_onset, w.attn_onset, w.onset, w.peak, w.few_heads) == (2, 3, 2, 3, False)
    cos_only = locate({"sink_hidden_cos": [1.0, None, 0.5, 0.4]})
    assert cos_only.sink == [0.0, 0.0, 0.5, 0.6] and cos_only.sink_onset == 2
