"""Operator control of a running copy session: hold, resume, stop.

The console (or any caller) keeps a `RunControl` and passes it to
`run_job`; movers check it at every block boundary.
"""

from __future__ import annotations

import threading


class Stopped(Exception):
    """Raised inside a task when the operator stopped the session."""


class RunControl:
    """Thread-safe flags read by the runner at each block boundary."""

    def __init__(self) -> None:
        self._running = threading.Event()
        self._running.set()
        self._stopped = threading.Event()
        self.held_by = ""

    @property
    def held(self) -> bool:
        return not self._running.is_set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def hold(self, by: str = "operator") -> None:
        """Pause every task at its next block boundary (resumable)."""
        self.held_by = by
        self._running.clear()

    def resume(self) -> None:
        self.held_by = ""
        self._running.set()

    def stop(self) -> None:
        """End the session: running tasks fail with 'stopped by operator'."""
        self._stopped.set()
        self._running.set()

    def checkpoint(self, on_hold=None) -> float:
        """Block while held; raise Stopped if stopped. Returns seconds spent held."""
        if self._stopped.is_set():
            raise Stopped("stopped by operator")
        if self._running.is_set():
            return 0.0
        import time

        t0 = time.monotonic()
        if on_hold is not None:
            on_hold(self.held_by or "operator")
        self._running.wait()
        if self._stopped.is_set():
            raise Stopped("stopped by operator")
        return time.monotonic() - t0
