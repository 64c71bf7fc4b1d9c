"""Operator control of a running copy session: hold, resume, stop — the job or one machine.

The caller (console, `ferry run`, the daemon) keeps a `RunControl` and passes it
to `run_job`; the live layer (`engine.live`) drives the same object from other
processes. Movers check it at every block boundary through `for_machine(m)`.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

STOPPED_BY_OPERATOR = "stopped by operator"
INTERRUPTED = "interrupted (Ctrl-C)"

# (action, machine or "", by) -> None: told after every accepted change
Listener = Callable[[str, str, str], None]


class Stopped(Exception):
    """Raised inside a task when the operator stopped the session (or its machine)."""


class RunControl:
    """Thread-safe hold / stop state, read by the runner at each block boundary.

    A hold or stop applies to the whole session (`machine` None) or to one
    machine; a machine runs while neither the session nor it is held.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held = False
        self.held_by = ""
        self._held_machines: dict[str, str] = {}  # machine -> who holds it
        self._stopped = False
        self.stop_reason = ""
        self._stopped_machines: dict[str, str] = {}  # machine -> reason
        self.notes: list[str] = []  # said in the session's history message (e.g. hang-up)
        self.listeners: list[Listener] = []

    # ---- reading ----------------------------------------------------------------------------
    @property
    def held(self) -> bool:
        return self._held

    @property
    def stopped(self) -> bool:
        return self._stopped

    def held_machines(self) -> dict[str, str]:
        with self._cond:
            return dict(self._held_machines)

    def is_held(self, machine: str) -> bool:
        return self._held or machine in self._held_machines

    def is_stopped(self, machine: str) -> bool:
        return self._stopped or machine in self._stopped_machines

    def stop_message(self, machine: str = "") -> str:
        if self._stopped:
            return self.stop_reason or STOPPED_BY_OPERATOR
        return self._stopped_machines.get(machine, STOPPED_BY_OPERATOR)

    # ---- acting -----------------------------------------------------------------------------
    def hold(self, by: str = "operator", machine: str | None = None) -> None:
        """Pause every task (or one machine's) at its next block boundary (resumable)."""
        with self._cond:
            if machine:
                self._held_machines[machine] = by
            else:
                self._held, self.held_by = True, by
        self._tell("hold", machine, by)

    def resume(self, machine: str | None = None) -> None:
        """Lift the session's hold (no machine) or one machine's hold."""
        with self._cond:
            if machine:
                self._held_machines.pop(machine, None)
            else:
                self._held, self.held_by = False, ""
                self._held_machines.clear()
            self._cond.notify_all()
        self._tell("resume", machine, "")

    def stop(self, reason: str = STOPPED_BY_OPERATOR, machine: str | None = None) -> None:
        """End the session (or one machine's task): running tasks fail with `reason`."""
        with self._cond:
            if machine:
                self._stopped_machines.setdefault(machine, reason)
            else:
                self._stopped = True
                self.stop_reason = self.stop_reason or reason
            self._cond.notify_all()
        self._tell("stop", machine, reason)

    def note(self, text: str) -> None:
        """A line for the session's history message (who hung up, when)."""
        with self._cond:
            self.notes.append(text)

    def _tell(self, action: str, machine: str | None, by: str) -> None:
        for listener in list(self.listeners):
            try:
                listener(action, machine or "", by)
            except Exception:  # noqa: BLE001 - an observer must not break control
                pass

    # ---- the runner's side ------------------------------------------------------------------
    def checkpoint(self, on_hold: Callable[[str], None] | None = None,
                   machine: str = "") -> float:
        """Block while held; raise Stopped if stopped. Returns seconds spent held."""
        if self.is_stopped(machine):
            raise Stopped(self.stop_message(machine))
        if not self.is_held(machine):
            return 0.0
        t0 = time.monotonic()
        if on_hold is not None:
            on_hold(self._holder(machine))
        with self._cond:
            while self.is_held(machine) and not self.is_stopped(machine):
                self._cond.wait()
        if self.is_stopped(machine):
            raise Stopped(self.stop_message(machine))
        return time.monotonic() - t0

    def _holder(self, machine: str) -> str:
        if self._held:
            return self.held_by or "operator"
        return self._held_machines.get(machine) or "operator"

    def for_machine(self, machine: str) -> MachineControl:
        return MachineControl(self, machine)


@contextmanager
def stop_on_interrupt(control: RunControl | Callable[[], RunControl | None],
                      idle: threading.Event | None = None) -> Iterator[list[bool]]:
    """Ctrl-C during a run (main thread) stops it like `ferry stop`: the tasks end at their
    next block (partial files kept for resume), the session is recorded Failed, and the
    yielded list is then non-empty (the caller exits 130). A second Ctrl-C ends at once.

    `control` may be a function: the daemon's run of the moment, or None. With no run
    going, the first Ctrl-C sets `idle` (the daemon waits on it between passes) rather
    than raising: a KeyboardInterrupt raised wherever the main thread happens to be
    (a lazy import building a dataclass) can come out as a RuntimeError, or make
    CPython 3.11 end the process by SIGINT instead of 130. Without `idle` it raises."""
    interrupted: list[bool] = []

    def handler(signum: int, frame: object) -> None:
        running = control() if callable(control) else control
        if interrupted or (running is None and idle is None):
            raise KeyboardInterrupt
        interrupted.append(True)
        if running is not None:
            running.stop(INTERRUPTED)
        if idle is not None:
            idle.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


class MachineControl:
    """One machine's view of the session control (what a task's mover checks)."""

    def __init__(self, control: RunControl, machine: str):
        self.control = control
        self.machine = machine

    @property
    def stopped(self) -> bool:
        return self.control.is_stopped(self.machine)

    def checkpoint(self, on_hold: Callable[[str], None] | None = None) -> float:
        return self.control.checkpoint(on_hold, self.machine)
