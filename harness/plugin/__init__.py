"""pytest plugin: options (generated from settings.SETTINGS), the session fixtures, gate parametrization.

Loaded once, from the root conftest.py. It stays passive until a suite activates it
(suites/conftest.py calls `activate`), so `pytest tests` never loads a model.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import sys
import threading

import pytest

from harness.config.build import build_spec
from harness.config.settings import SETTINGS
from harness.engine.session import Session
from harness.errors import UsageError
from harness.history.runs import pin, pin_line
from harness.methods import parse_spec
from harness.metrics.catalogue import BY_NAME
from harness.plugin import hookspecs
from harness.plugin.view import ResultView
from harness.report.historypage import write_history
from harness.report.results import clean
from harness.report.summary import verdict_lines
from harness.scale.cluster import fanout_for
from harness.system.devices import worker_device

_SESSION = pytest.StashKey["object"]()
_RUN_DIR = pytest.StashKey["object"]()
_JUNIT_PER_ITEM = pytest.StashKey[bool]()
_INTERRUPTED = pytest.StashKey[bool]()
_ACTIVE: list = []  # configs with an active session (pytest_keyboard_interrupt receives no config)


def pytest_addhooks(pluginmanager):
    pluginmanager.add_hookspecs(hookspecs)


def pytest_addoption(parser):
    group = parser.getgroup("quantsink", "quantsink: sign-off of quantized LLMs")
    for s in SETTINGS:
        if s.type == "bool":
            group.addoption(s.option, action="store_true", default=None, dest=s.ini, help=s.help_text())
            parser.addini(s.ini, s.help, type="bool", default=None)
        else:
            group.addoption(
                s.option,
                action="store",
                default=None,
                dest=s.ini,
                metavar=s.meta,
                help=s.help_text(),
                **({"nargs": "?", "const": s.const} if s.const is not None else {}),
            )
            parser.addini(s.ini, s.help, default=None)


@pytest.hookimpl(trylast=True)
def pytest_configure(config):
    """quantsink options without the suites (e.g. `pytest --model tiny-llama` from the repository root
    collects the harness's own tests): a usage error that says what to run."""
    if get_session(config) is not None or _is_worker(config):
        return
    given = [s.option for s in SETTINGS if config.getoption(s.ini) is not None]
    if given:
        raise pytest.UsageError(
            f"{', '.join(given)}: quantsink options take effect in the sign-off suites; "
            f"run `pytest suites {' '.join(_given_args(config))}`".rstrip()
        )


def _given_args(config) -> list[str]:
    """The quantsink options of this command line, to repeat in the hint."""
    out = []
    for s in SETTINGS:
        v = config.getoption(s.ini)
        if v is True:
            out.append(s.option)
        elif v is not None:
            out += [s.option, str(v)]
    return out


def option_values(config) -> dict:
    """Command line beats ini; None means 'let the profile decide'."""
    out = {}
    for s in SETTINGS:
        v = config.getoption(s.ini)
        if v is None:
            v = config.getini(s.ini)
            if v in ("", []):
                v = None
        out[s.name] = v
    return out


def activate(config) -> None:
    """Build the run from the options and check every input; usage errors stop pytest (exit 4)."""
    if config.stash.get(_SESSION, None) is not None or config.option.help or config.option.version:
        return  # --help and --version print and leave: no model is resolved, nothing is written

    try:
        spec = build_spec(option_values(config))
        if spec.pin:
            # pytest.exit prints "Exit: <reason>" on stderr: the result goes to stdout, the reason says why
            # nothing else ran.
            print(pin_line(pin(spec.report_dir, spec.pin, anyway=bool(spec.pin_anyway))), flush=True)
            write_history(spec.report_dir)  # the page shows the new pin
            pytest.exit("--pin only records the pin; no tests run", returncode=0)
        if _is_worker(config):
            spec.lockstep = "off"  # a pytest-xdist worker measures only the configurations it was given
            spec.device = _worker_device(spec, config.workerinput.get("workerid"))

        session = Session(
            spec, progress=_progress(config), substitute=_substitute(config), fanout=fanout_for(spec)
        ).prepare()
    except UsageError as e:
        raise pytest.UsageError(str(e)) from None
    config.stash[_SESSION] = session
    config.stash[_JUNIT_PER_ITEM] = config.getini("junit_family") in ("xunit1", "legacy")
    _ACTIVE.append(config)
    if getattr(config.option, "dist", "no") == "load" and getattr(config.option, "numprocesses", None):
        # pytest -n N: keep each configuration's items on one worker (one quantization each).
        config.option.dist = "loadgroup"


def _worker_device(spec, worker_id):
    if not spec.device.startswith("cuda"):
        return spec.device
    import torch

    return worker_device(spec.device, spec.devices, worker_id, torch.cuda.device_count())


def _is_worker(config) -> bool:
    return hasattr(config, "workerinput")


def _substitute(config):
    def sub(q):
        got = config.hook.pytest_quantsink_measure_as(qconfig=q)
        return parse_spec(got) if isinstance(got, str) else got

    return sub


@contextlib.contextmanager
def _sigint_deferred():
    """Hold a Ctrl-C that lands while a progress line is written until the line is done.

    Raised inside the terminal writer (with capture suspended), it once left pytest's capture in
    a state where the run was reported as failed and written instead of interrupted.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list = []
    old = signal.signal(signal.SIGINT, lambda *a: got.append(a))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if got and callable(old):
        old(*got[0])  # Python's default handler raises KeyboardInterrupt here
    elif got and old == signal.SIG_DFL:
        raise KeyboardInterrupt


_WORKER_LINES = pytest.StashKey[list]()


def _progress(config):
    if _is_worker(config):  # pytest-xdist: lines ride on each test report to the controller
        lines = config.stash.setdefault(_WORKER_LINES, [])
        return lambda msg: lines.append(msg)

    def emit(msg: str) -> None:
        tr = config.pluginmanager.get_plugin("terminalreporter")
        capman = config.pluginmanager.get_plugin("capturemanager")
        line = f"[quantsink] {msg}"
        # Inside a test pytest captures fd 1, terminal writer included: suspend it so a long
        # run is never silent.
        ctx = capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()
        with _sigint_deferred():
            with ctx:
                if tr is not None:
                    if getattr(getattr(tr, "_tw", None), "width_of_current_line", 0):
                        tr.write("\n")  # after -q's progress dots
                    tr.write_line(line)
                    tr.flush()
                else:
                    print(line, file=sys.stderr, flush=True)

    return emit


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach to the report what the process writing results needs: the progress lines written since the last
    report (pytest-xdist workers), and which configuration a team's own rule (a test using qs_result) judged."""
    report = yield
    lines = item.config.stash.get(_WORKER_LINES, None)
    if lines:
        report.quantsink_progress = list(lines)  # serialized with the report (TestReport keeps extras)
        lines.clear()
    q = getattr(getattr(item, "callspec", None), "params", {}).get("qs_result")
    if q is not None and report.when == "call" and hasattr(q, "spec"):
        report.quantsink_rule = {"spec": q.spec, "test": item.nodeid}
    return report


def pytest_runtest_logreport(report):
    """In the process that writes results (serial, or the pytest-xdist controller): print a worker's progress
    lines as they arrive, and record custom rules' outcomes against their configurations."""
    node = getattr(report, "node", None)  # pytest-xdist: the worker node the report came from
    config = node.config if node is not None else (_ACTIVE[-1] if _ACTIVE else None)
    if config is None or _is_worker(config) or get_session(config) is None:
        return
    lines = getattr(report, "quantsink_progress", None)
    if lines and node is not None:
        emit = _progress(config)
        worker = getattr(node, "gateway", None)
        for line in lines:
            emit(f"[{worker.id}] {line}" if worker is not None else line)
    rule = getattr(report, "quantsink_rule", None)
    if rule is not None and report.outcome in ("passed", "failed"):
        text = (report.longreprtext or "").strip().splitlines() if report.failed else []
        message = next((ln.strip() for ln in reversed(text) if ln.strip().startswith("E ")), text[-1] if text else "")
        get_session(config).record_rule(rule["spec"], rule["test"], report.outcome, message.lstrip("E ").strip())


def get_session(config):
    return config.stash.get(_SESSION, None)


def junit_per_item(config) -> bool:
    return config.stash.get(_JUNIT_PER_ITEM, False)


def pytest_report_header(config):
    s = get_session(config)
    return None if s is None else s.header()


def pytest_generate_tests(metafunc):
    s = get_session(metafunc.config)
    if s is None:
        return
    ids = [q.spec for q in s.spec.quant]
    if "qs_config" in metafunc.fixturenames:
        metafunc.parametrize("qs_config", s.spec.quant, ids=ids)
    if "qs_result" in metafunc.fixturenames:
        metafunc.parametrize("qs_result", s.spec.quant, ids=ids, indirect=True)
    if "qs_gate" in metafunc.fixturenames:
        pairs = [(q, m) for q in s.spec.quant for m in s.gate_metrics(q)]
        metafunc.parametrize("qs_gate", pairs, ids=[f"{q.spec}-{gate_id(m)}" for q, m in pairs])
    for name, against in (("qs_regression", "earlier"), ("qs_drift", "anchor")):
        if name in metafunc.fixturenames:
            pairs = [(q, m) for q in s.spec.quant for m in s.regression_metrics(q, against)]
            metafunc.parametrize(name, pairs, ids=[f"{q.spec}-{gate_id(m)}" for q, m in pairs])


def gate_id(gate: str) -> str:
    """A gate's name in a pytest id: one task's own gate `<metric>@<task>` keeps its '@', the task's name with
    anything but letters, digits and `_.+-` as '_' (a space, '::', '/' or a bracket would break selecting the item by
    its node id). results.json keeps the name as given."""
    metric, at, part = gate.partition("@")
    return metric + at + re.sub(r"[^\w.+-]", "_", part)


def pytest_collection_modifyitems(session, config, items):
    # Without --compare (or with nothing to compare, or no pin) test_regression / test_drift have no parameters:
    # drop them rather than show an empty-parameter skip.
    keep, drop = [], []
    for it in items:
        cs = getattr(it, "callspec", None)
        for name in ("qs_config", "qs_gate", "qs_regression", "qs_drift", "qs_result"):
            if cs is not None and name in cs.params:
                q = cs.params[name]
                q = q[0] if isinstance(q, tuple) else q
                if hasattr(q, "spec"):
                    it.add_marker(pytest.mark.xdist_group(name=q.spec))
        mark = it.get_closest_marker("skip")
        empty = (
            {"qs_regression", "qs_drift"} & set(getattr(it, "fixturenames", ()))
            and mark is not None
            and "empty parameter set" in str(mark.kwargs.get("reason", ""))
        )
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


@pytest.fixture
def qs_result(request, qs_session):
    """One configuration's measured result (parametrized over the run's configurations): a view.ResultView."""

    q = request.param
    r = qs_session.measure(q)
    if r.verdict == "skipped":
        pytest.skip(r.skip_reason)
    if r.error:
        pytest.fail(f"{q.spec}: measurement failed: {r.error}", pytrace=False)
    return ResultView(r)


def pytest_keyboard_interrupt(excinfo):
    """Remember an interruption (Ctrl-C) so that sessionfinish writes no partial run."""
    for config in list(_ACTIVE):
        config.stash[_INTERRUPTED] = True


def _record_suite_properties(config, results: dict) -> None:
    """JUnit suite properties `<spec>.<metric>` for every scalar catalogue metric (controller or serial run)."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    for c in results["configs"]:
        scalars = {
            k: v
            for k, v in (c.get("metrics") or {}).items()
            if k in BY_NAME and isinstance(v, (int, float)) and not isinstance(v, bool)
        }
        if c.get("quantize_seconds") is not None:
            scalars["quantize_seconds"] = c["quantize_seconds"]
        for k, v in scalars.items():
            xml.add_global_property(f"{c['spec']}.{k}", v)
        xml.add_global_property(f"{c['spec']}.verdict", c["verdict"])
    xml.add_global_property("quantsink.verdict", results["verdict"])


@pytest.hookimpl(tryfirst=True)  # before junitxml writes its file
def pytest_sessionfinish(session, exitstatus):
    config = session.config
    s = get_session(config)
    if s is None or not s.configs:
        return
    if exitstatus == pytest.ExitCode.INTERRUPTED or config.stash.get(_INTERRUPTED, False):
        # An interrupted run is not a run: write nothing rather than a partial verdict.
        s.progress("interrupted: no results written, index.jsonl unchanged")
        return

    if _is_worker(config):  # the controller merges every worker's configurations and writes once
        config.workeroutput["quantsink"] = json.dumps(clean(s.handoff()))
        return
    config.stash[_RUN_DIR] = run_dir = s.write()
    results = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    _record_suite_properties(config, results)
    if results["verdict"] == "fail" and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED  # e.g. nothing was measured: never a green run


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """pytest-xdist controller: take over a finished worker's measurements."""
    s = get_session(node.config)
    data = getattr(node, "workeroutput", {}).get("quantsink")
    if s is not None and data:
        s.take_over(json.loads(data))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    s = get_session(config)
    run_dir = config.stash.get(_RUN_DIR, None)
    if s is None or run_dir is None:
        return

    res = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    head, *rest = verdict_lines(res, run_dir)
    terminalreporter.write_sep("=", head)
    for line in rest:
        terminalreporter.write_line(line)
