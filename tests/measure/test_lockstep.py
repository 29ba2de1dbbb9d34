"""Turn-taking lockstep workers stop together on Ctrl-C."""

import os
import signal
import threading

import pytest


def test_ctrl_c_in_lockstep_waits_for_every_worker_before_raising():
    """A Ctrl-C in the main thread ends the turn-taking run only once no worker is still computing.

    A worker left inside torch when the interpreter exits aborts the process (exit -6 instead of 2).
    """
    import time

    from harness.measure.lockstep import TurnTaking

    turns = TurnTaking(["a", "b"])
    finished: list = []

    def worker(name, steps):
        def run():
            for i in range(steps):
                if name == "a" and i == 1:
                    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C lands while both workers are mid-run
                time.sleep(0.05)  # a layer's compute
                finished.append((name, i))
                turns.pass_turn(name)

        return run

    def interrupt(*_):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, interrupt)  # xdist workers may run with SIGINT ignored
    try:
        with pytest.raises(KeyboardInterrupt):
            turns.run({"a": worker("a", 50), "b": worker("b", 50)})
    finally:
        signal.signal(signal.SIGINT, old)
    assert turns.done == {"a", "b"}, "a worker was still computing when the interrupt went on"
    assert not [t for t in threading.enumerate() if t.name.startswith("quantsink-") and t.is_alive()]
    assert 0 < len(finished) < 100  # stopped at the next turn, not run to the end
