"""History: --compare, comparability, regression gates, pins, the measure-as test hook."""

import json
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.config.identity import check_comparable, comparable_identity
from harness.errors import UsageError
from harness.gates.regression import RegressionCheck, Tolerance

TINY = ["--model", "tiny-llama", "--n-sequences", "4", "--seq-len", "48", "--max-new-tokens", "6", "--n-prompts", "16"]
# Gates that always pass on tiny models, so a run fails only through its regression items.
POLICY = """
[limits.all]
logit_delta_max = { min = 1e-6 }
[regression]
kld_mean = { rel = 0.10, abs = 0.0005 }
top1_agreement = { abs = 0.01 }
"""


def test_regression_direction_tolerance_and_significance():
    lower = RegressionCheck("rtn-w4", "kld_mean", Tolerance(rel=0.1))
    assert lower.evaluate(0.10, 0.105, None, "r1")["passed"]  # within 10%
    bad = lower.evaluate(0.10, 0.2, (0.15, 0.25), "r1")
    assert not bad["passed"] and "0.2 now vs 0.1 in r1" in bad["detail"] and "tolerance 0.1 relative" in bad["detail"]
    # beyond tolerance, but the paired per-item change is not systematic: not a regression
    noisy = lower.evaluate(0.10, 0.2, (0.05, 0.25), "r1", {"significant": False, "detail": "per-sequence ..."})
    assert noisy["passed"] and "not a systematic change" in noisy["detail"]
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
    r = {
        "model": {"id": "m", "revision": "main", "source": {"sha256": "a" * 64}, "baseline_dtype": "fp32"},
        "corpus": {"sha256": "c" * 64, "seq_len": 128},
        "prompts": {"sha256": "p" * 64, "n": 48},
        "environment": {"device": "cpu", "torch": "2.12.0", "transformers": "4.50.0"},
        "settings": {
            "n_sequences": 16,
            "spec": ["rtn-w4g32"],
            "bos": "auto",
            "sink_positions": [0],
            "seed": 0,
            "max_new_tokens": 16,
            "long_new_tokens": 64,
            "batch_size": 4,
        },
        "harness_version": "0.1.0",
    }
    for k, v in over.items():
        r[k] = {**r[k], **v} if isinstance(v, dict) else v
    return r


@pytest.mark.parametrize(
    "over,needle",
    [
        ({"model": {"id": "other"}}, "model differs (m in r0, other now)"),
        ({"corpus": {"sha256": "d" * 64}}, f"corpus sha256 differs ({'c' * 12} in r0, {'d' * 12} now)"),
        ({"prompts": {"sha256": "q" * 64}}, "prompts sha256 differs"),
        ({"model": {"revision": "v2"}}, "revision differs"),
    ],
)
def test_incomparable_runs_name_the_difference(over, needle):
    with pytest.raises(UsageError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        check_comparable(comparable_identity(_results(**over)), comparable_identity(_results()), "r0")
    check_comparable(comparable_identity(_results()), comparable_identity(_results()), "r0")


@pytest.mark.parametrize(
    "over,needle",
    [
        ({"model": {"source": {"sha256": "b" * 64}}}, "weights sha256 differs"),
        ({"settings": {"bos": "never"}}, "bos differs (auto in r0, never now)"),
        ({"settings": {"sink_positions": [0, 1]}}, "sink positions differs (0 in r0, 0,1 now)"),
        ({"corpus": {"seq_len": 256}}, "seq_len differs (128 in r0, 256 now)"),
        ({"settings": {"n_sequences": 48}}, "n_sequences differs"),
        ({"settings": {"max_new_tokens": 32}}, "max_new_tokens differs"),
        ({"settings": {"long_new_tokens": 256}}, "long_new_tokens differs"),
        ({"settings": {"seed": 1}}, "seed differs"),
        ({"model": {"baseline_dtype": "fp16"}}, "baseline dtype differs (fp32 in r0, fp16 now)"),
        ({"environment": {"device": "cuda:0"}}, "device type differs (cpu in r0, cuda now)"),
        ({"settings": {"batch_size": 2}}, "batch size differs (4 in r0, 2 now)"),
        ({"harness_version": "1.0.0"}, "harness major version differs (0 in r0, 1 now)"),
    ],
)
def test_item9_identity_is_the_data_identity(over, needle):
    with pytest.raises(UsageError) as e:
        check_comparable(comparable_identity(_results(**over)), comparable_identity(_results()), "r0")
    msg = str(e.value)
    assert needle in msg and msg.count("differs") == 1 and len(msg) < 200, msg


def test_item9_configurations_libraries_and_unrecorded_keys_are_not_identity():
    from harness.history.runs import compare_details

    now = _results(settings={"spec": ["rtn-w4g32", "bnb-int8"]}, environment={"device": "cuda:1", "torch": "2.13"})
    before = _results(settings={"spec": ["rtn-w4g32", "rtn-w3g32"]}, environment={"device": "cuda:0"})
    check_comparable(
        comparable_identity(now), comparable_identity(before), "r0"
    )  # spec list, device index, torch version
    old = _results()  # written before results.json recorded batch_size and long_new_tokens: unknown
    del old["settings"]["batch_size"], old["settings"]["long_new_tokens"]
    check_comparable(
        comparable_identity(_results(settings={"batch_size": 1, "long_new_tokens": 8})), comparable_identity(old), "r0"
    )
    note = compare_details(before, now["settings"]["spec"], {"torch": "2.13", "transformers": "4.50.0"})
    assert note == (
        "; not in the earlier run: bnb-int8; not measured now: rtn-w3g32; "
        "changed since the earlier run: torch 2.12.0 -> 2.13"
    )
    assert compare_details(before, ["rtn-w4g32", "rtn-w3g32"], {"torch": "2.12.0", "transformers": "4.50.0"}) == ""


def test_item9_compare_pinned_takes_the_newest_comparable_pin(tmp_path):
    from harness.history.runs import resolve

    for rid, seq in (("r1", 128), ("r2", 256)):
        (tmp_path / rid).mkdir()
        res = _results(corpus={"seq_len": seq})
        res.update(schema="quantsink.results/1", run_id=rid, verdict="pass")
        (tmp_path / rid / "results.json").write_text(json.dumps(res))
        with open(tmp_path / "pins.jsonl", "a") as f:
            f.write(json.dumps({"run_id": rid, "model": "m"}) + "\n")
    cur = comparable_identity(_results())
    got, note = resolve("pinned", tmp_path, "m", True, cur)
    assert got["run_id"] == "r1" and note == "comparing with pinned run r1, skipping 1 newer one(s) with other inputs"
    got, note = resolve("pinned", tmp_path, "m", True, comparable_identity(_results(settings={"seed": 5})))
    assert got is None and note.startswith("no comparable pinned run: no regression gates") and "seed" in note
    with pytest.raises(UsageError, match="seq_len differs"):
        resolve("r2", tmp_path, "m", True, cur)  # named explicitly: an error, not a fallback


def _run(suite_dir, report, *extra):
    return suite_dir.runpytest_subprocess(
        "suites",
        *TINY,
        "--quant",
        "rtn-w8,rtn-w4g16",
        "--report-dir",
        str(report),
        "--policy",
        str(suite_dir.path / "policy.toml"),
        *extra,
    )


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
        f.write(
            "\n\ndef pytest_quantsink_measure_as(qconfig):\n"
            "    return 'rtn-w2g16' if qconfig.spec == 'rtn-w4g16' else None\n"
        )
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
    rid = json.loads((report / "index.jsonl").read_text().splitlines()[0])["run_id"]
    corpus = suite_dir.path / "c.txt"
    corpus.write_text("A different corpus of plain words, repeated to have enough tokens. " * 40)
    res = _run(suite_dir, report, "--compare", rid, "--corpus", str(corpus))  # named: must be comparable
    assert res.ret == 4 and "corpus sha256 differs" in res.stderr.str()
    res = _run(suite_dir, report, "--compare", "no-such-run")
    assert res.ret == 4 and "no run no-such-run" in res.stderr.str() and "valid: latest, pinned" in res.stderr.str()
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


def _runs(report):
    return [json.loads(x)["run_id"] for x in (report / "index.jsonl").read_text().splitlines()]


def test_item9_compare_latest_takes_the_newest_comparable_run(suite_dir, tmp_path):
    """A run with other inputs (a smoke run before a nightly one) no longer blocks --compare latest, and a
    changed configuration list is compared where it can be."""
    (suite_dir.path / "policy.toml").write_text(POLICY)
    report = tmp_path / "rep"
    assert _run(suite_dir, report).ret == 0  # A
    assert _run(suite_dir, report, "--seq-len", "40", "--quant", "rtn-w8").ret == 0  # B: newer, other inputs
    a, b = _runs(report)
    res = _run(suite_dir, report, "--compare", "latest", "--quant", "rtn-w4g16,rtn-w3g16", "-v")
    assert res.ret == 0, res.stdout.str() + res.stderr.str()
    res.stdout.fnmatch_lines(
        [
            f"*comparing with latest comparable run {a}, skipping 1 newer one(s) with other "
            f"inputs; not in the earlier run: rtn-w3g16; not measured now: rtn-w8*",
            "*test_regression?rtn-w4g16-kld_mean? PASSED*",
        ]
    )
    assert "test_regression[rtn-w3g16" not in res.stdout.str()
    last = json.loads((report / _runs(report)[-1] / "results.json").read_text())
    assert last["compare"]["run_id"] == a and "not in the earlier run: rtn-w3g16" in last["compare"]["note"]
    # No comparable run at all: said, and the run goes on (collection only here: nothing is measured).
    res = _run(suite_dir, report, "--compare", "latest", "--seq-len", "32", "--collect-only")
    assert res.ret == 0, res.stdout.str() + res.stderr.str()
    res.stdout.fnmatch_lines(["*no comparable earlier run: no regression gates*"])
    # A run named explicitly stays an error: short hashes, one clause per difference.
    corpus = suite_dir.path / "c.txt"
    corpus.write_text("A different corpus of plain words, repeated to have enough tokens. " * 40)
    res = _run(suite_dir, report, "--compare", b, "--corpus", str(corpus))
    errs = [ln for ln in res.stderr.lines if ln.startswith("ERROR:")]  # (libraries warn on stderr too)
    assert res.ret == 4 and len(errs) == 1, res.stderr.str()
    err = errs[0]
    assert "seq_len differs (40 in" in err and "corpus sha256 differs (" in err and err.count("differs") == 2, err
    assert not re.search(r"[0-9a-f]{13}", err) and len(err) < 400, err


def _fake_run(report, rid, verdict):
    (report / rid).mkdir(parents=True)
    (report / rid / "results.json").write_text(
        json.dumps({"schema": "quantsink.results/1", "run_id": rid, "verdict": verdict, "model": {"id": "tiny-llama"}})
    )


def test_item5_pinning_a_failing_run_needs_pin_anyway(suite_dir, tmp_path):
    report = tmp_path / "rep"
    _fake_run(report, "r-fail", "fail")
    _fake_run(report, "r-pass", "pass")
    pin = ("suites", "--report-dir", str(report), "--pin")
    bad = suite_dir.runpytest_subprocess(*pin, "r-fail")
    errs = [ln for ln in bad.stderr.lines if ln.startswith("ERROR:")]
    err = errs[0] if len(errs) == 1 else bad.stderr.str()
    assert bad.ret == 4 and len(errs) == 1 and "--pin-anyway" in err and "fail" in err, err
    assert not (report / "pins.jsonl").exists()
    for rid, extra, word in (
        ("r-fail", ["--pin-anyway"], "verdict fail, pinned with --pin-anyway"),
        ("r-pass", [], "verdict pass"),
    ):
        ok = suite_dir.runpytest_subprocess(*pin, rid, *extra)
        line = f"quantsink: pinned run {rid} (tiny-llama, {word}) as the sign-off baseline for --compare pinned"
        assert ok.ret == 0 and ok.stdout.lines.count(line) == 1, ok.stdout.str()
        assert "pinned run" not in ok.stderr.str(), ok.stderr.str()  # not repeated as pytest's "Exit: ..." line
    pins = [json.loads(x) for x in (report / "pins.jsonl").read_text().splitlines()]
    assert [(p["run_id"], p["verdict"], p.get("pinned_anyway")) for p in pins] == [
        ("r-fail", "fail", True),
        ("r-pass", "pass", None),
    ]
