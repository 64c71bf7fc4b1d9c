"""Operator control of a running copy session: hold, resume, stop — the job or one machine.

The console (or any caller) keeps a `RunControl` and passes it to `run_job`; each
machine's source mover checks `control.for_machine(name)` at every block boundary,
so a hold or stop of the whole job or of one machine lands at the next block.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Stopped(Exception):
    """Raised inside a task when the operator stopped the session (or that machine)."""


class RunControl:
    """Thread-safe flags read by the runner at each block boundary.

    Session-wide `hold`/`resume`/`stop` act on every machine; with `machine=` they act on
    that one only. A machine runs while neither it nor the session is held.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._held = False
        self._stopped = False
        self.held_by = ""
        self._machine_held: dict[str, str] = {}  # machine -> who holds it
        self._machine_stopped: set[str] = set()

    # -- session-wide (the original API) -----------------------------------------------
    @property
    def held(self) -> bool:
        return self._held

    @property
    def stopped(self) -> bool:
        return self._stopped

    def hold(self, by: str = "operator", machine: str | None = None) -> None:
        """Pause every task (or `machine`'s) at its next block boundary (resumable)."""
        with self._cond:
            if machine is None:
                self.held_by, self._held = by, True
            else:
                self._machine_held[machine] = by

    def resume(self, machine: str | None = None) -> None:
        """Resume the session (machines held one by one stay held) or one machine."""
        with self._cond:
            if machine is None:
                self.held_by, self._held = "", False
            else:
                self._machine_held.pop(machine, None)
            self._cond.notify_all()

    def stop(self, machine: str | None = None) -> None:
        """End the session (or one machine's task): it fails with 'stopped by operator'."""
        with self._cond:
            if machine is None:
                self._stopped = True
            else:
                self._machine_stopped.add(machine)
            self._cond.notify_all()

    # -- one machine -------------------------------------------------------------------
    def machine_held(self, machine: str) -> bool:
        return machine in self._machine_held

    def machine_stopped(self, machine: str) -> bool:
        return self._stopped or machine in self._machine_stopped

    def held_machines(self) -> list[str]:
        with self._cond:
            return sorted(self._machine_held)

    def for_machine(self, machine: str) -> MachineControl:
        return MachineControl(self, machine)

    def _blocked(self, machine: str | None) -> str:
        """Who holds `machine` now ("" = it may run). Caller holds the condition."""
        if self._held:
            return self.held_by or "operator"
        if machine is not None and machine in self._machine_held:
            return self._machine_held[machine] or "operator"
        return ""

    def _check_stop(self, machine: str | None) -> None:
        if self._stopped or (machine is not None and machine in self._machine_stopped):
            raise Stopped("stopped by operator")

    def checkpoint(self, on_hold: Callable[[str], None] | None = None,
                   machine: str | None = None) -> float:
        """Block while held; raise Stopped if stopped. Returns seconds spent held."""
        with self._cond:
            self._check_stop(machine)
            by = self._blocked(machine)
            if not by:
                return 0.0
        t0 = time.monotonic()
        if on_hold is not None:
            on_hold(by)  # outside the lock: the callback emits events
        with self._cond:
            while True:
                self._check_stop(machine)
                if not self._blocked(machine):
                    break
                self._cond.wait(1.0)  # woken by resume/stop; the timeout only re-checks
        return time.monotonic() - t0


class MachineControl:
    """`RunControl` as one machine's task sees it (what its source mover checks)."""

    def __init__(self, control: RunControl, machine: str) -> None:
        self.control = control
        self.machine = machine

    @property
    def held(self) -> bool:
        return self.control.held or self.control.machine_held(self.machine)

    @property
    def stopped(self) -> bool:
        return self.control.machine_stopped(self.machine)

    def checkpoint(self, on_hold: Callable[[str], None] | None = None) -> float:
        return self.control.checkpoint(on_hold, machine=self.machine)
