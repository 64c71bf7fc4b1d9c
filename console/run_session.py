"""One run of a job as the console sees it: control, event buffer, model, worker.

The App owns every `RunSession` (keyed by the job file) and is the only code
that mutates one: engine threads only `push` into its `EventBuffer`, and the
App's pump timer moves the buffered events into the `RunModel`.
"""

from __future__ import annotations

import threading

from console.run_model import EventBuffer, RunModel
from engine.copy.control import RunControl
from engine.copy.runner import SessionResult
from engine.events import Sink
from engine.jobs.load import JobSpec
from engine.live.client import RemoteControl, SessionInfo


class RunSession:
    """A started (or scripted, in tests) run of one job."""

    def __init__(self, key: str, spec: JobSpec | None,
                 control: RunControl | RemoteControl | None, sample_every: float = 1.0,
                 remote: SessionInfo | None = None):
        self.key = key
        self.spec = spec
        self.job = spec.name if spec is not None else key
        self.control = control
        self.buffer = EventBuffer()
        self.model = RunModel(self.job, sample_every=sample_every)
        self.thread: threading.Thread | None = None  # this console's own run
        self.remote = remote  # a run of another process, followed over its socket
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
            if self.model.finished_at is not None and self.thread is None:
                self.ended = True
        if self.remote is not None and self.thread_done.is_set() and not self.ended:
            self.ended = True  # the stream is over: finished, or its process went away
            self.model.changed = True
        self.model.sample(now)
        changed = self.model.changed
        self.model.changed = False
        return changed

    @property
    def active(self) -> bool:
        return not self.ended and self.model.finished_at is None

    @property
    def local(self) -> bool:
        """A run of this console's process (quitting must ask about it)."""
        return self.thread is not None

    @property
    def started_by(self) -> str:
        return str(self.remote.snapshot.get("started_by", "")) if self.remote else "console"

    @property
    def held_by_operator(self) -> bool:
        return self.control is not None and self.control.held

    @property
    def held_by(self) -> str:
        return self.control.held_by if self.control is not None else ""

    @property
    def stop_requested(self) -> bool:
        return self.control is not None and self.control.stopped
