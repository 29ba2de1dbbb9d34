"""History: --compare, comparability, regression gates, pins, the measure-as test hook."""
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import UsageError
from harness.history import check_comparable, identity
from harness.regression import RegressionCheck, Tolerance

TINY = ["--model", "tiny-llama", "--n-sequences", "4", "--seq-len", "48", "--max-new-tokens", "6",
        "--n-prompts", "16"]
# Gates that always pass on tiny models, so a run fails only through its regression items.
POLICY = """
[limits.all]
logit_delta_max = { min = 1e-6 }
[regression]
kld_mean = { rel = 0.10, abs = 0.0005 }
top1_agreement = { abs = 0.01 }
"""


def test_regression_direction_tolerance_and_interval():
    lower = RegressionCheck("rtn-w4", "kld_mean", Tolerance(rel=0.1))
    assert lower.evaluate(0.10, 0.105, None, "r1")["passed"]  # within 10%
    bad = lower.evaluate(0.10, 0.2, (0.15, 0.25), "r1")
    assert not bad["passed"] and "0.2 now vs 0.1 in r1" in bad["detail"] and "tolerance 0.1 relative" in bad["detail"]
    assert lower.evaluate(0.10, 0.2, (0.05, 0.25), "r1")["passed"]  # earlier value inside today's CI
    assert lower.evaluate(0.10, 0.01, None, "r1")["passed"]  # better
    higher = RegressionCheck("rtn-w4", "top1_agreement", Tolerance(abs=0.01))
    assert not higher.evaluate(0.9, 0.8, None, "r1")["passed"]
    assert higher.evaluate(0.8, 0.9, None, "r1")["passed"]
    assert not lower.evaluate(0.1, math.nan, None, "r1")["passed"]  # NaN never passes


@given(earlier=st.floats(0, 10), better=st.floats(0, 10), rel=st.floats(0, 1), ab=st.floats(0, 1))
def test_improvement_never_fails(earlier, better, rel, ab):
    tol = Tolerance(rel=rel, abs=ab)
    assert RegressionCheck("s", "kld_mean", tol).evaluate(earlier, earlier - better, None, "r")["passed"]
    assert RegressionCheck("s", "top1_agreement", tol).evaluate(earlier, earlier + better, None, "r")["passed"]


def _results(**over):
    r = {"model": {"id": "m", "revision": "main"}, "corpus": {"sha256": "c1", "seq_len": 128},
         "prompts": {"sha256": "p1", "n": 48}, "settings": {"n_sequences": 16, "spec": ["rtn-w4g32"]},
         "harness_version": "0.1.0"}
    for k, v in over.items():
        r[k] = {**r[k], **v}
    return r


@pytest.mark.parametrize("over,needle", [
    ({"model": {"id": "other"}}, "model differs (m in r0, other now)"),
    ({"corpus": {"sha256": "c2"}}, "corpus sha256 differs"),
    ({"prompts": {"sha256": "p2"}}, "prompts sha256 differs"),
    ({"settings": {"spec": ["rtn-w3g32"]}}, "spec differs"),
    ({"model": {"revision": "v2"}}, "revision differs"),
])
def test_incomparable_runs_name_the_difference(over, needle):
    with pytest.raises(UsageError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        check_comparable(identity(_results(**over)), identity(_results()), "r0")
    check_comparable(identity(_results()), identity(_results()), "r0")


def _run(suite_dir, report, *extra):
    return suite_dir.runpytest_subprocess("suites", *TINY, "--quant", "rtn-w8,rtn-w4g16", "--report-dir",
                                          str(report), "--policy", str(suite_dir.path / "policy.toml"), *extra)


def test_regression_items_fail_only_on_a_worse_run(suite_dir, tmp_path):
    (suite_dir.path / "policy.toml").write_text(POLICY)
    report = tmp_path / "rep"
    first = _run(suite_dir, report)
    assert first.ret == 0, first.stdout.str()
    assert "test_regression[" not in first.stdout.str()
    # A plain rerun against the first passes: same inputs, same numbers.
    again = _run(suite_dir, report, "--compare", "latest", "-v")
    assert again.ret == 0, again.stdout.str()
    again.stdout.fnmatch_lines(["*test_regression?rtn-w4g16-kld_mean? PASSED*"])
    # The hook measures rtn-w2g16 under the name rtn-w4g16: only its regression items fail.
    with open(suite_dir.path / "conftest.py", "a") as f:
        f.write("\n\ndef pytest_quantsink_measure_as(qconfig):\n"
                "    return 'rtn-w2g16' if qconfig.spec == 'rtn-w4g16' else None\n")
    worse = _run(suite_dir, report, "--compare", "latest", "-rf")
    assert worse.ret == 1
    failed = [ln for ln in worse.stdout.lines if ln.startswith("FAILED")]
    assert failed and all("test_regression[rtn-w4g16-" in ln for ln in failed), failed
    worse.stdout.fnmatch_lines(["*regression: rtn-w4g16: kld_mean * now vs * in * (worse by *; tolerance *"])
    runs = [json.loads(x) for x in (report / "index.jsonl").read_text().splitlines()]
    last = json.loads((report / runs[-1]["run_id"] / "results.json").read_text())
    assert last["verdict"] == "fail" and last["compare"]["run_id"] == runs[-2]["run_id"]
    summary = (report / runs[-1]["run_id"] / "summary.md").read_text()
    assert f"## Change from run `{runs[-2]['run_id']}`: 2 regression(s)" in summary
    assert "| `rtn-w4g16` | kld_mean |" in summary and "**regression**" in summary
    by = {c["spec"]: c for c in last["configs"]}
    assert by["rtn-w4g16"]["measured_as"] == "rtn-w2g16" and "measured_as" not in by["rtn-w8"]


def test_compare_refuses_other_corpus_and_missing_runs(suite_dir, tmp_path):
    (suite_dir.path / "policy.toml").write_text(POLICY)
    report = tmp_path / "rep"
    assert _run(suite_dir, report).ret == 0
    corpus = suite_dir.path / "c.txt"
    corpus.write_text("A different corpus of plain words, repeated to have enough tokens. " * 40)
    res = _run(suite_dir, report, "--compare", "latest", "--corpus", str(corpus))
    assert res.ret == 4 and "corpus sha256 differs" in res.stderr.str()
    res = _run(suite_dir, report, "--compare", "no-such-run")
    assert res.ret == 4 and "does not exist" in res.stderr.str()
    res = _run(suite_dir, report, "--compare", "pinned")
    assert res.ret == 4 and "--pin RUN_ID" in res.stderr.str()


def test_pin_and_compare_pinned(suite_dir, tmp_path):
    (suite_dir.path / "policy.toml").write_text(POLICY)
    report = tmp_path / "rep"
    assert _run(suite_dir, report).ret == 0
    rid = json.loads((report / "index.jsonl").read_text().splitlines()[0])["run_id"]
    pinned = suite_dir.runpytest_subprocess("suites", "--report-dir", str(report), "--pin", rid)
    assert pinned.ret == 0 and f"pinned run {rid}" in pinned.stdout.str() + pinned.stderr.str()
    assert _run(suite_dir, report).ret == 0  # a newer run: pinned still points at the first
    res = _run(suite_dir, report, "--compare", "pinned", "-v")
    assert res.ret == 0
    res.stdout.fnmatch_lines([f"*comparing with pinned run {rid}*"])
    bad = suite_dir.runpytest_subprocess("suites", "--report-dir", str(report), "--pin", "nope")
    assert bad.ret == 4 and "no such run" in bad.stderr.str()
