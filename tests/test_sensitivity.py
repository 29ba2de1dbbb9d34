"""Issue 15: per-module sensitivity, the keep recommendation measured in the same run, the diagnosis,
the `-keep:` grammar and effective bits per weight."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.methods import parse_spec, parse_specs

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(
    model="tiny-llama",
    n_sequences=8,
    seq_len=64,
    max_new_tokens=6,
    n_prompts=8,
    long_new_tokens=8,
    long_n_prompts=2,
    n_stability_prompts=4,
    n_probe_sequences=2,
)


# ---- the keep: grammar ----


def test_keep_specs_parse_round_trip_and_split_on_commas():
    from harness.methods.base import QuantConfig

    qs = parse_specs("rtn-w3g32-keep:layers.1.mlp.down_proj,layers.2,bnb-nf4,rtn-w4-keep:layers.0+kv-quanto-w4")
    assert [q.spec for q in qs] == [
        "rtn-w3g32-keep:layers.1.mlp.down_proj,layers.2",
        "bnb-nf4",
        "rtn-w4-keep:layers.0+kv-quanto-w4",
    ]
    k = qs[0]
    assert (k.method, k.inner.spec, k.keep, k.bits, k.group_size, k.bit_class) == (
        "keep",
        "rtn-w3g32",
        ("layers.1.mlp.down_proj", "layers.2"),
        3,
        32,
        "3",
    )
    assert QuantConfig.from_dict(json.loads(json.dumps(k.to_dict()))) == k
    assert parse_spec(k.spec) == k


@pytest.mark.parametrize(
    "spec, words",
    [
        ("kv-quanto-w4-keep:layers.1", ["kv-quanto-w4 cannot keep modules", "KV-cache"]),
        ("rtn-w4-keep:", ["needs comma-separated module names"]),
        ("rtn-w4-keep:model.layers.1", ["'model.layers.1' is not a module name", "layers.<i>"]),
        ("rtn-w4-keep:layers.1,layers.1", ["listed twice"]),
    ],
)
def test_bad_keep_lists_are_one_line_usage_errors(spec, words):
    with pytest.raises(UsageError) as e:
        parse_spec(spec)
    assert "\n" not in str(e.value) and all(w in str(e.value) for w in words), str(e.value)


def test_unknown_module_lists_the_closest_names_and_exits_4(tmp_path):
    """Through `python -m harness`: the model's module names are checked before anything loads."""
    for spec, want in (
        ("rtn-w4g16-keep:layers.1.mlp.down_prj", "layers.1.mlp.down_proj"),
        ("bnb-nf4,kv-quanto-w4-keep:layers.1", "cannot keep modules"),
    ):
        out = subprocess.run(
            [sys.executable, "-m", "harness", "--model", "tiny-llama", "--quant", spec, "--report-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        assert out.returncode == 4, out.stderr[-2000:]
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and want in lines[0], out.stderr


# ---- effective bits per weight ----


def test_bits_per_weight_by_hand(tiny):
    from harness.methods.footprint import footprint, linear_bits
    from harness.models.structure import linear_modules

    model, _ = tiny("llama")
    lins = {n: m.weight.numel() for n, m, _ in linear_modules(model)}
    every = sum(p.numel() for p in model.parameters())
    other = every - sum(lins.values())
    f = footprint(parse_spec("rtn-w4g16"), model)
    assert f["bits_per_weight"] == pytest.approx(4 + 16 / 16)  # 4 bits and an fp16 scale per 16 weights
    assert f["model_size_mb"] == pytest.approx((sum(lins.values()) * 5 + other * 32) / 8e6)
    kept = footprint(parse_spec("rtn-w4g16-keep:layers.1.mlp.down_proj,layers.3"), model)
    n_keep = lins["layers.1.mlp.down_proj"] + sum(v for k, v in lins.items() if k.startswith("layers.3."))
    want = ((sum(lins.values()) - n_keep) * 5 + n_keep * 32) / sum(lins.values())
    assert kept["bits_per_weight"] == pytest.approx(want)
    assert kept["quantized_params"] == sum(lins.values()) - n_keep
    assert linear_bits(parse_spec("gptq-w3g128"), 4096) == pytest.approx(3 + (16 + 3) / 128)
    assert linear_bits(parse_spec("bnb-nf4"), 64) == 4.5  # an fp32 absmax per block of 64
    assert footprint(parse_spec("kv-quanto-w4"), model)["bits_per_weight"] == 32  # weights stay the baseline's


# ---- diagnosis rules on hand-built results ----


def _result(gates, **metrics):
    from harness.gates.records import ConfigResult

    return ConfigResult(
        "x",
        "rtn",
        4,
        None,
        "4",
        {},
        verdict="fail",
        gates=[{"metric": m, "outcome": o, "passed": o == "pass"} for m, o in gates.items()],
        metrics=metrics,
    )


def test_diagnosis_families_from_hand_built_evidence():
    from harness.advice.diagnosis import diagnose, sink_onset

    q = parse_spec("rtn-w4")
    assert sink_onset([1.0, 1.0, 0.6, 0.55]) == (2, pytest.approx(0.4 / 0.45))
    assert sink_onset([0.9, 0.8, 0.7])[0] is None  # damaged from the first layer: no intact prefix
    gen = diagnose(q, _result({"kld_mean": "pass", "sink_hidden_cos": "pass", "flip_rate": "fail"}))
    assert gen["family"] == "generation-only" and "flip_rate" in gen["evidence"][0]
    long = diagnose(q, _result({"kld_mean": "pass", "long_degenerate_rate": "fail"}))
    assert long["family"] == "long-only"
    kv = diagnose(parse_spec("kv-quanto-w2"), _result({"sink_kv_relerr": "fail"}))
    assert kv["family"] == "kv-cache"
    r = _result({"kld_mean": "fail"})
    r.nonfinite_layer = 1
    assert diagnose(q, r)["family"] == "non-finite" and diagnose(q, r)["layer"] == 1
    sink = diagnose(q, _result({"sink_hidden_cos": "fail"}, sink_hidden_cos=[1.0, 0.99999, 0.5, 0.45]))
    assert (sink["family"], sink["layer"]) == ("sink damage", 2)
    diffuse = diagnose(q, _result({"kld_mean": "fail"}, sink_hidden_cos=[0.9, 0.8, 0.7]))
    assert diffuse["family"] == "diffuse damage"


# ---- a real tiny run: sensitivity, recommendation measured, diagnosis ----


@pytest.fixture(scope="module")
def advised_run(tmp_path_factory):
    """fault-sink and rtn-w2g16 on tiny-llama under a policy its KL gate decides (a random tiny model has no
    sink and no stable-correct prompt, so the bundled sink and flip gates are not applicable there)."""
    import harness.testing  # noqa: F401
    from harness.cli import run_session

    tmp = tmp_path_factory.mktemp("sens")
    policy = tmp / "kl.toml"
    policy.write_text("[limits.all]\nkld_mean = { max = 1e-7 }\n")
    lines = []
    # one decoder layer of tiny-llama is 25% of its Linear weights: a budget that admits one
    res, run_dir = run_session(
        dict(
            SMALL,
            quant="fault-sink,rtn-w2g16",
            policy=str(policy),
            sensitivity="auto",
            keep_budget=0.3,
            report_dir=str(tmp / "rep"),
        ),
        progress=lines.append,
    )
    return res, run_dir, lines


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
    assert (d["family"], d["layer"]) == ("sink damage", SINK_LAYER), d
    # the evidence: the sink is intact before the damaged layer, and protecting it closes most of the gap
    assert any(f"intact up to layer {SINK_LAYER - 1}" in e for e in d["evidence"]), d["evidence"]
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
    assert "### `fault-sink`: fail" in md and "**Diagnosis: sink damage from layer 2.**" in md
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
    assert block[at + 1].strip().startswith("diagnosis: sink damage from layer 2")
    assert block[at + 2].strip() == f"recommendation: {rec['statement']}"


def test_replayed_prefix_gives_the_full_pass_scores(tiny):
    """Keeping modules from layer l on replays layers 0..l-1 from the plain pass: the same scores as a full pass."""
    import torch

    from harness.advice.sensitivity import Probe, measure_keep
    from harness.methods.keep import restore, swap_in
    from harness.methods.rtn import apply_rtn
    from harness.models.sources import load_model, resolve_model

    base, _ = tiny("llama")
    q = apply_rtn(load_model(resolve_model("tiny-llama").local_dir), parse_spec("rtn-w2g16"))
    probe = Probe(base, torch.randint(0, 250, (2, 32), generator=torch.Generator().manual_seed(0)))
    plain = probe.plain(q)
    for names in (["layers.2"], ["layers.1.mlp.down_proj", "layers.3"]):
        fast = measure_keep(probe, q, base, names)
        old = swap_in(q, base, names)
        full = probe.score(q)
        restore(q, old)
        assert fast == full and fast["kld_mean"] != plain["kld_mean"]
    assert probe.score(q) == plain  # restored: the configuration itself again
