"""The heartbeat keeps a long step from being silent, and stops with it."""

import threading
import time

from harness.system.progress import heartbeat


def test_heartbeat_beats_during_the_block_and_stops_after():
    msgs = []
    three = threading.Event()

    def progress(m):
        msgs.append(m)
        if len(msgs) >= 3:
            three.set()

    with heartbeat(progress, "calibrating", every=0.02):
        # No fixed sleep: wait (up to a generous bound) until three beats came, however loaded the machine.
        assert three.wait(timeout=30), msgs
    n = len(msgs)
    assert all(m.startswith("calibrating: still running (") and m.endswith(" s)") for m in msgs)
    time.sleep(0.1)  # five beat periods: a beat after the block would show here
    assert len(msgs) == n
