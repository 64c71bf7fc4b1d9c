"""The console's one state store: jobs, machines, last results and run sessions.

Textual-free. The App owns the only `Store`; thread workers post messages with
what they read, the App applies them here, and screens read from here (they
keep no copies). `job_state` and `overview` derive what the screens show.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from console.records import JobEntry, LastRun, MachineInfo
from console.run_model import TaskState
from console.run_session import RunSession
from engine.model import Status


class JobStateKind(StrEnum):
    """What a job is doing right now."""

    IDLE = "Idle"
    RUNNING = "Running"
    ON_HOLD = "On hold"
    DISABLED = "Disabled"
    INVALID = "Invalid"


class Health(StrEnum):
    """How a row looks in the overview: the worst thing about it wins."""

    OK = "ok"
    IDLE = "idle"
    RUNNING = "running"
    WARNING = "warning"
    FAILED = "failed"

    @property
    def rank(self) -> int:
        return [Health.IDLE, Health.OK, Health.RUNNING, Health.WARNING,
                Health.FAILED].index(self)


def worst(*values: Health) -> Health:
    return max(values, key=lambda h: h.rank, default=Health.IDLE)


def status_health(status: Status | None) -> Health:
    if status is None:
        return Health.IDLE
    return {Status.SUCCESS: Health.OK, Status.WARNING: Health.WARNING,
            Status.FAILED: Health.FAILED}[status]


@dataclass(frozen=True)
class JobState:
    """What the overview and details say about a job right now."""

    state: JobStateKind
    detail: str = ""  # who holds it, how many machines on hold, ...

    @property
    def label(self) -> str:
        return f"{self.state} ({self.detail})" if self.detail else str(self.state)


def job_state(entry: JobEntry | None, session: RunSession | None) -> JobState:
    """Idle / Running / On hold / Disabled, with who holds a held job."""
    if session is not None and session.active:
        if session.stop_requested:
            return JobState(JobStateKind.RUNNING, "stopping")
        if session.held_by_operator:
            return JobState(JobStateKind.ON_HOLD, f"by {session.held_by or 'operator'}")
        rows = session.model.rows.values()
        held = [r for r in rows if r.state == TaskState.ON_HOLD]
        live = [r for r in rows if r.state != TaskState.DONE]
        if held and len(held) == len(live):
            by = sorted({r.hold_by or "source lock" for r in held})
            return JobState(JobStateKind.ON_HOLD, f"by {', '.join(by)}")
        if held:
            return JobState(JobStateKind.RUNNING, f"{len(held)} on hold")
        return JobState(JobStateKind.RUNNING)
    if entry is not None and entry.spec is None:
        return JobState(JobStateKind.INVALID)
    if entry is not None and entry.spec is not None and not entry.spec.enabled:
        return JobState(JobStateKind.DISABLED)
    return JobState(JobStateKind.IDLE)


@dataclass
class Store:
    """Everything the console knows; mutated only on the UI thread (App handlers)."""

    jobs: dict[str, JobEntry] = field(default_factory=dict)
    machines: dict[str, list[MachineInfo]] = field(default_factory=dict)
    machine_errors: dict[str, str] = field(default_factory=dict)  # why chains did not load
    last_runs: dict[str, LastRun] = field(default_factory=dict)
    next_runs: dict[str, datetime] = field(default_factory=dict)
    sessions: dict[str, RunSession] = field(default_factory=dict)
    finished: dict[str, Status] = field(default_factory=dict)  # runs that ended in here

    def set_jobs(self, entries: list[JobEntry]) -> None:
        self.jobs = {e.key: e for e in entries}
        for key in list(self.machines):
            if key not in self.jobs:
                del self.machines[key]

    def entry(self, key: str) -> JobEntry | None:
        return self.jobs.get(key)

    def name(self, key: str) -> str:
        entry = self.jobs.get(key)
        return entry.name if entry is not None else key

    def state_of(self, key: str) -> JobState:
        return job_state(self.jobs.get(key), self.sessions.get(key))

    def machine_info(self, key: str, machine: str) -> MachineInfo | None:
        return next((m for m in self.machines.get(key, []) if m.name == machine), None)

    def last_status(self, key: str) -> Status | None:
        """The newest result: a run that ended in this console, else the history's."""
        if key in self.finished:
            return self.finished[key]
        last = self.last_runs.get(key)
        return last.session.status if last is not None else None

    def job_keys(self) -> list[str]:
        return sorted(self.jobs, key=lambda k: self.jobs[k].name.lower())
