import os
import shutil
from pathlib import Path

import pytest

import harness.testing  # noqa: F401  (registers the test-only fault methods in this process)

pytest_plugins = ["pytester"]

# The harness's own tests measure on purpose (faults, patched backends): no results cache unless a test
# turns it on (tests/test_scale.py). Set at import so pytester subprocesses inherit it.
os.environ["QS_RESULTS_CACHE"] = "off"

ROOT = Path(__file__).resolve().parents[1]


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
