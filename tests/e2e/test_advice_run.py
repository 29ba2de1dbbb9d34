"""A run with --sensitivity: per-module sensitivity, the keep recommendation measured in the same run, the
diagnosis, and how the reports show them."""

import math

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def advised_run(tmp_path_factory, tiny_run_in):
    """fault-sink and rtn-w2g16 on tiny-llama (8 x 64 corpus tokens) under a policy its KL gate decides (a random
    tiny model has no sink and no stable-correct prompt, so the bundled sink and flip gates are not applicable
    there), with the bundled check for a quantizer that changed nothing (logit_delta_max) and an attention gate
    rtn-w2g16 fails."""
    tmp = tmp_path_factory.mktemp("sens")
    policy = tmp / "kl.toml"
    policy.write_text(
        "[limits.all]\nkld_mean = { max = 1e-7 }\nlogit_delta_max = { min = 1e-6 }\nattn_js = { max = 0.002 }\n"
    )
    run = tiny_run_in(tmp)
    # one decoder layer of tiny-llama is 25% of its Linear weights: a budget that admits one
    res = run(
        quant="fault-sink,rtn-w2g16",
        policy=str(policy),
        sensitivity="auto",
        keep_budget=0.3,
        n_sequences=8,
        seq_len=64,
    )
    return res, run.run_dir, run.lines


def test_sink_fault_gets_a_passing_recommendation_with_the_damaged_layer(advised_run):
    from harness.testing import SINK_LAYER

    res, _, lines = advised_run
    by = {c["spec"]: c for c in res["configs"]}
    fault = by["fault-sink"]
    assert fault["verdict"] == "fail"
    rec = fault["recommendation"]
    assert f"layers.{SINK_LAYER}" in rec["keep"], rec
    keep = by[rec["spec"]]
    assert keep["recommended_for"] == "fault-sink" and rec["spec"].startswith("fault-sink-keep:")
    assert keep["verdict"] == "pass" == rec["verdict"], keep["gates"]
    assert keep["metrics"]["kld_mean"] < fault["metrics"]["kld_mean"]
    assert rec["statement"].startswith("keeping 1 module") and "verdict pass" in rec["statement"]
    d = fault["diagnosis"]
    # tiny-llama has no sink: the damaged first token is a token like the others, so the damage is local, and the
    # narrative names the first token, never a sink (issue 23 item 7)
    assert (d["family"], d["layer"], d["sink_mediated"]) == ("local damage", SINK_LAYER, None), d
    assert any(f"intact up to layer {SINK_LAYER - 1}" in e for e in d["evidence"]), d["evidence"]
    assert not any("sink" in e for e in d["evidence"]) or all("no sink" in e for e in d["evidence"] if "sink" in e)
    layers = fault["sensitivity"]["layers"]
    assert max(layers, key=lambda u: u["kl_share"])["name"] == f"layers.{SINK_LAYER}"
    assert fault["sensitivity"]["protected_sink"]["kl_share"] > 0.5
    assert any("fault-sink: sensitivity: layer 4/4" in ln for ln in lines)  # progress lines
    # recommendations advise; the run's verdict is the user's configurations'
    assert res["verdict"] == "fail" and rec["spec"] not in res["verdict_reason"]


def test_calibration_split_is_never_the_gated_split(advised_run):
    res, _, _ = advised_run
    cal = res["configs"][0]["sensitivity"]["calibration"]
    assert cal["n"] == 4 and "outside the 8 gated sequences" in cal["split"]


def test_diffuse_rtn_2bit_is_named_diffuse(advised_run):
    res, _, _ = advised_run
    c = next(c for c in res["configs"] if c["spec"] == "rtn-w2g16")
    d = c["diagnosis"]
    assert d["family"] == "diffuse damage", d
    best = max(u["kl_share"] for u in c["sensitivity"]["layers"])
    assert best < 0.5 and c["sensitivity"]["protected_sink"]["kl_share"] < 0.3
    assert c["metrics"]["bits_per_weight"] == pytest.approx(3.0)  # 2 bits + fp16 scale per 16


def test_reports_show_diagnosis_recommendation_and_chart(advised_run):
    res, run_dir, _ = advised_run
    md = (run_dir / "summary.md").read_text()
    assert "### `fault-sink`: fail" in md and "**Diagnosis: local damage from layer 2" in md
    rec = res["configs"][0]["recommendation"]
    assert f"Run it: `--quant {rec['spec']}`" in md and "bits_per_weight" in md
    page = (run_dir / "report.html").read_text()
    sec = page[page.index("<h2 id=advice>") :]
    first = sec[sec.index('data-config="fault-sink"') :]
    assert first.index("class=diagnosis") < first.index("class=recommendation") < first.index("<svg")
    assert "kept" in first[: first.index("</section>")] and "<script" not in page.lower()
    assert math.isfinite(res["configs"][0]["metrics"]["model_size_mb"])
    from harness.report.summary import verdict_lines

    block = verdict_lines(res)
    at = next(i for i, ln in enumerate(block) if ln.lstrip().startswith("fault-sink "))
    assert block[at + 1].strip().startswith("diagnosis: local damage from layer 2")
    assert block[at + 2].strip() == f"recommendation: {rec['statement']}"


def test_recommendation_equal_to_the_baseline_passes_and_reads_as_working(advised_run):
    """Keeping exactly the damaged layer leaves the outputs equal to the baseline's: the recommendation works, so
    logit_delta_max (a quantizer that changed nothing) is not gated for it, and it is said why (issue 23 item 8)."""
    res, _, _ = advised_run
    by = {c["spec"]: c for c in res["configs"]}
    keep = by[by["fault-sink"]["recommendation"]["spec"]]
    assert keep["metrics"]["kld_mean"] == 0.0 and keep["verdict"] == "pass", keep["gates"]
    assert "logit_delta_max" not in {g["metric"] for g in keep["gates"]}
    assert "leaves the outputs equal to the baseline's" in keep["info"]["unchanged"]
    assert keep["diagnosis"]["family"] == "fixed" and keep["info"]["unchanged"] in keep["diagnosis"]["evidence"]


def test_keep_search_aims_at_the_failed_attention_gate(advised_run):
    """rtn-w2g16 fails attn_js: the search scores each keep on attention JS too, and ranks by the gates it aims at."""
    res, _, _ = advised_run
    c = next(c for c in res["configs"] if c["spec"] == "rtn-w2g16")
    assert {"kld_mean", "attn_js"} <= {g["metric"] for g in c["gates"] if g["outcome"] == "fail"}, c["gates"]
    assert set(c["recommendation"]["targets"]) == {"kld_mean", "attn_js"} == set(c["sensitivity"]["targets"])
    assert all("aim_share" in u and "js_share" in u for u in c["sensitivity"]["layers"])
    assert c["sensitivity"]["plain"]["attn_js_max"] > 0.002 and "attn_js" in c["recommendation"]["estimate"]
