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


def test_heartbeat_backs_off_to_its_cap():
    stamps = []
    done = threading.Event()

    def progress(m):
        stamps.append(time.monotonic())
        if len(stamps) >= 6:
            done.set()

    t0 = time.monotonic()
    with heartbeat(progress, "generation", every=0.05, cap=4.0):
        assert done.wait(timeout=60), stamps
    gaps = [b - a for a, b in zip([t0, *stamps], stamps)]
    # 0.05, 0.1, 0.2, then capped at 0.2: each gap at least its scheduled wait (a loaded machine only adds)
    for gap, want in zip(gaps, (0.05, 0.1, 0.2, 0.2, 0.2, 0.2)):
        assert gap >= want * 0.9, gaps
    assert sum(gaps[3:6]) < 2.0, gaps  # capped: 3 x 0.2 s; doubling on would make these 0.4 + 0.8 + 1.6 s
