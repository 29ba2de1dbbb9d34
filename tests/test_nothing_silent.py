"""Issue 11: every way a run could turn green without evidence, hide a failure or refuse a sensible
request, each found by trying the tool as a new user would (item numbers in the test names)."""

import json
import math

import pytest

from harness.errors import UsageError

TINY = [
    "--model",
    "tiny-llama",
    "--n-sequences",
    "2",
    "--seq-len",
    "32",
    "--max-new-tokens",
    "4",
    "--n-prompts",
    "4",
    "-p",
    "no:cacheprovider",
]


def _results(report):
    (run_dir,) = [d for d in report.iterdir() if d.is_dir()]
    return json.loads((run_dir / "results.json").read_text()), run_dir


def test_item1_nothing_measured_is_never_a_pass(suite_dir, tmp_path):
    """--device cuda without CUDA (not strict): every configuration skipped -> FAIL, exit 1, the reason shown."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    report = tmp_path / "rep"
    res = suite_dir.runpytest_subprocess(
        "suites", *TINY, "--quant", "rtn-w8,rtn-w4g16", "--device", "cuda", "--report-dir", str(report)
    )
    out = res.stdout.str()
    assert res.ret == 1, out
    assert "quantsink verdict: FAIL" in out and "nothing was measured" in out
    r, run_dir = _results(report)
    assert r["verdict"] == "fail" and r["verdict_reason"].startswith("nothing was measured: rtn-w8 (--device cuda")
    summary = (run_dir / "summary.md").read_text()
    assert summary.startswith("# quantsink: FAIL") and "nothing was measured" in summary
    assert "0 x 32 tokens" not in summary


def test_item1_python_m_harness_says_fail_too(tmp_path):
    import subprocess
    import sys

    import torch

    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            *[a for a in TINY if a not in ("-p", "no:cacheprovider")],
            "--quant",
            "rtn-w8",
            "--device",
            "cuda",
            "--report-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and "quantsink verdict: FAIL" in out.stdout, out.stdout + out.stderr


def test_item3_vacuous_gates_are_not_applicable_and_fail_under_signoff(suite_dir, tmp_path):
    """tiny-llama's baseline answers no reference prompt and has no sink: those gates are not passes."""
    report = tmp_path / "rep"
    res = suite_dir.runpytest_subprocess("suites", *TINY, "--quant", "rtn-w8", "--report-dir", str(report), "-rs")
    r, _ = _results(report)
    gates = {g["metric"]: g for g in r["configs"][0]["gates"]}
    for m in ("flip_rate", "misgeneration_rate", "sink_mass_shift", "sink_rate_delta", "sink_hidden_cos"):
        assert gates[m]["outcome"] == "not_applicable" and not gates[m]["passed"], m
    assert "nothing can flip" in gates["flip_rate"]["detail"] and "no sink" in gates["sink_mass_shift"]["detail"]
    assert r["configs"][0]["verdict"] == "inconclusive" and r["verdict"] == "inconclusive"
    assert res.ret == 0  # smoke: shown, not failed
    res.stdout.fnmatch_lines(["*NOT APPLICABLE: rtn-w8: flip_rate not applicable*"])
    strict = suite_dir.runpytest_subprocess(
        "suites", *TINY, "--quant", "rtn-w8", "--signoff", "--report-dir", str(tmp_path / "strict")
    )
    assert strict.ret == 1 and "passes only on pass" in strict.stdout.str()


def test_item4_a_bad_path_spec_is_a_usage_error_before_collection(suite_dir, tmp_path):
    res = suite_dir.runpytest_subprocess("suites", *TINY, "--quant", "path:../../../../etc")
    assert res.ret == 4
    err = [ln for ln in res.stderr.str().splitlines() if ln.startswith("ERROR:")]
    assert len(err) == 1 and "--quant path:../../../../etc" in err[0] and "config.json" in err[0]
    assert "Traceback" not in res.stdout.str() + res.stderr.str()


def test_item4_a_configuration_failing_in_measurement_gives_its_gates_its_reason(suite_dir, tmp_path, monkeypatch):
    """A Hub id passes preflight; loading it fails (no network): every item names that reason, no TypeError."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = suite_dir.runpytest_subprocess(
        "suites",
        *TINY,
        "--quant",
        "path:no-such-org/no-such-model,rtn-w8",
        "--bit-class",
        "4",
        "--report-dir",
        str(tmp_path / "rep"),
    )
    out = res.stdout.str()
    assert "TypeError" not in out and "NoneType" not in out
    assert "path:no-such-org/no-such-model: measurement failed: UsageError: cannot fetch" in out
    assert res.ret == 1


def test_item7_a_regression_makes_its_configuration_fail():
    from harness.gates.records import ConfigResult

    r = ConfigResult("rtn-w8", "rtn", 8, None, "8", {}, verdict="pass")
    r.regressions = [{"metric": "kld_mean", "passed": False}]
    from types import SimpleNamespace

    from harness.gates.decide import run_verdict

    rec = SimpleNamespace(configs=[r], spec=SimpleNamespace(quant=[SimpleNamespace(spec="rtn-w8")], signoff=False))
    r.measured = True
    assert run_verdict(rec)[0] == "fail"


def test_item7_regression_only_failure_shows_in_the_configuration_verdict(suite_dir, tmp_path, monkeypatch):
    """Gates pass, a regression check fails: the configuration's verdict is fail everywhere."""
    report = tmp_path / "rep"
    policy = tmp_path / "p.toml"
    policy.write_text("[limits.all]\nlogit_delta_max = { min = 1e-6 }\n[regression]\nkld_mean = { rel = 0.01 }\n")
    args = [
        "suites",
        "-p",
        "harness.testing",
        *TINY,
        "--quant",
        "rtn-w4g16",
        "--report-dir",
        str(report),
        "--policy",
        str(policy),
    ]
    assert suite_dir.runpytest_subprocess(*args).ret == 0
    monkeypatch.setenv("QS_MEASURE_AS", "rtn-w4g16=rtn-w2g16")  # today's "rtn-w4g16" is a far worse model
    res = suite_dir.runpytest_subprocess(*args, "--compare", "latest")
    out = res.stdout.str()
    assert res.ret == 1, out
    assert [ln.split()[:2] for ln in out.splitlines() if ln.strip().startswith("rtn-w4g16")][-1] == [
        "rtn-w4g16",
        "fail",
    ]
    runs = sorted(d for d in report.iterdir() if d.is_dir())
    r = max((json.loads((d / "results.json").read_text()) for d in runs), key=lambda x: x["created"] + x["run_id"])
    c = r["configs"][0]
    assert all(g["passed"] for g in c["gates"]) and c["verdict"] == "fail" and r["verdict"] == "fail"


def test_item10_shorthand_picks_a_group_that_fits_the_model():
    from harness.config.build import build_spec
    from harness.engine.session import Session

    s = Session(build_spec({"model": "tiny-llama", "bits": "8,4", "methods": "rtn,bnb"})).prepare()
    assert [q.spec for q in s.spec.quant] == ["rtn-w8", "rtn-w4g64", "bnb-int8", "bnb-nf4", "bnb-fp4"]
    assert "group size 64" in s.inputs.notes[0] and "64, 128" in s.inputs.notes[0]


def test_item11_options_without_the_suites_say_run_pytest_suites(pytester):
    pytester.makeconftest('pytest_plugins = ["harness.plugin"]\n')
    pytester.makepyfile("def test_x():\n    pass\n")
    for extra in ([], ["--report-dir", "X"]):
        res = pytester.runpytest_subprocess("--model", "tiny-llama", "--quant", "rtn-w8", *extra)
        assert res.ret == 4
        err = res.stderr.str()
        assert "run `pytest suites --model tiny-llama --quant rtn-w8" in err and "unrecognized" not in err


@pytest.mark.parametrize(
    "spec,hint",
    [
        ("rtn-w4-g32", "did you mean 'rtn-w4g32'?"),
        ("bnb-int4", "did you mean 'bnb-nf4'?"),
        ("RTN-W4G32", "did you mean 'rtn-w4g32'? specs are lower case"),
    ],
)
def test_item12_spec_messages_suggest_the_fix(spec, hint):
    from harness.methods import parse_spec

    with pytest.raises(UsageError) as e:
        parse_spec(spec)
    assert hint in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "values,needle",
    [
        ({"n_prompts": "-1"}, "--n-prompts must be at least 0 (got -1)"),
        ({"sink_positions": "200"}, "--sink-positions 200 must lie before"),
        ({"n_sequences": "x"}, "--n-sequences takes an integer (got 'x')"),
    ],
)
def test_item12_option_messages(values, needle):
    from harness.config.build import build_spec

    with pytest.raises(UsageError) as e:
        build_spec(values)
    assert needle in str(e.value)


def test_item13_docs_cover_every_results_field():
    """Every key a run writes is documented in docs/results.md (top level, settings, configs, metrics)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    docs = (root / "docs" / "results.md").read_text()
    r = json.loads((root / "tests" / "golden" / "tiny_run_results.json").read_text())
    keys = set(r) | set(r["settings"]) | set(r["configs"][0]) | set(r["configs"][0]["metrics"])
    keys |= set(r["configs"][0]["gates"][0]) | {k for c in r["configs"] for v in c["gate_views"].values() for k in v}
    missing = sorted(k for k in keys if f"`{k}`" not in docs)
    assert not missing, f"document these in docs/results.md: {missing}"
    for path in ("README.md", "docs/results.md"):
        assert "shared project folder" not in (root / path).read_text()


def test_item13_pytest_help_states_defaults_and_pinned(pytester):
    res = pytester.runpytest_subprocess("-p", "harness.plugin", "--help")
    text = " ".join(res.stdout.str().split())
    assert "latest, pinned, RUN_ID, PATH or none" in text
    assert "(default: smollm2-135m)" in text and "(default: bnb-int8,bnb-nf4,rtn-w4g32,rtn-w3g32)" in text


def test_item1_nan_stays_a_failure_not_a_crash():
    from harness.gates.decide import evaluate_gate
    from harness.gates.policy import Limit
    from harness.metrics.views import GateView

    g = evaluate_gate("x", "ppl_ratio", Limit("max", 1.1), GateView(math.nan, n=4))
    assert g["outcome"] == "fail" and g["value"] is None


def test_item12_compare_typo_suggests_latest(tmp_path):
    from harness.history.runs import resolve

    with pytest.raises(UsageError, match="did you mean 'latest'"):
        resolve("lastest", tmp_path, "tiny-llama", True)
