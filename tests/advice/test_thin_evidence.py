"""Thin evidence reads as thin evidence (issue 23 item 7): a configuration whose every decided gate passes is
diagnosed "no damage found", naming each undecided gate with the option that would decide it; damage families
need a failing gate; a baseline without a sink gets no sink narrative; a passing configuration reads as passing."""

from harness.advice.diagnosis import diagnose, recommended
from harness.methods import parse_spec

DECIDES = "about 280 open prompts would decide it: --n-open-prompts 280"
NO_SINK = "the baseline has no sink (no head gives the sink positions more than 0.3 of its attention)"
SINK_GATES = ("sink_hidden_cos", "sink_kv_relerr", "sink_mass_shift", "sink_rate_delta")


def _gate(metric, outcome, decides=None):
    return {"metric": metric, "outcome": outcome, "passed": outcome == "pass", "decides": decides}


def _result(gates, verdict="inconclusive", views=None, **metrics):
    from harness.gates.records import ConfigResult

    return ConfigResult(
        "x", "rtn", 8, None, "8", {}, verdict=verdict, gates=gates, metrics=metrics, gate_views=views or {}
    )


def _rtn_w8(sink=True):
    """rtn-w8 as the issue measured it: kld_mean 1.4e-6, every decided gate passing, degenerate_rate undecided."""
    gates = [_gate(m, "pass") for m in ("logit_delta_max", "ppl_ratio", "kld_mean", "kld_p99", "attn_js")]
    gates.append(_gate("degenerate_rate", "inconclusive", DECIDES))
    views = {}
    if not sink:
        gates += [_gate(m, "not_applicable") for m in SINK_GATES]
        views = {m: {"absent": NO_SINK} for m in SINK_GATES}
    return _result(gates, views=views, kld_mean=1.4e-6, sink_hidden_relerr=[0.02, 0.03, 0.03, 0.04])


DIFFUSE_SENS = {
    "layers": [{"name": f"layers.{i}", "kl_share": 0.1, "sink_share": 0.0} for i in range(4)],
    "modules": [],
    "protected_sink": {"kl_share": 0.05},
}


def test_every_decided_gate_passing_is_thin_evidence_with_the_option_that_decides_it():
    q = parse_spec("rtn-w8")
    for sens in (None, DIFFUSE_SENS):  # with and without --sensitivity
        d = diagnose(q, _rtn_w8(), sens)
        assert d["family"] == "no damage", d
        assert d["summary"] == f"no damage found; evidence thin for degenerate_rate: {DECIDES}"
        assert "diffuse" not in d["summary"] and "more bits" not in d["summary"]


def test_thin_generation_gates_beside_a_failure_are_not_blamed():
    """bnb-int8: a failing answer margin with flip_rate undecided is generation-only, naming what fails (not the
    thin gate) and never 'more bits' for an 8-bit method; an undecided attention gate beside a failing flip rate
    is thin evidence, not diffuse damage."""
    q = parse_spec("bnb-int8")
    gates = [_gate("kld_mean", "pass"), _gate("attn_js", "pass"), _gate("answer_margin_delta", "fail")]
    gates.append(_gate("flip_rate", "inconclusive", "about 60 prompts would decide it: --n-prompts 60"))
    d = diagnose(q, _result(gates, verdict="fail"))
    assert d["family"] == "generation-only", d
    assert d["evidence"][0].endswith("; answer_margin_delta fails"), d["evidence"]
    assert "more bits" not in d["next_step"] and "gptq" in d["next_step"]
    gates = [_gate("kld_mean", "pass"), _gate("attn_js", "inconclusive"), _gate("flip_rate", "fail")]
    d = diagnose(parse_spec("rtn-w4"), _result(gates, verdict="fail", sink_hidden_relerr=[0.1, 0.1, 0.1, 0.1]))
    assert d["family"] == "generation-only" and "(attn_js undecided)" in d["evidence"][0], d


def test_a_baseline_without_a_sink_gets_no_sink_narrative():
    """The first token's state moving from layer 2 on a baseline with no sink is local damage told as the first
    token's, never sink damage (the same evidence on a baseline with a sink is sink damage)."""
    q = parse_spec("rtn-w4")
    gates = [_gate("kld_mean", "fail")] + [_gate(m, "not_applicable") for m in SINK_GATES]
    m = dict(sink_hidden_relerr=[0.0, 0.0, 0.4, 0.5], sink_recovery={"kld_mean": 0.9})
    no_sink = diagnose(q, _result(gates, verdict="fail", views={m: {"absent": NO_SINK} for m in SINK_GATES}, **m))
    assert (no_sink["family"], no_sink["layer"], no_sink["sink_mediated"]) == ("local damage", 2, None), no_sink
    assert not any("the sink" in e for e in no_sink["evidence"]), no_sink["evidence"]
    assert any(e.startswith("the first token's hidden state (the baseline has no sink)") for e in no_sink["evidence"])
    with_sink = diagnose(q, _result([_gate("kld_mean", "fail")], verdict="fail", views={"sink_hidden_cos": {}}, **m))
    assert with_sink["family"] == "sink damage", with_sink


def test_a_passing_configuration_reads_no_damage_found():
    q = parse_spec("rtn-w8")
    ok = diagnose(q, _result([_gate("kld_mean", "pass"), _gate("attn_js", "pass")], verdict="pass"))
    assert ok["summary"] == "no damage found; every gate passes: ship it"
    # every applicable gate passes but the sink gates cannot apply (what --signoff fails): said so, not 'ship it'
    r = _rtn_w8(sink=False)
    r.gates = [g for g in r.gates if g["metric"] != "degenerate_rate"]
    d = diagnose(q, r)
    assert d["family"] == "no damage" and "ship it" not in d["summary"], d
    assert "sink_hidden_cos" in d["next_step"] and "--signoff fails on them" in d["next_step"]
    assert any(e.startswith("not applicable on this baseline: sink_hidden_cos") and NO_SINK in e for e in d["evidence"])


def test_a_recommendation_with_only_thin_evidence_reads_as_working():
    keep_q = parse_spec("rtn-w8-keep:layers.1")
    d = recommended(keep_q, _rtn_w8(), "rtn-w8", 1.4e-6)
    assert d["family"] == "no damage"
    assert d["summary"] == (
        f"no damage found with layers.1 kept (no gate fails); evidence thin for degenerate_rate: {DECIDES}"
    )


def test_a_measurement_that_ended_in_an_error_is_never_read_as_no_damage():
    """A configuration whose measurement raised before its gates were decided (error set, no gates) read
    "no damage found; every gate passes: ship it" on the default model's zoo; it must say that nothing was judged."""
    r = _result([], verdict="fail")
    r.error = "ValueError: math domain error"
    d = diagnose(parse_spec("rtn-w8"), r)
    assert d["family"] == "measurement failed" and "ship it" not in d["summary"], d
    assert "math domain error" in " ".join(d["evidence"])
