"""Run several model passes in threads that take turns at every attention layer.

The baseline runs layer i, publishes that layer's attention rows, and hands the turn on;
each quantized model then runs its own layer i, compares with the published rows and
hands the turn on; the baseline frees the rows and goes on to layer i+1. Only one thread
computes at a time (no oversubscription of the cores, and one model object may serve two
participants), and only one layer's baseline attention is ever held.
"""

from __future__ import annotations

import threading


class Aborted(Exception):
    """The run was abandoned (another participant failed in a way that ends everything)."""


class TurnTaking:
    def __init__(self, names: list[str]):
        self.order = list(names)
        self.cv = threading.Condition()
        self.turn = self.order[0]
        self.done: set[str] = set()
        self.slot: tuple | None = None  # (key, payload) published by the first participant
        self.aborted = False

    def _next_live(self, me: str) -> str:
        i = self.order.index(me)
        for k in range(1, len(self.order) + 1):
            cand = self.order[(i + k) % len(self.order)]
            if cand not in self.done:
                return cand
        return me

    def _wait(self, me: str) -> None:
        self.cv.wait_for(lambda: self.turn == me or self.aborted)
        if self.aborted:
            raise Aborted("run abandoned")

    def wait_turn(self, me: str) -> None:
        with self.cv:
            self._wait(me)

    def pass_turn(self, me: str) -> None:
        """Hand the turn to the next live participant and wait until it comes back."""
        with self.cv:
            self.turn = self._next_live(me)
            self.cv.notify_all()
            self._wait(me)

    def finish(self, me: str) -> None:
        with self.cv:
            self.done.add(me)
            if self.turn == me:
                self.turn = self._next_live(me)
            self.cv.notify_all()

    def run(self, fns: dict) -> dict:
        """Run fns[name]() for every participant in its own thread; returns name -> (result, exception)."""
        out: dict = {}

        def body(name, fn):
            try:
                self.wait_turn(name)
                out[name] = (fn(), None)
            except BaseException as e:  # reported to the caller, which decides what ends the run
                out[name] = (None, e)
            finally:
                self.finish(name)

        threads = [
            threading.Thread(target=body, args=(n, fns[n]), name=f"quantsink-{n}", daemon=True) for n in self.order
        ]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        except BaseException:  # Ctrl-C in the main thread (even mid-start): stop the workers at their next turn
            with self.cv:
                self.aborted = True
                self.cv.notify_all()
            self._join_all(threads)  # a thread interrupted in start() may still be running
            raise
        return out

    def _join_all(self, threads: list) -> None:
        """Wait for every worker to leave its turn (one layer at most) before the interrupt goes on.

        A worker still inside torch when the interpreter exits aborts the process ("terminate called
        without an active exception"), so a second Ctrl-C here is held until the workers are gone. Each
        worker is waited for on `done` (its body's last step), not on Thread.join alone: a join that a
        Ctrl-C interrupts marks a still-running thread stopped (CPython 3.11's bpo-45274 handling), and
        python -m harness, exiting at once, then aborted in about two runs of five.
        """
        again = False
        started = [n for n, t in zip(self.order, threads) if t.ident is not None]  # never started: nothing to wait
        while True:
            try:
                with self.cv:
                    self.cv.wait_for(lambda: all(n in self.done for n in started))
                for t in threads:
                    if t.ident is not None:
                        t.join()  # after finish(): only the thread's return is left
                break
            except KeyboardInterrupt:
                again = True
        if again:
            raise KeyboardInterrupt
