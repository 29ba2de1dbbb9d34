"""Backends' import noise is caught and handed back; real warnings are kept."""

import sys

NOISY = """
import sys, warnings
print("Failed to load /fake/backend/_C.so: NOISE-ON-STDOUT")
print("W1129 torch/utils/_pytree.py:630] NOISE-ON-STDERR", file=sys.stderr)
warnings.warn("a real warning from the backend", UserWarning)
"""


def test_quiet_imports_returns_what_was_printed(tmp_path, monkeypatch):
    from harness.system.quiet import quiet_imports

    (tmp_path / "qs_noisy_backend2.py").write_text(NOISY)
    monkeypatch.syspath_prepend(str(tmp_path))
    caught, text = quiet_imports(["qs_noisy_backend2", "no_such_module_here"])
    assert "NOISE-ON-STDOUT" in text and "NOISE-ON-STDERR" in text
    assert [str(w.message) for w in caught] == ["a real warning from the backend"]
    assert "qs_noisy_backend2" in sys.modules
