"""quantsink's own environment variables are declared once (harness.system.environment.ENV_VARS), and the
package reads them through env()."""

import re
from pathlib import Path

import pytest

from harness.system.environment import BY_NAME, env

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bQS_[A-Z][A-Z0-9_]*\b")
# Where the repository reads its variables: the package, its tests, the suites and the tooling.
SOURCES = ("harness", "tests", "suites", "scripts", "bench", ".ci", "conftest.py", "tox.ini")
DECLARATION = ROOT / "harness" / "system" / "environment.py"


def _files():
    for top in SOURCES:
        path = ROOT / top
        if path.is_file():
            yield path
        elif path.is_dir():
            for p in sorted(path.rglob("*")):
                if p.is_file() and p.suffix in (".py", ".sh", ".ini", "") and p != DECLARATION:
                    yield p


def _mentions() -> dict[str, set[str]]:
    """{variable: files naming it} (the declaration table itself left out)."""
    found: dict[str, set[str]] = {}
    for path in _files():
        for name in NAME.findall(path.read_text(errors="replace")):
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_variable_the_repository_reads_is_declared_and_every_declared_one_is_read():
    found = _mentions()
    assert found, "no QS_* variable found: the scan looks in the wrong place"
    assert set(found) <= set(BY_NAME), {n: sorted(found[n]) for n in set(found) - set(BY_NAME)}
    assert set(BY_NAME) <= set(found), f"declared but read nowhere: {sorted(set(BY_NAME) - set(found))}"


def test_the_package_reads_its_variables_through_env_and_declares_them_as_its_own():
    for name, files in _mentions().items():
        if any(f.startswith("harness/") for f in files):
            assert BY_NAME[name].scope == "harness", (name, sorted(files))
    for path in (ROOT / "harness").rglob("*.py"):
        if path != DECLARATION:
            text = path.read_text()
            assert not re.search(r"os\.(environ|getenv)\b[^\n]*QS_", text), path.relative_to(ROOT)


def test_env_reads_a_declared_variable_and_refuses_an_undeclared_one(monkeypatch, tmp_path):
    monkeypatch.setenv("QS_CACHE_DIR", str(tmp_path))
    assert env("QS_CACHE_DIR") == str(tmp_path)
    monkeypatch.setenv("QS_CACHE_DIR", "")
    assert env("QS_CACHE_DIR") is None  # set but empty counts as unset
    undeclared = "QS_" + "NOT_DECLARED"  # spelled apart: the scan above must not find it
    with pytest.raises(KeyError, match="not declared"):
        env(undeclared)
