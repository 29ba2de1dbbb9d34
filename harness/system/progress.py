"""A heartbeat for long steps (GPTQ calibration, generation): a run is never silent for long, nor chatty."""

from __future__ import annotations

import contextlib
import threading
import time


@contextlib.contextmanager
def heartbeat(progress, label: str, every: float = 30.0, cap: float = 10.0):
    """Call progress(f"{label}: still running (Ns)") after `every` seconds, then at doubling intervals of at most
    `cap` x `every` (30, 90, 210, 450 s, then every 5 min): an 8-minute step is four lines, not sixteen, and a
    half-hour calibration still speaks every five minutes."""
    stop = threading.Event()
    t0 = time.monotonic()

    def beat():
        wait = every
        while not stop.wait(wait):
            progress(f"{label}: still running ({time.monotonic() - t0:.0f} s)")
            wait = min(2 * wait, cap * every)

    th = threading.Thread(target=beat, name="quantsink-heartbeat", daemon=True)
    th.start()
    try:
        yield
    finally:
        stop.set()
        th.join()
