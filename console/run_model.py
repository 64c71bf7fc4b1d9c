"""The state of one live run, built from engine events (no Textual here).

`EventBuffer` is the engine-facing side: its `push` is the `sink` passed to
`run_job` and is called from engine threads. It coalesces progress: a new
`TaskProgress` for a machine replaces that machine's pending one, so a burst
of 500 machines x 10 events/s costs at most one update per machine per UI tick.

`RunModel` is the UI-facing side: the app drains the buffer on a timer (on the
UI thread) and applies the events; screens then read `take_dirty()` to update
only the rows that changed.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from console import format as fmt
from engine import events as ev
from engine.model import Status

MAX_PENDING_LOG = 5000
SAMPLES = 120


class EventBuffer:
    """Thread-safe, coalescing queue of engine events."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[ev.Event | None] = []
        self._progress_at: dict[str, int] = {}
        self._logs = 0
        self.dropped_logs = 0
        self.received = 0

    def push(self, event: ev.Event) -> None:
        """The sink: safe to call from any thread."""
        with self._lock:
            self.received += 1
            if isinstance(event, ev.TaskProgress):
                at = self._progress_at.get(event.machine)
                if at is not None:
                    self._pending[at] = event
                    return
                self._progress_at[event.machine] = len(self._pending)
            else:
                machine = getattr(event, "machine", "")
                if machine:
                    self._progress_at.pop(machine, None)
                if isinstance(event, ev.LogLine):
                    if self._logs >= MAX_PENDING_LOG:
                        self.dropped_logs += 1
                        return
                    self._logs += 1
            self._pending.append(event)

    def drain(self) -> list[ev.Event]:
        """Everything pushed since the last drain, in order (progress coalesced)."""
        with self._lock:
            pending, self._pending = self._pending, []
            self._progress_at.clear()
            self._logs = 0
        return [e for e in pending if e is not None]


class TaskState(StrEnum):
    """Where one machine of a live run is."""

    QUEUED = "queued"
    RUNNING = "running"
    ON_HOLD = "on hold"
    DONE = "done"


QUEUED, RUNNING, ON_HOLD, DONE = (TaskState.QUEUED, TaskState.RUNNING, TaskState.ON_HOLD,
                                  TaskState.DONE)
STATUS_MARK = {Status.SUCCESS: "✓", Status.WARNING: "!", Status.FAILED: "✗"}


def as_status(value: str) -> Status:
    """An event's status text as the engine's enum (unknown text counts as Failed)."""
    try:
        return Status(value)
    except ValueError:
        return Status.FAILED


@dataclass
class MachineRow:
    """One machine's line in the live view."""

    name: str
    state: TaskState = QUEUED
    status: Status | None = None  # once done
    kind: str = ""
    total: int = 0
    processed: int = 0
    read: int = 0
    transferred: int = 0
    rate: float = 0.0
    hold_reason: str = ""
    hold_by: str = ""
    bottleneck: dict[str, float] = field(default_factory=dict)
    message: str = ""
    to_read: int = 0  # raw bytes the task reads in all (from the engine, once planned)
    disks: dict[str, float] = field(default_factory=dict)  # disk -> share covered

    @property
    def fraction(self) -> float:
        if self.state == DONE:
            return 1.0
        return min(1.0, self.processed / self.total) if self.total else 0.0

    @property
    def eta_s(self) -> float | None:
        """Seconds left: the bytes still to read over the engine's read rate (a stream
        without `to_read` falls back to the processed/read ratio)."""
        if self.state != RUNNING or self.rate <= 0:
            return None
        if self.to_read:
            return max(0.0, (self.to_read - self.read) / self.rate)
        if not self.total or not self.read or not self.processed:
            return None
        return max(0.0, (self.total - self.processed) / (self.rate * self.processed / self.read))

    @property
    def state_text(self) -> str:
        """State in words (never colour alone): `on hold (source lock)`, `✓ Success`."""
        if self.state == ON_HOLD:
            return f"on hold ({self.hold_by or 'source lock'})"
        if self.state == DONE:
            mark = STATUS_MARK.get(self.status, "·") if self.status else "·"
            return f"{mark} {self.status or 'done'}"
        return str(self.state)


class RunModel:
    """Everything the live view shows about one session, updated from events."""

    def __init__(self, job: str, sample_every: float = 1.0) -> None:
        self.job = job
        self.session = ""
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.status: Status | None = None  # final session status
        self.message = ""
        self.dry_run = False
        self.rows: dict[str, MachineRow] = {}
        self.read_total = 0
        self.transferred_total = 0
        self.processed_total = 0
        self.size_total = 0
        self.read_samples: deque[float] = deque(maxlen=SAMPLES)
        self.transferred_samples: deque[float] = deque(maxlen=SAMPLES)
        self.sample_every = sample_every
        self._last_sample: tuple[float, int, int] | None = None
        self._dirty: set[str] = set()
        self._new_rows: list[str] = []
        self._log: list[str] = []
        self.changed = False  # anything at all changed since the last take_changes()
        self.stop_requested = False  # the operator stopped the run (set by the App)
        self.samples_changed = False
        self._fraction = 0.0  # the header's share done: never goes backwards

    # ---- applying events ---------------------------------------------------------------------
    def apply_all(self, events: Iterable[ev.Event], now: float) -> None:
        for event in events:
            self.apply(event, now)

    def apply(self, event: ev.Event, now: float) -> None:
        self.changed = True
        if isinstance(event, ev.RunStarted):
            self.session = event.session
            self.started_at = now
            self.dry_run = event.dry_run
            for name in event.machines:
                self._row(name)
            self._log.append(f"run {event.session} started: "
                             f"{fmt.plural(len(event.machines), 'machine')}"
                             + (" (dry run)" if event.dry_run else ""))
        elif isinstance(event, ev.RunFinished):
            self.finished_at = now
            self.status = as_status(event.status)
            self.message = event.message
            self._log.append(f"run finished: {event.status} in {fmt.duration(event.duration_s)}"
                             + (f" - {event.message}" if event.message else ""))
        elif isinstance(event, ev.TaskQueued):
            self._row(event.machine).state = QUEUED
            self._dirty.add(event.machine)
        elif isinstance(event, ev.TaskStarted):
            row = self._row(event.machine)
            row.state, row.kind = RUNNING, event.kind
            self._set_total(row, event.total)
            self._dirty.add(event.machine)
            if event.kind != "none":  # nothing to copy: the engine's "up to date" line says it
                self._log.append(f"{event.machine}: started ({event.kind}, "
                                 f"{fmt.size(event.total)})")
        elif isinstance(event, ev.TaskProgress):
            row = self._row(event.machine)
            if row.state == DONE:
                return
            if row.state == QUEUED:
                row.state = RUNNING
            self._set_total(row, event.total)
            self._set_stats(row, event.stats.processed, event.stats.read,
                            event.stats.transferred)
            row.rate = event.rate
            row.to_read = max(row.to_read, event.to_read)
            if event.disks:
                row.disks = dict(event.disks)
            if event.bottleneck:
                row.bottleneck = dict(event.bottleneck)
            self._dirty.add(event.machine)
        elif isinstance(event, ev.TaskOnHold):
            row = self._row(event.machine)
            row.state, row.hold_reason, row.hold_by = ON_HOLD, event.reason, event.by
            row.rate = 0.0
            self._dirty.add(event.machine)
            self._log.append(f"{event.machine}: on hold ({event.by}): {event.reason}")
        elif isinstance(event, ev.TaskResumed):
            row = self._row(event.machine)
            row.state, row.hold_reason, row.hold_by = RUNNING, "", ""
            self._dirty.add(event.machine)
            self._log.append(f"{event.machine}: resumed")
        elif isinstance(event, ev.TaskFinished):
            row = self._row(event.machine)
            row.state, row.status, row.message = DONE, as_status(event.status), event.message
            row.kind = event.kind or row.kind
            row.rate, row.hold_reason, row.hold_by = 0.0, "", ""
            self._set_stats(row, event.stats.processed, event.stats.read,
                            event.stats.transferred)
            self._dirty.add(event.machine)
            if row.kind == "none" and row.status == Status.SUCCESS and not self.stop_requested:
                return  # up to date: said once already
            note = event.message
            if self.stop_requested and row.status != Status.FAILED:
                note = "finished before the stop reached it" + (f"; {note}" if note else "")
            self._log.append(f"{event.machine}: {row.status}" + (f" - {note}" if note else ""))
        elif isinstance(event, ev.RetentionAction):
            self._log.append(f"{event.machine}: retention {event.action} {event.point}"
                             + (f" ({event.detail})" if event.detail else ""))
        elif isinstance(event, ev.LogLine):
            prefix = f"{event.machine}: " if event.machine and not event.text.startswith(
                event.machine) else ""
            level = "" if event.level == "info" else f"[{event.level}] "
            self._log.append(f"{level}{prefix}{event.text}")

    def _row(self, name: str) -> MachineRow:
        row = self.rows.get(name)
        if row is None:
            row = self.rows[name] = MachineRow(name)
            self._new_rows.append(name)
            self._dirty.add(name)
        return row

    def _set_total(self, row: MachineRow, total: int) -> None:
        if total and total != row.total:
            self.size_total += total - row.total
            row.total = total

    def _set_stats(self, row: MachineRow, processed: int, read: int, transferred: int) -> None:
        self.processed_total += processed - row.processed
        self.read_total += read - row.read
        self.transferred_total += transferred - row.transferred
        row.processed, row.read, row.transferred = processed, read, transferred

    def sample(self, now: float) -> None:
        """Add a throughput sample (read and transferred bytes/s) once per `sample_every`."""
        if self._last_sample is None:
            self._last_sample = (now, self.read_total, self.transferred_total)
            return
        t0, read0, xfer0 = self._last_sample
        if now - t0 < self.sample_every:
            return
        span = now - t0
        self.read_samples.append(max(0.0, (self.read_total - read0) / span))
        self.transferred_samples.append(max(0.0, (self.transferred_total - xfer0) / span))
        self._last_sample = (now, self.read_total, self.transferred_total)
        self.samples_changed = True
        self.changed = True

    # ---- reading -----------------------------------------------------------------------------
    def take_dirty(self) -> set[str]:
        dirty, self._dirty = self._dirty, set()
        return dirty

    def take_new_rows(self) -> list[str]:
        new, self._new_rows = self._new_rows, []
        return new

    def take_log(self) -> list[str]:
        lines, self._log = self._log, []
        return lines

    @property
    def running(self) -> bool:
        return self.started_at is not None and self.finished_at is None

    def counts(self) -> dict[TaskState, int]:
        out = dict.fromkeys(TaskState, 0)
        for row in self.rows.values():
            out[row.state] += 1
        return out

    def held_rows(self) -> list[MachineRow]:
        return [r for r in self.rows.values() if r.state == ON_HOLD]

    def bottleneck(self) -> dict[str, float]:
        """Session bottleneck: the mean busy share per stage over machines that report one."""
        active = [r.bottleneck for r in self.rows.values() if r.bottleneck and r.state == RUNNING]
        if not active:
            active = [r.bottleneck for r in self.rows.values() if r.bottleneck]
        if not active:
            return {}
        sums: dict[str, float] = {}
        for shares in active:
            for stage, share in shares.items():
                sums[stage] = sums.get(stage, 0.0) + share
        return {stage: total / len(active) for stage, total in sums.items()}

    def rate(self) -> float:
        return sum(r.rate for r in self.rows.values() if r.state == RUNNING)

    def fraction(self) -> float:
        """The run's share done: the mean of its machines' shares (a queued machine counts
        0, a finished one 1), so a machine starting with a large total does not pull the
        header back; and it never goes backwards."""
        if not self.rows:
            return self._fraction
        now = sum(r.fraction for r in self.rows.values()) / len(self.rows)
        self._fraction = max(self._fraction, min(1.0, now))
        return self._fraction
