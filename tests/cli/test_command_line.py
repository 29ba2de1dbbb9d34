"""`python -m harness` and `pytest suites` offer the same options with the same help; bad flags are one-line
usage errors."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _help_options(text: str) -> dict[str, str]:
    """{--flag: help text} from an argparse-style help listing (continuation lines joined)."""
    out, cur = {}, None
    for line in text.splitlines():
        m = re.match(r"^\s{2,}(--[a-z0-9-]+)(?:[ =](\S+))?\s{2,}(\S.*)$", line)
        m2 = re.match(r"^\s{2,}(--[a-z0-9-]+)(?:[ =](\S+))?$", line)
        if m:
            cur = m.group(1)
            out[cur] = m.group(3).strip()
        elif m2:
            cur = m2.group(1)
            out[cur] = ""
        elif cur and line.startswith(" " * 10) and line.strip():
            out[cur] = (out[cur] + " " + line.strip()).strip()
        else:
            cur = None
    return out


def test_cli_and_pytest_offer_the_same_options_with_the_same_help(pytester):
    from harness.config.settings import SETTINGS

    env = dict(os.environ, COLUMNS="200")
    cli = subprocess.run(
        [sys.executable, "-m", "harness", "--help"], capture_output=True, text=True, cwd=ROOT, env=env, check=True
    ).stdout
    pyt = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "harness.plugin", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        check=True,
    ).stdout
    group = pyt[pyt.index("quantsink: sign-off") :]
    group = group[: group.index("\n\n")]
    a, b = _help_options(cli), _help_options(group)
    flags = {s.option for s in SETTINGS}
    assert set(a) - {"--help"} == flags == set(b)
    norm = lambda t: " ".join(t.split())  # noqa: E731
    for f in flags:
        assert norm(a[f]) == norm(b[f]), (f, a[f], b[f])
    assert "pinned" in b["--compare"] and "(default: smollm2-135m)" in b["--model"]
    assert "default: bnb-int8" in b["--quant"] and "smoke 16, nightly 48, signoff 96" in b["--n-sequences"]


def test_bad_flag_of_python_m_harness_exits_4_in_one_line():
    out = subprocess.run([sys.executable, "-m", "harness", "--modle", "x"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 4
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--modle" in lines[0], out.stderr


def test_pytest_help_states_defaults_and_compare_targets(pytester):
    res = pytester.runpytest_subprocess("-p", "harness.plugin", "--help")
    text = " ".join(res.stdout.str().split())
    assert "latest, pinned, RUN_ID, PATH or none" in text
    assert "(default: smollm2-135m)" in text and "(default: bnb-int8,bnb-nf4,rtn-w4g32,rtn-w3g32)" in text
