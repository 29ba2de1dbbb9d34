"""A new user's first runs through both entry points: --pin pins and runs nothing, --help resolves no model, report
directories that cannot be written are usage errors before anything is measured, python -m harness prints what
pytest prints (header, verdict, one line per backend warning, Ctrl-C in one line), runs keep the umask's
permissions, and the command-line edges are one-line usage errors."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from harness.config.build import build_spec

ROOT = Path(__file__).resolve().parents[2]


def _harness(*args, env=None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=ROOT, env=env, **kw
    )


def _one_error_line(res) -> str:
    err = res.stderr.strip().splitlines()
    assert res.returncode == 4 and len(err) == 1 and err[0].startswith("ERROR: "), res.stdout + res.stderr
    assert "Traceback" not in res.stdout + res.stderr
    return err[0]


@pytest.fixture(scope="module")
def first(tmp_path_factory, tiny_run_in):
    """One `python -m harness` run of bnb-int8 on the tiny model under umask 022: (TinyRun, CompletedProcess)."""
    tiny = tiny_run_in(tmp_path_factory.mktemp("first"))
    res = subprocess.run(
        [sys.executable, "-m", "harness", *tiny.flags(quant="bnb-int8")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        umask=0o022,
    )
    assert res.returncode == 0, res.stdout + res.stderr  # a tiny run is inconclusive: exit 0
    return tiny, res


def test_python_m_harness_prints_the_header_and_the_verdict_without_backend_noise(first):
    _, res = first
    out = res.stdout + res.stderr
    assert "quantsink: profile smoke" in res.stdout and "quantsink: model tiny-llama" in res.stdout
    assert "quantsink: configurations bnb-int8; no comparison" in res.stdout
    assert "quantsink verdict: INCONCLUSIVE" in res.stdout
    for noise in ("MatMul8bitLt", "gemm_4bit", "pip install kernels", "Traceback", "UserWarning", "__baseline__"):
        assert noise not in out, noise
    assert len(out.splitlines()) < 40, out
    # the verdict word and the first category are two things: "inconclusive: not applicable: ..."
    assert not re.search(r"(inconclusive|fail|pass) (not applicable|insufficient|failed)", res.stdout), res.stdout


def test_runs_keep_the_permissions_of_the_umask(first):
    tiny, _ = first
    _, run_dir = tiny.results()
    assert run_dir.stat().st_mode & 0o777 == 0o755
    for f in [*run_dir.iterdir(), tiny.report_dir / "index.jsonl"]:
        assert f.stat().st_mode & 0o777 == 0o644, f


def test_the_weights_sha256_is_recorded_and_shown(first):
    tiny, _ = first
    results, run_dir = tiny.results()
    sha = results["model"]["source"]["sha256"]
    assert re.fullmatch(r"[0-9a-f]{64}", sha or "")
    assert f"model sha256</th><td>{sha}</td>" in (run_dir / "report.html").read_text()


def test_reports_head_undecided_gates_as_not_passed_rather_than_failed(first):
    tiny, _ = first
    _, run_dir = tiny.results()
    summary, page = (run_dir / "summary.md").read_text(), (run_dir / "report.html").read_text()
    assert "gates not passed" in summary and "failed gates" not in summary
    assert "gates not passed, failures first" in page and "failing gates" not in page


def test_an_unreadable_newer_run_is_not_counted_among_runs_with_other_inputs(first, tmp_path):
    from harness.config.identity import comparable_identity
    from harness.history.runs import resolve

    tiny, _ = first
    results, run_dir = tiny.results()
    report = tmp_path / "rep"
    damaged = report / "damaged" / "results.json"
    damaged.parent.mkdir(parents=True)
    damaged.write_text('{"run_id": "cut in ha')
    row = json.loads((tiny.report_dir / "index.jsonl").read_text().splitlines()[0])
    lines = [row, {**row, "run_id": "damaged", "path": str(damaged)}]
    (report / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    got, note = resolve("latest", report, "tiny-llama", True, comparable_identity(results))
    assert got is not None and got["run_id"] == run_dir.name
    assert note == f"comparing with latest comparable run {run_dir.name}, skipping 1 unreadable newer run(s)"


def test_pin_pins_and_runs_nothing_under_both_entry_points(first, suite_dir):
    tiny, _ = first
    report = tiny.report_dir
    runs = sorted(d.name for d in report.iterdir() if d.is_dir())
    index = (report / "index.jsonl").read_text()
    err = _one_error_line(_harness("--report-dir", str(report), "--pin", "latest"))
    assert "--pin-anyway" in err and "inconclusive" in err  # a tiny run does not pass
    assert "no such run" in _one_error_line(_harness("--report-dir", str(report), "--pin", "nope", "--pin-anyway"))
    ok = _harness("--report-dir", str(report), "--pin", "latest", "--pin-anyway")
    assert ok.returncode == 0 and ok.stdout.startswith(f"quantsink: pinned run {runs[0]}"), ok.stdout + ok.stderr
    res = suite_dir.runpytest_subprocess(
        "suites", "-p", "no:cacheprovider", "--report-dir", str(report), "--pin", "latest", "--pin-anyway"
    )
    assert res.ret == 0 and f"pinned run {runs[0]}" in res.stdout.str()
    pins = [json.loads(line) for line in (report / "pins.jsonl").read_text().splitlines()]
    assert [p["run_id"] for p in pins] == [runs[0], runs[0]]
    assert sorted(d.name for d in report.iterdir() if d.is_dir()) == runs, "--pin measured a run"
    assert (report / "index.jsonl").read_text() == index
    # a malformed index line: quantsink's one-line warning, not Python's UserWarning with its source line
    with open(report / "index.jsonl", "a") as f:
        f.write('{"run_id": "cut in ha\n')
    hist = _harness("history", str(report))
    assert hist.returncode == 0 and "UserWarning" not in hist.stderr
    assert hist.stderr.strip().splitlines() == [
        f"quantsink: warning: {report / 'index.jsonl'}:2: skipping a malformed line (truncated or not JSON)"
    ]


def test_pytest_suites_help_resolves_no_model_and_writes_nothing(tmp_path):
    cache, hf = tmp_path / "cache", tmp_path / "hf"
    cache.mkdir(), hf.mkdir()
    env = dict(os.environ, QS_CACHE_DIR=str(cache), HF_HOME=str(hf))
    # CPU seconds of the child, not wall time: other tests on the same cores (-n 2) stretch the wall clock
    t0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "suites", "--help", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    t1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    took = (t1.ru_utime - t0.ru_utime) + (t1.ru_stime - t0.ru_stime)
    assert res.returncode == 0 and "--quant" in res.stdout, res.stdout + res.stderr
    assert took < 5, f"pytest suites --help took {took:.1f} CPU seconds"
    assert not list(cache.rglob("*")) and not list(hf.rglob("*")), "--help wrote to the caches"


def test_a_report_or_reference_dir_that_cannot_be_written_is_a_usage_error_before_measuring(tiny_run, tmp_path):
    from harness.errors import UsageError

    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    cases = [
        ({"report_dir": str(a_file)}, "--report-dir"),
        ({"report_dir": str(a_file / "below")}, "--report-dir"),
        ({"reference": True, "reference_dir": str(a_file)}, "--reference-dir"),
    ]
    if Path("/proc/self").is_dir():  # a read-only directory even for root
        cases.append(({"report_dir": "/proc/quantsink-runs"}, "not writable"))
    for over, needle in cases:
        with pytest.raises(UsageError, match=needle):
            tiny_run(quant="rtn-w8", **over)
        assert tiny_run.lines == [], f"{over}: measured before the check: {tiny_run.lines}"
    assert _one_error_line(_harness(*tiny_run.flags(quant="rtn-w8", report_dir=str(a_file)))).endswith(
        "is a file, not a directory; give a directory for the runs"
    )
    res = tiny_run.pytest(quant="rtn-w8", report_dir=str(a_file))
    text = res.stdout.str() + res.stderr.str()
    assert res.ret == 4 and "FileExistsError" not in text and "FAILED" not in text, text
    assert a_file.read_text() == "not a directory\n"


def test_a_stream_len_beyond_the_models_positions_is_a_usage_error_before_measuring(tiny_run):
    from harness.errors import UsageError

    with pytest.raises(UsageError, match="--stream-len 100000 is longer than the model's 1024 positions"):
        tiny_run(quant="rtn-w8", scenarios="streaming", stream_len=100000)
    assert tiny_run.lines == [] and not tiny_run.report_dir.exists()


@pytest.mark.parametrize(
    "args, needle",
    [
        (["methods", "--bogus"], "unrecognized arguments: --bogus"),
        (["--model", "tiny-llama", "--quant", ""], "--quant is empty"),
        (["--model", "tiny-llama", "--reference-dir", "refs"], "--reference-dir names where baseline references live"),
        (["--model", "tiny-llama", "--scenarios", "bos", "--stream-window", "64"], "add --scenarios streaming"),
        (["--model", "tiny-llama", "--scenarios", "packed", "--stream-sinks", "-1"], "--stream-sinks"),
        (["--model", "tiny-llama", "--quant", "rtn-w8", "--policy", "docs"], "--policy docs is a directory"),
    ],
)
def test_command_line_edges_are_one_line_usage_errors(args, needle):
    assert needle in _one_error_line(_harness(*args))


def test_help_names_every_subcommand_and_subcommand_help_prints_usage():
    top = _harness("--help")
    assert top.returncode == 0
    described = " ".join(top.stdout.split())
    assert "Subcommands: metrics, methods, shard, merge, history" in described
    for sub in ("metrics", "methods"):
        res = _harness(sub, "--help")
        assert res.returncode == 0 and res.stdout.startswith(f"usage: python -m harness {sub}"), res.stdout
        assert "ppl_ratio" not in res.stdout  # the usage, not the catalogue


def test_reference_turns_a_profiles_own_scenarios_off_instead_of_blaming_scenarios():
    assert build_spec({"reference": True, "profile": "nightly"}).scenarios == "none"


def test_ctrl_c_under_python_m_harness_exits_2_in_one_line(tiny_run, tmp_path, isolated_cache):
    corpus = tmp_path / "long.txt"  # many batches: long enough to interrupt
    corpus.write_text(
        "".join(f"Line {i}: the quick brown fox {i % 97} jumps over {i % 89} lazy dogs.\n" for i in range(5000))
    )
    flags = tiny_run.flags(quant="rtn-w8", corpus=str(corpus), n_sequences=400, seq_len=512)
    cmd = [sys.executable, "-u", "-m", "harness", *flags]
    p = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background shell ignores SIGINT
    )
    killer = threading.Timer(240, p.kill)
    killer.start()
    seen = []
    for line in p.stdout:
        seen.append(line)
        if "corpus batch 2/" in line:
            p.send_signal(signal.SIGINT)
            break
    out, err = p.communicate(timeout=120)
    killer.cancel()
    assert p.returncode == 2, "".join(seen) + out + err
    assert err.strip().splitlines() == ["quantsink: interrupted: no results written, index.jsonl unchanged"], err
    report = tiny_run.report_dir
    assert not report.exists() or not [d for d in report.iterdir() if d.is_dir()]


def test_a_regression_check_against_the_run_a_cached_measurement_came_from_says_so(
    tiny_run, isolated_cache, monkeypatch
):
    monkeypatch.setenv("QS_RESULTS_CACHE", "on")
    cold = tiny_run(quant="rtn-w8")
    warm = tiny_run(quant="rtn-w8", compare="latest")
    (c,) = warm["configs"]
    assert c["cache"]["run_id"] == cold["run_id"]
    assert c["regressions"], "the bundled policy checks regressions"
    for r in c["regressions"]:
        assert r["detail"].endswith("reused from that very run (results cache): nothing new"), r["detail"]


@pytest.mark.parametrize("text", ["", "# no tables yet\n"])
def test_an_empty_policy_file_names_the_limits_all_table(tmp_path, text):
    from harness.errors import UsageError
    from harness.gates.policy import load_policy

    p = tmp_path / "policy.toml"
    p.write_text(text)
    with pytest.raises(UsageError, match=r"has no limits: give a \[limits\.all\] table"):
        load_policy(p)
