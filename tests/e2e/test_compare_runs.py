"""Runs compared with earlier ones (--compare, --pin): regression items fail only on a worse run, named runs
must be comparable, the newest comparable run or pin is taken; the measure-as test hook makes a run worse."""

import json
import re

import pytest

pytestmark = pytest.mark.slow

# Gates that always pass on tiny models, so a run fails only through its regression items.
POLICY = """
[limits.all]
logit_delta_max = { min = 1e-6 }
[regression]
kld_mean = { rel = 0.10, abs = 0.0005 }
top1_agreement = { abs = 0.01 }
"""


@pytest.fixture
def compared(tiny_run, tmp_path):
    """`pytest suites` on the compared run: rtn-w8 and rtn-w4g16 on 4 x 48 corpus tokens (enough for the
    regression checks' intervals) under POLICY; compared(*args, **overrides)."""
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    run = dict(quant="rtn-w8,rtn-w4g16", n_sequences=4, seq_len=48, policy=str(policy))
    return lambda *args, **overrides: tiny_run.pytest(*args, **{**run, **overrides})


def _runs(report):
    return [json.loads(x)["run_id"] for x in (report / "index.jsonl").read_text().splitlines()]


def test_regression_items_fail_only_on_a_worse_run(compared, tiny_run, suite_dir):
    report = tiny_run.report_dir
    first = compared()
    assert first.ret == 0, first.stdout.str()
    assert "test_regression[" not in first.stdout.str()
    # A plain rerun against the first passes: same inputs, same numbers.
    again = compared("-v", compare="latest")
    assert again.ret == 0, again.stdout.str()
    again.stdout.fnmatch_lines(["*test_regression?rtn-w4g16-kld_mean? PASSED*"])
    # The hook measures rtn-w2g16 under the name rtn-w4g16: only its regression items fail.
    with open(suite_dir.path / "conftest.py", "a") as f:
        f.write(
            "\n\ndef pytest_quantsink_measure_as(qconfig):\n"
            "    return 'rtn-w2g16' if qconfig.spec == 'rtn-w4g16' else None\n"
        )
    worse = compared("-rf", compare="latest")
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


def test_compare_refuses_other_corpus_and_missing_runs(compared, tiny_run, tmp_path):
    assert compared().ret == 0
    (rid,) = _runs(tiny_run.report_dir)
    corpus = tmp_path / "c.txt"
    corpus.write_text("A different corpus of plain words, repeated to have enough tokens. " * 40)
    res = compared(compare=rid, corpus=str(corpus))  # named: must be comparable
    assert res.ret == 4 and "corpus sha256 differs" in res.stderr.str()
    res = compared(compare="no-such-run")
    assert res.ret == 4 and "no run no-such-run" in res.stderr.str() and "valid: latest, pinned" in res.stderr.str()
    res = compared(compare="pinned")
    assert res.ret == 4 and "--pin RUN_ID" in res.stderr.str()


def test_pin_and_compare_pinned(compared, tiny_run, suite_dir):
    report = tiny_run.report_dir
    assert compared().ret == 0
    (rid,) = _runs(report)
    pinned = suite_dir.runpytest_subprocess("suites", "--report-dir", str(report), "--pin", rid)
    assert pinned.ret == 0 and f"pinned run {rid}" in pinned.stdout.str() + pinned.stderr.str()
    assert compared().ret == 0  # a newer run: pinned still points at the first
    res = compared("-v", compare="pinned")
    assert res.ret == 0
    res.stdout.fnmatch_lines([f"*comparing with pinned run {rid}*"])
    bad = suite_dir.runpytest_subprocess("suites", "--report-dir", str(report), "--pin", "nope")
    assert bad.ret == 4 and "no such run" in bad.stderr.str()


def test_compare_latest_takes_the_newest_comparable_run(compared, tiny_run, tmp_path):
    """A run with other inputs (a smoke run before a nightly one) no longer blocks --compare latest, and a
    changed configuration list is compared where it can be."""
    report = tiny_run.report_dir
    assert compared().ret == 0  # A
    assert compared(seq_len=40, quant="rtn-w8").ret == 0  # B: newer, other inputs
    a, b = _runs(report)
    res = compared("-v", compare="latest", quant="rtn-w4g16,rtn-w3g16")
    assert res.ret == 0, res.stdout.str() + res.stderr.str()
    res.stdout.fnmatch_lines(
        [
            f"*comparing with latest comparable run {a}, skipping 1 newer run(s) with other "
            f"inputs; not in the earlier run: rtn-w3g16; not measured now: rtn-w8*",
            "*test_regression?rtn-w4g16-kld_mean? PASSED*",
        ]
    )
    assert "test_regression[rtn-w3g16" not in res.stdout.str()
    last = json.loads((report / _runs(report)[-1] / "results.json").read_text())
    assert last["compare"]["run_id"] == a and "not in the earlier run: rtn-w3g16" in last["compare"]["note"]
    # No comparable run at all: said, and the run goes on (collection only here: nothing is measured).
    res = compared("--collect-only", compare="latest", seq_len=32)
    assert res.ret == 0, res.stdout.str() + res.stderr.str()
    res.stdout.fnmatch_lines(["*no comparable earlier run: no regression gates*"])
    # A run named explicitly stays an error: short hashes, one clause per difference.
    corpus = tmp_path / "c.txt"
    corpus.write_text("A different corpus of plain words, repeated to have enough tokens. " * 40)
    res = compared(compare=b, corpus=str(corpus))
    errs = [ln for ln in res.stderr.lines if ln.startswith("ERROR:")]  # (libraries warn on stderr too)
    assert res.ret == 4 and len(errs) == 1, res.stderr.str()
    err = errs[0]
    assert "seq_len differs (40 in" in err and "corpus sha256 differs (" in err and err.count("differs") == 2, err
    assert not re.search(r"[0-9a-f]{13}", err) and len(err) < 400, err
