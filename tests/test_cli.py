"""The real pytest CLI, driven through pytester: usage errors, a full tiny run, results.json."""

import json
import math
import re

import pytest

BAD = [
    ("--quant", "rtn-w9", "rtn takes 2 to 8 bits"),
    ("--quant", "bnb-w3", "bitsandbytes has no 3-bit mode"),
    ("--quant", "gptq-w5", "GPTQ takes 2, 3, 4, 8 bits"),
    ("--quant", "foo-w4", "unknown quantization method 'foo'"),
    ("--quant", "auto-gptq-w4", "auto-gptq is archived"),
    ("--model", "./no/such/model", "not found"),
    ("--model", "missing.gguf", "does not exist"),
]


@pytest.mark.parametrize("flag,value,needle", BAD)
def test_usage_errors_exit_4_one_line_no_traceback(suite_dir, flag, value, needle):
    args = ["suites", "-p", "no:cacheprovider", flag, value]
    if flag == "--model":
        args += ["--quant", "rtn-w8"]
    else:
        args += ["--model", "tiny-llama"]
    res = suite_dir.runpytest_subprocess(*args)
    assert res.ret == 4
    err = res.stderr.str()
    lines = [ln for ln in err.splitlines() if ln.startswith("ERROR:")]
    assert len(lines) == 1 and needle in lines[0], err
    assert "valid" in lines[0] or "instead" in lines[0]
    assert "Traceback" not in err + res.stdout.str()


def test_rtn_group_not_dividing_names_the_layer():
    from harness.config.build import build_spec
    from harness.engine.session import Session
    from harness.errors import UsageError

    with pytest.raises(UsageError, match="does not divide the input width 64 of layers.0"):
        Session(build_spec({"model": "tiny-llama", "quant": "rtn-w4g48"})).prepare()


def test_full_tiny_run_writes_results(suite_dir, tmp_path):
    report = tmp_path / "rep"
    res = suite_dir.runpytest_subprocess(
        "suites",
        "-p",
        "harness.testing",
        "--model",
        "tiny-llama",
        "--quant",
        "rtn-w8,rtn-w2g16,fault-noop",
        "--report-dir",
        str(report),
        "--n-sequences",
        "4",
        "--seq-len",
        "48",
        "--max-new-tokens",
        "6",
        "-q",
        "--junitxml",
        str(tmp_path / "junit.xml"),
    )
    out = res.stdout.str()
    assert "quantsink verdict" in out
    junit = (tmp_path / "junit.xml").read_text()
    assert '<property name="rtn-w8.ppl_ratio" value="' in junit  # metrics reach CI systems
    index = [json.loads(x) for x in (report / "index.jsonl").read_text().splitlines()]
    assert len(index) == 1
    r = json.loads((report / index[0]["run_id"] / "results.json").read_text())
    assert r["schema"] == "quantsink.results/1"
    assert r["model"]["num_layers"] == 4 and r["model"]["num_heads"] == 4
    for c in r["configs"]:
        m = c["metrics"]
        for k in (
            "loss",
            "loss_delta",
            "ppl_ratio",
            "kld_mean",
            "kld_p99",
            "top1_agreement",
            "sink_rate",
            "sink_rate_08",
            "exact_match_rate",
            "degenerate_rate",
            "misgeneration_rate",
        ):
            assert isinstance(m[k], float) and math.isfinite(m[k]), (c["spec"], k)
        # no stable-correct prompt on a random tiny model: the net flip rate is undefined (null), never 0
        assert m["n_stable_correct"] == 0 and m["flip_rate"] is None
        assert len(m["sink_mass"]) == 4 and all(len(row) == 4 for row in m["sink_mass"])
        assert len(m["attn_js"]) == 4 and all(len(row) == 4 for row in m["attn_js"])
        assert len(m["sink_hidden_cos"]) == 4
        outcomes = {g["outcome"] for g in c["gates"]}
        assert c["verdict"] == ("fail" if "fail" in outcomes else "pass" if outcomes == {"pass"} else "inconclusive")
        # tiny-llama's baseline answers no reference prompt and has no sink: those gates cannot pass
        assert {g["outcome"] for g in c["gates"] if g["metric"] in ("flip_rate", "sink_mass_shift")} == {
            "not_applicable"
        }
    by = {c["spec"]: c for c in r["configs"]}
    assert by["fault-noop"]["verdict"] == "fail"  # a quantizer that does nothing is caught
    assert by["rtn-w2g16"]["metrics"]["kld_mean"] > by["rtn-w8"]["metrics"]["kld_mean"]
    assert r["verdict"] == "fail" and res.ret == 1
    res.stdout.fnmatch_lines(["*test_gate?fault-noop-logit_delta_max?*"])
    # Progress reaches the terminal even though pytest captures test output.
    res.stdout.fnmatch_lines(["[[]quantsink[]] rtn-w2g16: quantizing*", "[[]quantsink[]] rtn-w2g16: generation: *"])


def test_plain_python_api_gives_same_metrics(tmp_path):
    from harness.cli import run

    kw = dict(
        model="tiny-llama", quant="rtn-w4g16", n_sequences=2, seq_len=32, max_new_tokens=4, report_dir=str(tmp_path)
    )
    a, b = run(dict(kw)), run(dict(kw))
    assert a["configs"][0]["metrics"] == b["configs"][0]["metrics"]
    assert (tmp_path / a["run_id"] / "summary.md").read_text().startswith("# quantsink")


def test_lockstep_gives_the_same_metrics_as_one_config_at_a_time(tmp_path):
    """Baseline once per batch for all configs (lockstep) or re-run per config: same numbers."""
    from harness.cli import run

    kw = dict(
        model="tiny-qwen2",
        quant="rtn-w4g16,rtn-w2g16,fault-nan",
        n_sequences=4,
        seq_len=32,
        max_new_tokens=4,
        n_prompts=8,
        report_dir=str(tmp_path),
    )
    on, off = run(dict(kw, lockstep="on")), run(dict(kw, lockstep="off"))
    assert on["settings"]["lockstep"] is True and off["settings"]["lockstep"] is False
    for a, b in zip(on["configs"], off["configs"]):
        assert a["spec"] == b["spec"] and a["metrics"] == b["metrics"] and a["verdict"] == b["verdict"]
    # The baseline block comes from the comparison's own baseline passes: the same as a
    # baseline-only pass.
    from harness.config.build import build_spec
    from harness.engine.session import Session

    alone = Session(build_spec(dict(kw, quant="rtn-w8"))).prepare()
    assert on["baseline"] == off["baseline"] and _close(on["baseline"], alone.baseline.stats)
    nan = on["configs"][2]
    assert nan["verdict"] == "fail" and nan["nonfinite_layer"] is not None  # the session went on


def _close(a, b, tol=1e-6):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    return abs(a - b) <= tol * max(1.0, abs(a))


def test_cuda_request_without_cuda_skips_or_errors_under_signoff(suite_dir, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    args = [
        "suites",
        "--model",
        "tiny-llama",
        "--quant",
        "rtn-w8",
        "--device",
        "cuda",
        "-rs",
        "--report-dir",
        str(tmp_path / "rep"),
    ]
    res = suite_dir.runpytest_subprocess(*args)
    assert res.ret == 1  # every item skipped with the reason, and a run that measured nothing fails (issue 11)
    res.stdout.fnmatch_lines(["*SKIPPED*asks for CUDA but torch sees no GPU*use --device cpu*"])
    strict = suite_dir.runpytest_subprocess(*args, "--signoff")
    assert strict.ret == 4 and "asks for CUDA" in strict.stderr.str()


def test_xdist_gives_the_same_results_as_a_serial_run(suite_dir, tmp_path):
    args = [
        "suites",
        "--model",
        "tiny-llama",
        "--quant",
        "rtn-w8,rtn-w4g16,rtn-w2g16",
        "--n-sequences",
        "4",
        "--seq-len",
        "32",
        "--max-new-tokens",
        "4",
        "--n-prompts",
        "8",
        "-p",
        "no:cacheprovider",
    ]
    serial = suite_dir.runpytest_subprocess(
        *args, "--report-dir", str(tmp_path / "s"), "--junitxml", str(tmp_path / "s.xml")
    )
    par = suite_dir.runpytest_subprocess(
        *args, "--report-dir", str(tmp_path / "p"), "-n", "2", "--junitxml", str(tmp_path / "p.xml")
    )
    assert serial.ret == par.ret
    # The controller shows the workers' progress and records the same JUnit properties and settings.
    par.stdout.fnmatch_lines(["[[]quantsink[]] [[]gw?[]] rtn-w*: quantizing*"])
    names = lambda f: sorted(re.findall(r'<property name="([^"]+)"', (tmp_path / f).read_text()))  # noqa: E731
    assert names("s.xml") == names("p.xml") and len(set(names("s.xml"))) > 60
    load = lambda d: json.loads(next((tmp_path / d).glob("*/results.json")).read_text())  # noqa: E731
    a, b = load("s"), load("p")
    assert [c["spec"] for c in a["configs"]] == [c["spec"] for c in b["configs"]]
    for x, y in zip(a["configs"], b["configs"]):
        assert x["metrics"] == y["metrics"] and x["verdict"] == y["verdict"], x["spec"]
    assert a["baseline"] == b["baseline"] and a["verdict"] == b["verdict"]
    assert a["settings"]["lockstep"] is not None and b["settings"]["lockstep"] is not None
    assert b["model"]["num_layers"] == 4 and b["corpus"]["n_sequences"] == 4
    assert len((tmp_path / "p" / "index.jsonl").read_text().splitlines()) == 1  # one run, not one per worker


SCALARS = (
    "loss",
    "loss_delta",
    "ppl_ratio",
    "kld_mean",
    "kld_median",
    "kld_p99",
    "kld_max",
    "top1_agreement",
    "sink_rate",
    "sink_rate_08",
    "exact_match_rate",
    "mean_first_divergence",
    "degenerate_rate",
    "misgeneration_rate",
    "stability_rate",
    "gen_ppl_ratio",
    "perturbation_spread",
    "long_degenerate_rate",
    "long_mean_first_divergence",
)
PER_LAYER = ("sink_hidden_cos", "sink_hidden_relerr", "massive_ratio", "sink_kv_relerr", "attn_entropy_delta")


def check_issue3_fields(r: dict, n_layers: int, protect: bool) -> None:
    """Every measurement of SPEC section 4 is present and finite; gated ones carry intervals."""
    b = r["baseline"]
    assert len(b["massive_ratio"]) == n_layers and all(math.isfinite(x) for x in b["massive_ratio"])
    assert r["settings"]["sink_positions"] == [0] and r["settings"]["bos"] in ("auto", "always", "never")
    for c in r["configs"]:
        m = c["metrics"]
        for k in SCALARS:
            assert isinstance(m[k], (int, float)) and math.isfinite(m[k]), (c["spec"], k, m.get(k))
        for k in PER_LAYER:
            assert len(m[k]) == n_layers and all(math.isfinite(x) for x in m[k]), (c["spec"], k)
        assert m["long_new_tokens"] >= 8 and m["long_generations"]
        for g in c["gates"]:
            gv = c["gate_views"][g["metric"]]
            if g["outcome"] == "not_applicable":  # e.g. no stable-correct prompt on a tiny model: says why
                assert gv["absent"] and "not applicable" in g["detail"], g
            elif g["metric"] != "logit_delta_max":
                assert (
                    gv["ci_low"] is not None
                    and gv["ci_low"] <= gv["value"] + 1e-9
                    and gv["value"] <= gv["ci_high"] + 1e-9
                ), (c["spec"], g["metric"], gv)
        if protect:
            rec = m["sink_recovery"]
            for k in ("loss_delta", "kld_mean", "misgeneration_rate"):
                assert k in rec and math.isfinite(rec[f"{k}_plain"]) and math.isfinite(rec[f"{k}_protected"])
            assert math.isfinite(c["protected"]["kld_mean"])


def test_kv_cache_configs_and_sink_protection_through_the_cli(suite_dir, tmp_path):
    import shutil

    # optimum-quanto compiles a C++ extension on first use: without a compiler, cover hqq only.
    combo = "rtn-w4g16+kv-quanto-w4g32" if shutil.which("c++") else "rtn-w4g16+kv-hqq-w4g32"
    report = tmp_path / "rep"
    res = suite_dir.runpytest_subprocess(
        "suites",
        "--model",
        "tiny-llama",
        "--quant",
        f"rtn-w3g16,kv-hqq-w2g32-r16,{combo},kv-hqq-w4",
        "--protect-sink",
        "--report-dir",
        str(report),
        "--n-sequences",
        "4",
        "--seq-len",
        "48",
        "--max-new-tokens",
        "6",
        "--n-prompts",
        "12",
        "--long-new-tokens",
        "12",
        "-q",
    )
    assert res.ret in (0, 1), res.stdout.str()[-3000:]
    index = [json.loads(x) for x in (report / "index.jsonl").read_text().splitlines()]
    r = json.loads((report / index[0]["run_id"] / "results.json").read_text())
    assert [c["spec"] for c in r["configs"]] == ["rtn-w3g16", "kv-hqq-w2g32-r16", combo, "kv-hqq-w4"]
    # The tiny model's KV width (2 heads x 16) is not a multiple of the default group 64: a clear error.
    assert r["configs"][3]["error"] == (
        "QuantsinkError: kv-hqq-w4: group 64 does not divide KV heads x head size "
        "= 32 of LlamaForCausalLM; use a group that does, e.g. kv-hqq-w4g32"
    )
    r["configs"] = r["configs"][:3]
    assert all(not c.get("error") for c in r["configs"]), [c.get("error") for c in r["configs"]]
    check_issue3_fields(r, 4, protect=True)
    kv = r["configs"][1]
    assert kv["info"]["kv_cache"]["nbits"] == 2 and kv["config"] == {
        "method": "kv",
        "backend": "hqq",
        "nbits": 2,
        "group": 32,
        "residual": 16,
    }
    assert kv["metrics"]["kld_mean"] > 0  # the corpus pass really read the 2-bit cache
    assert max(kv["metrics"]["sink_kv_relerr"]) > 0.01
    assert r["configs"][0]["metrics"]["long_new_tokens"] == 12
