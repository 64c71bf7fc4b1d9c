"""One run of a job as the console sees it: control, event buffer, model, worker.

The App owns every `RunSession` (keyed by the job file) and is the only code
that mutates one: engine threads only `push` into its `EventBuffer`, and the
App's pump timer moves the buffered events into the `RunModel`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from console.run_model import DONE, ON_HOLD, EventBuffer, RunModel

IDLE, RUNNING, ON_HOLD_STATE, DISABLED = "Idle", "Running", "On hold", "Disabled"


class RunSession:
    """A started (or scripted, in tests) run of one job."""

    def __init__(self, key: str, spec: Any, control: Any | None, sample_every: float = 1.0):
        self.key = key
        self.spec = spec
        self.job = str(getattr(spec, "name", key))
        self.control = control
        self.buffer = EventBuffer()
        self.model = RunModel(self.job, sample_every=sample_every)
        self.worker: Any | None = None
        self.result: Any | None = None
        self.error = ""
        self.ended = False  # the worker returned (or there never was one and RunFinished came)
        self.thread_done = threading.Event()  # set by the worker thread itself when run_job ends

    @property
    def sink(self) -> Any:
        return self.buffer.push

    def pump(self, now: float) -> bool:
        """Move buffered events into the model; True when anything changed."""
        events = self.buffer.drain()
        if events:
            self.model.apply_all(events, now)
            if self.model.finished_at is not None and self.worker is None:
                self.ended = True
        self.model.sample(now)
        changed = self.model.changed
        self.model.changed = False
        return changed

    @property
    def active(self) -> bool:
        return not self.ended and self.model.finished_at is None

    @property
    def held_by_operator(self) -> bool:
        return bool(self.control is not None and getattr(self.control, "held", False))

    @property
    def stop_requested(self) -> bool:
        return bool(self.control is not None and getattr(self.control, "stopped", False))


@dataclass(frozen=True)
class JobState:
    """What the job tree and details say about a job right now."""

    state: str  # Idle | Running | On hold | Disabled
    detail: str = ""  # who holds it, how many machines on hold, ...

    @property
    def label(self) -> str:
        return f"{self.state} ({self.detail})" if self.detail else self.state


def job_state(spec: Any, session: RunSession | None) -> JobState:
    """Idle / Running / On hold / Disabled, with who holds a held job."""
    if session is not None and session.active:
        if session.stop_requested:
            return JobState(RUNNING, "stopping")
        if session.held_by_operator:
            return JobState(ON_HOLD_STATE, f"by {getattr(session.control, 'held_by', '') or 'operator'}")
        rows = session.model.rows.values()
        held = [r for r in rows if r.state == ON_HOLD]
        live = [r for r in rows if r.state != DONE]
        if held and len(held) == len(live):
            by = sorted({r.hold_by or "source lock" for r in held})
            return JobState(ON_HOLD_STATE, f"by {', '.join(by)}")
        if held:
            return JobState(RUNNING, f"{len(held)} on hold")
        return JobState(RUNNING)
    if spec is not None and not getattr(spec, "enabled", True):
        return JobState(DISABLED)
    return JobState(IDLE)
