"""Every benchmark script still imports what it uses from harness and answers --help (they run rarely, by hand:
a refactor that breaks one is found here, not in the next measurement). Run in-process: the imports are what is
checked, and a fresh interpreter per script cost ~40 s of CI."""

import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = sorted(p.name for p in (ROOT / "bench").glob("*.py") if not p.name.startswith("_"))


def test_there_are_benchmark_scripts():
    assert len(SCRIPTS) >= 5, SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_bench_script_answers_help(script, monkeypatch, capsys):
    path = ROOT / "bench" / script
    monkeypatch.syspath_prepend(str(path.parent))  # as `python bench/x.py` puts its folder first
    monkeypatch.setattr(sys, "argv", [str(path), "--help"])
    with pytest.raises(SystemExit) as done:
        runpy.run_path(str(path), run_name="__main__")
    assert done.value.code in (0, None)
    assert "usage:" in capsys.readouterr().out
