"""The heartbeat keeps a long step from being silent, and stops with it."""
import time

from harness.progress import heartbeat


def test_heartbeat_beats_during_the_block_and_stops_after():
    msgs = []
    with heartbeat(msgs.append, "calibrating", every=0.05):
        time.sleep(0.28)
    n = len(msgs)
    assert n >= 3 and all(m.startswith("calibrating: still running (") for m in msgs)
    time.sleep(0.15)
    assert len(msgs) == n
