"""A heartbeat for long steps (GPTQ calibration, generation): a run is never silent for long."""

from __future__ import annotations

import contextlib
import threading
import time


@contextlib.contextmanager
def heartbeat(progress, label: str, every: float = 30.0):
    """Call progress(f"{label}: still running (Ns)") every `every` seconds until the block ends."""
    stop = threading.Event()
    t0 = time.monotonic()

    def beat():
        while not stop.wait(every):
            progress(f"{label}: still running ({time.monotonic() - t0:.0f} s)")

    th = threading.Thread(target=beat, name="quantsink-heartbeat", daemon=True)
    th.start()
    try:
        yield
    finally:
        stop.set()
        th.join()
