"""pytest plugin: options (each with an ini twin), the session fixture, gate parametrization.

Loaded once, from the root conftest.py. It stays passive until a suite activates
it (suites/conftest.py calls `activate`), so `pytest tests` never loads a model.
"""
from __future__ import annotations

import contextlib
import json
import sys

import pytest

from .errors import UsageError

# (flag, ini name, help, kind)
OPTIONS = [
    ("--model", "qs_model", "Hub id, local directory, .gguf file or alias (smollm2-135m, tiny-<arch>)", "str"),
    ("--revision", "qs_revision", "Hub revision / commit (default: main)", "str"),
    ("--quant", "qs_quant", "comma-separated quantization specs, e.g. bnb-int8,gptq-w4g128,rtn-w3g32", "str"),
    ("--bits", "qs_bits", "shorthand with --methods: bit-widths, e.g. 8,4", "str"),
    ("--methods", "qs_methods", "shorthand with --bits: methods, e.g. bnb,gptq,rtn", "str"),
    ("--device", "qs_device", "auto | cpu | cuda | cuda:N (default auto)", "str"),
    ("--baseline-dtype", "qs_baseline_dtype", "fp16 | bf16 | fp32 (default fp16 on CUDA, fp32 on CPU)", "str"),
    ("--corpus", "qs_corpus", "bundled | python-docs | PATH (.txt, .jsonl or directory)", "str"),
    ("--prompts", "qs_prompts", "bundled | PATH (.jsonl)", "str"),
    ("--bos", "qs_bos", "auto | always | never: start sequences with the tokenizer's BOS", "str"),
    ("--sink-positions", "qs_sink_positions", "key positions treated as sinks (default 0)", "str"),
    ("--policy", "qs_policy", "gate thresholds (TOML); default: the bundled policy", "str"),
    ("--profile", "qs_profile", "smoke | nightly | signoff (default smoke)", "str"),
    ("--report-dir", "qs_report_dir", "where runs are written (default reports/)", "str"),
    ("--compare", "qs_compare", "earlier run to compare with: latest | RUN_ID | PATH | none", "str"),
    ("--pin", "qs_pin", "mark RUN_ID as the approved sign-off baseline (for --compare pinned), then exit", "str"),
    ("--signoff", "qs_signoff", "strict: a skipped or missing measurement fails the run", "bool"),
    ("--allow-pickle", "qs_allow_pickle", "allow pickle (*.bin) checkpoints", "bool"),
    ("--trust-remote-code", "qs_trust_remote_code", "allow a checkpoint's own Python code", "bool"),
    ("--lockstep", "qs_lockstep", "auto | on | off: measure all configurations together, running the "
     "baseline once per corpus batch (auto: when the models fit in memory)", "str"),
    ("--protect-sink", "qs_protect_sink", "also measure each configuration with the sink prefix's hidden states "
     "and K/V taken from the baseline (IntactKV-style) and report how much of the gap that recovers", "bool"),
    ("--long-new-tokens", "qs_long_new_tokens", "long generations: new tokens per prompt (default from profile)", "str"),
    ("--qs-threads", "qs_threads", "torch threads (default: OMP_NUM_THREADS, else measured choice)", "str"),
    ("--seq-len", "qs_seq_len", "tokens per corpus sequence (default from profile)", "str"),
    ("--n-sequences", "qs_n_sequences", "corpus sequences measured (default from profile)", "str"),
    ("--max-new-tokens", "qs_max_new_tokens", "greedy tokens generated per prompt (default from profile)", "str"),
    ("--n-prompts", "qs_n_prompts", "prompts generated (0 = all; default from profile)", "str"),
]
_INT = {"qs_long_new_tokens": "long_new_tokens", "qs_threads": "threads", "qs_seq_len": "seq_len", "qs_n_sequences": "n_sequences",
        "qs_max_new_tokens": "max_new_tokens", "qs_n_prompts": "n_prompts"}
_KEY = pytest.StashKey["object"]()
_SESSIONS: list = []  # active sessions of this process (pytest_keyboard_interrupt has no config)


def pytest_addhooks(pluginmanager):
    from . import hooks

    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser):
    group = parser.getgroup("quantsink", "quantsink: sign-off of quantized LLMs")
    for flag, ini, help_, kind in OPTIONS:
        dest = ini
        if kind == "bool":
            group.addoption(flag, action="store_true", default=None, dest=dest, help=help_)
            parser.addini(ini, help_, type="bool", default=None)
        else:
            group.addoption(flag, action="store", default=None, dest=dest, help=help_)
            parser.addini(ini, help_, default=None)


def option_values(config) -> dict:
    """Command line beats ini; None means 'let the profile decide'."""
    out = {}
    for _, ini, _, kind in OPTIONS:
        v = config.getoption(ini)
        if v is None:
            v = config.getini(ini)
            if v in ("", []):
                v = None
        key = _INT.get(ini) or ini[len("qs_"):]
        if v is not None and ini in _INT:
            try:
                v = int(v)
            except ValueError:
                raise pytest.UsageError(f"--{key.replace('_', '-')} takes an integer (got '{v}')") from None
        out[key] = v
    return out


def activate(config) -> None:
    """Build the run from the options and check every input; usage errors stop pytest (exit 4)."""
    if config.stash.get(_KEY, None) is not None:
        return
    from .session import Session
    from .spec import build_spec

    try:
        spec = build_spec(option_values(config))
        if spec.pin:
            from .history import pin

            rec = pin(spec.report_dir, spec.pin)
            pytest.exit(f"quantsink: pinned run {rec['run_id']} ({rec['model']}, verdict {rec['verdict']}) "
                        f"as the sign-off baseline for --compare pinned", returncode=0)
        if _is_worker(config):
            spec.lockstep = "off"  # a pytest-xdist worker measures only the configurations it was given
        session = Session(spec, progress=_progress(config), substitute=_substitute(config)).prepare()
    except UsageError as e:
        raise pytest.UsageError(str(e)) from None
    config.stash[_KEY] = session
    _SESSIONS.append(session)
    session.junit_per_item = config.getini("junit_family") in ("xunit1", "legacy")
    if getattr(config.option, "dist", "no") == "load" and getattr(config.option, "numprocesses", None):
        # pytest -n N: keep each configuration's items on one worker (one quantization each).
        config.option.dist = "loadgroup"


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def _substitute(config):
    def sub(q):
        from .quant.registry import parse_spec

        got = config.hook.pytest_quantsink_measure_as(qconfig=q)
        return parse_spec(got) if isinstance(got, str) else got
    return sub


def _progress(config):
    def emit(msg: str) -> None:
        tr = config.pluginmanager.get_plugin("terminalreporter")
        capman = config.pluginmanager.get_plugin("capturemanager")
        line = f"[quantsink] {msg}"
        # Inside a test pytest captures fd 1, terminal writer included: suspend it so a long
        # run is never silent.
        ctx = capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()
        with ctx:
            if tr is not None:
                if getattr(getattr(tr, "_tw", None), "width_of_current_line", 0):
                    tr.write("\n")  # after -q's progress dots
                tr.write_line(line)
                tr.flush()
            else:
                print(line, file=sys.stderr, flush=True)
    return emit


def get_session(config):
    return config.stash.get(_KEY, None)


def pytest_report_header(config):
    s = get_session(config)
    if s is None:
        return None
    sp = s.spec
    from .profiles import PROFILES

    changed = {k: v for k, v in PROFILES[sp.profile].items() if PROFILES["smoke"].get(k) != v}
    overridden = {k: getattr(sp, k) for k in PROFILES[sp.profile] if getattr(sp, k) != PROFILES[sp.profile][k]}
    what = ", ".join(f"{k}={v}" for k, v in changed.items()) or "the defaults"
    lines = [f"quantsink: profile {sp.profile} (sets {what})"
             + (f"; overridden: {', '.join(f'{k}={v}' for k, v in overridden.items())}" if overridden else ""),
             f"quantsink: model {sp.model}, device {sp.device}, {sp.n_sequences} x {sp.seq_len} tokens of "
             f"{sp.corpus}, {len(s.prompts.prompts)} prompts x {sp.max_new_tokens} new tokens"
             f"{', signoff (strict)' if sp.signoff else ''}",
             f"quantsink: configurations {', '.join(q.spec for q in sp.quant)}; {s.compare_note}"]
    return lines


def pytest_generate_tests(metafunc):
    s = get_session(metafunc.config)
    if s is None:
        return
    if "qs_config" in metafunc.fixturenames:
        metafunc.parametrize("qs_config", s.spec.quant, ids=[q.spec for q in s.spec.quant])
    if "qs_gate" in metafunc.fixturenames:
        pairs = [(q, m) for q in s.spec.quant for m in s.gate_metrics(q)]
        metafunc.parametrize("qs_gate", pairs, ids=[f"{q.spec}-{m}" for q, m in pairs])
    if "qs_regression" in metafunc.fixturenames:
        pairs = [(q, m) for q in s.spec.quant for m in s.regression_metrics(q)]
        metafunc.parametrize("qs_regression", pairs, ids=[f"{q.spec}-{m}" for q, m in pairs])


def pytest_collection_modifyitems(session, config, items):
    # Without --compare (or with nothing to compare) test_regression has no parameters:
    # drop it rather than show an empty-parameter skip.
    keep, drop = [], []
    for it in items:
        cs = getattr(it, "callspec", None)
        for name in ("qs_config", "qs_gate", "qs_regression"):
            if cs is not None and name in cs.params:
                q = cs.params[name]
                q = q[0] if isinstance(q, tuple) else q
                if hasattr(q, "spec"):
                    it.add_marker(pytest.mark.xdist_group(name=q.spec))
        mark = it.get_closest_marker("skip")
        empty = ("qs_regression" in getattr(it, "fixturenames", ()) and mark is not None
                 and "empty parameter set" in str(mark.kwargs.get("reason", "")))
        (drop if empty else keep).append(it)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def qs_session(request):
    s = get_session(request.config)
    if s is None:
        pytest.skip("quantsink is not active (run the suites: pytest suites)")
    return s


def pytest_keyboard_interrupt(excinfo):
    """Remember an interruption (Ctrl-C) so that sessionfinish writes no partial run."""
    for s in list(_SESSIONS):
        s.interrupted = True


def pytest_sessionfinish(session, exitstatus):
    s = get_session(session.config)
    if s is None or not s.configs:
        return
    if exitstatus == pytest.ExitCode.INTERRUPTED or getattr(s, "interrupted", False):
        # An interrupted run is not a run: write nothing rather than a partial verdict.
        s.progress("interrupted: no results written, index.jsonl unchanged")
        return
    from .results import clean, write_run

    if _is_worker(session.config):  # the controller merges every worker's configurations and writes once
        session.config.workeroutput["quantsink"] = json.dumps(clean(s.handoff()))
        return

    run_dir = write_run(s.results(), s.spec.report_dir)
    s.run_dir = run_dir


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist controller: take over a finished worker's measurements."""
    s = get_session(node.config)
    data = getattr(node, "workeroutput", {}).get("quantsink")
    if s is not None and data:
        s.take_over(json.loads(data))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    s = get_session(config)
    if s is None or getattr(s, "run_dir", None) is None:
        return
    res = s.results()
    terminalreporter.write_sep("=", f"quantsink verdict: {res['verdict'].upper()}")
    for c in res["configs"]:
        failed = [g["metric"] for g in c["gates"] if not g["passed"]]
        terminalreporter.write_line(f"  {c['spec']:<22} {c['verdict']:<8} "
                                    f"{'failed: ' + ', '.join(failed) if failed else ''}")
    terminalreporter.write_line(f"  results: {s.run_dir / 'results.json'}")
