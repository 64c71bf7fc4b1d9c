"""One run of a job as the console sees it: control, event buffer, model, worker.

The App owns every `RunSession` (keyed by the job file) and is the only code
that mutates one: engine threads only `push` into its `EventBuffer`, and the
App's pump timer moves the buffered events into the `RunModel`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from console.run_model import EventBuffer, RunModel
from engine.copy.control import RunControl
from engine.copy.runner import SessionResult
from engine.events import Sink
from engine.jobfile import JobSpec

if TYPE_CHECKING:
    from textual.worker import Worker


class RunSession:
    """A started (or scripted, in tests) run of one job."""

    def __init__(self, key: str, spec: JobSpec | None, control: RunControl | None,
                 sample_every: float = 1.0):
        self.key = key
        self.spec = spec
        self.job = spec.name if spec is not None else key
        self.control = control
        self.buffer = EventBuffer()
        self.model = RunModel(self.job, sample_every=sample_every)
        self.worker: Worker[SessionResult] | None = None
        self.result: SessionResult | None = None
        self.error = ""
        self.ended = False  # the worker returned (or there never was one and RunFinished came)
        self.thread_done = threading.Event()  # set by the worker thread itself when run_job ends

    @property
    def sink(self) -> Sink:
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
        return self.control is not None and self.control.held

    @property
    def held_by(self) -> str:
        return self.control.held_by if self.control is not None else ""

    @property
    def stop_requested(self) -> bool:
        return self.control is not None and self.control.stopped
