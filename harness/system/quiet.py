"""Import optional backends without their start-up noise reaching the terminal.

torchao, gptqmodel and optimum-quanto print "Failed to load ... .so" lines, banners and torch
pytree deprecation notices when first imported. Importing them up front with file descriptors
1 and 2 sent to a temporary file keeps a run's output to pytest's and quantsink's own lines;
Python warnings raised meanwhile are kept and re-issued later (inside a test, where pytest's
warnings summary collects them), so nothing real is lost.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
import tempfile
import warnings


class _Switch(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr: into a buffer during the block, to the real stream after
    (a logging handler created during an import keeps this object and must not write to a closed file)."""

    def __init__(self, real, buf):
        self.real, self.buf, self.on = real, buf, True

    def write(self, s):
        return (self.buf if self.on else self.real).write(s)

    def flush(self):
        (self.buf if self.on else self.real).flush()

    def fileno(self):
        return self.real.fileno()

    def isatty(self):
        return False if self.on else self.real.isatty()


@contextlib.contextmanager
def _python_streams_to(buf):
    out, err = _Switch(sys.stdout, buf), _Switch(sys.stderr, buf)
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        yield
    finally:
        out.on = err.on = False
        sys.stdout, sys.stderr = old


@contextlib.contextmanager
def _fds_to(fileobj):
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        os.dup2(fileobj.fileno(), 1)
        os.dup2(fileobj.fileno(), 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


def quiet_imports(modules) -> tuple[list, str]:
    """Import each module (missing ones are skipped); returns (warning records, what they printed)."""
    todo = [
        m
        for m in dict.fromkeys(modules)
        if m not in sys.modules and importlib.util.find_spec(m.split(".")[0]) is not None
    ]
    if not todo:
        return [], ""
    buf = io.StringIO()
    with tempfile.TemporaryFile(mode="w+b") as out, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _fds_to(out), _python_streams_to(buf):
            for m in todo:
                try:
                    importlib.import_module(m)
                except Exception as e:  # a broken backend: its configuration will report the error itself
                    print(f"import {m} failed: {type(e).__name__}: {e}", file=sys.stderr)
        out.seek(0)
        text = out.read().decode("utf-8", "replace") + buf.getvalue()
    return list(caught), text


def reissue(records) -> None:
    """Issue kept warnings again (at the place where pytest records them)."""
    for w in records:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
