"""No run turns green without evidence or hides a failure: a run that measured nothing fails, gates without their
premise are not passes, a configuration that cannot be measured or fails only its regression checks fails, and a
method whose package is missing is skipped with its install line (a failure under --signoff)."""

import json
import re

import pytest
import torch

pytestmark = pytest.mark.slow

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@no_cuda
def test_a_run_that_measured_nothing_fails(tiny_run):
    """--device cuda without CUDA (not strict): every configuration skipped -> FAIL, exit 1, the reason shown."""
    res = tiny_run.pytest(quant="rtn-w8,rtn-w4g16", device="cuda")
    out = res.stdout.str()
    assert res.ret == 1, out
    assert "quantsink verdict: FAIL" in out and "nothing was measured" in out
    r, run_dir = tiny_run.results()
    assert r["verdict"] == "fail" and r["verdict_reason"].startswith("nothing was measured: rtn-w8 (--device cuda")
    summary = (run_dir / "summary.md").read_text()
    assert summary.startswith("# quantsink: FAIL") and "nothing was measured" in summary
    assert "0 x 32 tokens" not in summary


@no_cuda
def test_python_m_harness_fails_a_run_that_measured_nothing(tiny_run):
    out = tiny_run.python_m(quant="rtn-w8", device="cuda")
    assert out.returncode == 1 and "quantsink verdict: FAIL" in out.stdout, out.stdout + out.stderr


@no_cuda
def test_cuda_request_without_cuda_skips_or_errors_under_signoff(tiny_run):
    res = tiny_run.pytest("-rs", quant="rtn-w8", device="cuda")
    assert res.ret == 1  # every item skipped with the reason, and a run that measured nothing fails
    res.stdout.fnmatch_lines(["*SKIPPED*asks for CUDA but torch sees no GPU*use --device cpu*"])
    strict = tiny_run.pytest("-rs", "--signoff", quant="rtn-w8", device="cuda")
    assert strict.ret == 4 and "asks for CUDA" in strict.stderr.str()


def test_gates_without_their_premise_are_not_applicable_and_fail_under_signoff(tiny_run, tmp_path):
    """tiny-llama's baseline answers no reference prompt and has no sink: those gates are not passes."""
    res = tiny_run.pytest("-rs", quant="rtn-w8")
    r, _ = tiny_run.results()
    gates = {g["metric"]: g for g in r["configs"][0]["gates"]}
    # (misgeneration_rate stays measurable: its degeneration half needs no correct answer)
    for m in ("flip_rate", "sink_mass_shift", "sink_rate_delta", "sink_hidden_cos"):
        assert gates[m]["outcome"] == "not_applicable" and not gates[m]["passed"], m
    assert "nothing can flip" in gates["flip_rate"]["detail"] and "no sink" in gates["sink_mass_shift"]["detail"]
    assert r["configs"][0]["verdict"] == "inconclusive" and r["verdict"] == "inconclusive"
    assert res.ret == 0  # smoke: shown, not failed
    res.stdout.fnmatch_lines(["*NOT APPLICABLE: rtn-w8: flip_rate not applicable*"])
    strict = tiny_run.pytest("--signoff", quant="rtn-w8", report_dir=str(tmp_path / "strict"))
    assert strict.ret == 1 and "passes only on pass" in strict.stdout.str()


def test_a_configuration_failing_in_measurement_gives_its_gates_its_reason(tiny_run, monkeypatch):
    """A Hub id passes preflight; loading it fails (no network): every item names that reason, no TypeError."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    res = tiny_run.pytest(quant="path:no-such-org/no-such-model,rtn-w8", bit_class="4")
    out = res.stdout.str()
    assert "TypeError" not in out and "NoneType" not in out
    assert "path:no-such-org/no-such-model: measurement failed: UsageError: cannot fetch" in out
    assert res.ret == 1


def test_a_configuration_failing_only_regression_checks_fails_everywhere(tiny_run, tmp_path, monkeypatch):
    """Gates pass, a regression check fails: the configuration's verdict is fail everywhere."""
    report = tiny_run.report_dir
    policy = tmp_path / "p.toml"
    policy.write_text("[limits.all]\nlogit_delta_max = { min = 1e-6 }\n[regression]\nkld_mean = { rel = 0.01 }\n")
    run = dict(quant="rtn-w4g16", policy=str(policy), n_sequences=8)  # 8 paired sequences decide the change
    assert tiny_run.pytest("-p", "harness.testing", **run).ret == 0
    monkeypatch.setenv("QS_MEASURE_AS", "rtn-w4g16=rtn-w2g16")  # today's "rtn-w4g16" is a far worse model
    res = tiny_run.pytest("-p", "harness.testing", compare="latest", **run)
    out = res.stdout.str()
    assert res.ret == 1, out
    assert [ln.replace(":", "").split()[:2] for ln in out.splitlines() if ln.strip().startswith("rtn-w4g16")][-1] == [
        "rtn-w4g16",
        "fail",
    ]
    runs = sorted(d for d in report.iterdir() if d.is_dir())
    r = max((json.loads((d / "results.json").read_text()) for d in runs), key=lambda x: x["created"] + x["run_id"])
    c = r["configs"][0]
    assert all(g["passed"] for g in c["gates"]) and c["verdict"] == "fail" and r["verdict"] == "fail"


def test_a_run_skips_a_method_whose_package_is_missing_and_signoff_fails_it(tiny_run, suite_dir):
    """End to end: with hqq hidden, hqq-w4g16 is skipped with the install line, and --signoff fails the run for it."""
    suite_dir.makeconftest(
        'import sys\nsys.modules["hqq"] = None  # the package looks absent\npytest_plugins = ["harness.plugin"]\n'
    )
    res = tiny_run.pytest("-rs", "--signoff", quant="hqq-w4g16")
    out = res.stdout.str()
    assert re.search(r"hqq-w4g16 +skipped:? +hqq needs the 'hqq' package: pip install 'hqq>=0.2'", out), out[-3000:]
    assert res.parseoutcomes().get("failed", 0) >= 1
    assert "hqq-w4g16 skipped under --signoff: hqq needs the 'hqq' package" in out
    assert res.ret == 1
