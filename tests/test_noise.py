"""A run shows pytest's and quantsink's lines only; backends' import noise stays out, real warnings stay in."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

NOISY = """
import sys, warnings
print("Failed to load /fake/backend/_C.so: NOISE-ON-STDOUT")
print("W1129 torch/utils/_pytree.py:630] NOISE-ON-STDERR", file=sys.stderr)
warnings.warn("a real warning from the backend", UserWarning)
"""


@pytest.mark.parametrize("capture", [[], ["-s"]], ids=["captured", "no-capture"])
def test_backend_import_noise_stays_out_and_warnings_reach_the_summary(suite_dir, tmp_path, capture):
    from method_plugins import method_plugin

    site = tmp_path / "site"
    # the backend prints noise and warns when imported; the handler imports it, then rounds like rtn-w8
    method_plugin(
        site,
        "noisy",
        """
import qs_noisy_backend  # noqa: F401
from harness.methods.rtn import RTNConfig, apply_rtn
model = apply_rtn(model, RTNConfig(w_bits=8))
""",
        packages=("qs_noisy_backend",),
        extra={"qs_noisy_backend": NOISY},
    )
    os.environ["PYTHONPATH"] = f"{site}{os.pathsep}{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    try:
        res = suite_dir.runpytest_subprocess(
            "suites",
            *capture,
            "--model",
            "tiny-llama",
            "--quant",
            "noisy-w8",
            "--n-sequences",
            "2",
            "--seq-len",
            "32",
            "--max-new-tokens",
            "4",
            "--n-prompts",
            "4",
            "--report-dir",
            str(tmp_path / "rep"),
        )
    finally:
        os.environ["PYTHONPATH"] = os.environ["PYTHONPATH"].split(os.pathsep, 2)[2]
    out = res.stdout.str() + res.stderr.str()
    assert "noisy-w8" in out and res.ret in (0, 1), out
    assert "NOISE-ON-STDOUT" not in out and "NOISE-ON-STDERR" not in out, out
    summary = out[out.index("warnings summary") :]
    assert "a real warning from the backend" in summary


def test_quiet_imports_returns_what_was_printed(tmp_path, monkeypatch):
    from harness.system.quiet import quiet_imports

    (tmp_path / "qs_noisy_backend2.py").write_text(NOISY)
    monkeypatch.syspath_prepend(str(tmp_path))
    caught, text = quiet_imports(["qs_noisy_backend2", "no_such_module_here"])
    assert "NOISE-ON-STDOUT" in text and "NOISE-ON-STDERR" in text
    assert [str(w.message) for w in caught] == ["a real warning from the backend"]
    assert "qs_noisy_backend2" in sys.modules
