"""What the console knows about jobs, machines and past sessions, in engine types.

Plain dataclasses (no Textual): `JobEntry` wraps an `engine.jobs.schema.JobSpec` (or
the `JobFileError` that kept it from loading), `MachineInfo` the two
`engine.model.MachineMeta` chains of one machine, `SessionRecord`/`TaskRecord`
the rows of `engine.history` with their status as `engine.model.Status`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.jobs.load import JobFileError, JobSpec
from engine.model import MachineMeta, RestorePoint, Status


@dataclass
class JobEntry:
    """One job file of the jobs folder: its spec, or why it could not be loaded."""

    path: Path
    spec: JobSpec | None = None
    error: str = ""
    errors: list[JobFileError] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name if self.spec is not None else self.path.stem

    @property
    def key(self) -> str:
        """Stable identity of a job inside the console (its file)."""
        return str(self.path)


@dataclass
class MachineInfo:
    """A machine a job copies, with both of its chains when they exist."""

    name: str
    source_job: str = ""
    source: MachineMeta | None = None
    target: MachineMeta | None = None
    error: str = ""
    full_requested: bool = False  # "active full now" is pending for the next copy

    @property
    def target_points(self) -> list[RestorePoint]:
        return list(self.target.points) if self.target is not None else []

    @property
    def source_points(self) -> list[RestorePoint]:
        return list(self.source.points) if self.source is not None else []

    @property
    def target_size(self) -> int:
        return sum(p.size for p in self.target_points)

    @property
    def newest_copy(self) -> RestorePoint | None:
        points = self.target_points
        return points[-1] if points else None

    @property
    def behind(self) -> int:
        """Source restore points newer than the newest copied one (all of them if none)."""
        source = self.source_points
        newest = self.newest_copy
        if newest is None:
            return len(source)
        ids = [p.id for p in source]
        if newest.source_point in ids:
            return len(ids) - 1 - ids.index(newest.source_point)
        return sum(1 for p in source if p.time > newest.time)


def _int(value: Any) -> int:
    return int(value) if isinstance(value, (int, float)) else 0


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _status(value: Any) -> Status:
    try:
        return Status(str(value))
    except ValueError:  # history from a newer Ferry or a damaged row: say the worst
        return Status.FAILED


@dataclass(frozen=True)
class SessionRecord:
    """One past session of a job (a row of the history's sessions table)."""

    id: str
    job: str
    status: Status
    started: datetime | None = None
    finished: datetime | None = None
    duration_s: float | None = None
    processed: int = 0
    read: int = 0
    transferred: int = 0
    written: int = 0
    message: str = ""

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SessionRecord:
        return cls(id=str(row.get("id", "")), job=str(row.get("job", "") or ""),
                   status=_status(row.get("status")), started=_time(row.get("started")),
                   finished=_time(row.get("finished")), duration_s=_float(row.get("duration_s")),
                   processed=_int(row.get("processed")), read=_int(row.get("read")),
                   transferred=_int(row.get("transferred")), written=_int(row.get("written")),
                   message=str(row.get("message", "") or ""))

    @property
    def ended(self) -> datetime | None:
        return self.finished or self.started


@dataclass(frozen=True)
class TaskRecord:
    """One machine's result in a past session."""

    machine: str
    status: Status
    kind: str = ""
    point: str = ""
    processed: int = 0
    read: int = 0
    transferred: int = 0
    written: int = 0
    duration_s: float | None = None
    held_s: float | None = None
    bottleneck: str = ""
    message: str = ""
    attempts: int = 1

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> TaskRecord:
        return cls(machine=str(row.get("machine", "") or ""), status=_status(row.get("status")),
                   kind=str(row.get("kind", "") or ""), point=str(row.get("point", "") or ""),
                   processed=_int(row.get("processed")), read=_int(row.get("read")),
                   transferred=_int(row.get("transferred")), written=_int(row.get("written")),
                   duration_s=_float(row.get("duration_s")), held_s=_float(row.get("held_s")),
                   bottleneck=str(row.get("bottleneck", "") or ""),
                   message=str(row.get("message", "") or ""),
                   attempts=_int(row.get("attempts")) or 1)


@dataclass(frozen=True)
class LogRecord:
    """One line of a past session's log (`engine.session_log`)."""

    time: datetime | None
    level: str
    text: str
    machine: str = ""
    kind: str = "log"  # "retention" for a retention action

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> LogRecord:
        return cls(time=_time(row.get("time")), level=str(row.get("level", "") or "info"),
                   text=str(row.get("text", "") or ""), machine=str(row.get("machine", "") or ""),
                   kind=str(row.get("kind", "") or "log"))


def log_lines(records: list[LogRecord]) -> list[str]:
    """`22:00:03 web01: ...` lines, the date written out when it changes (first line too);
    warnings and errors marked in words, never by colour alone."""
    out: list[str] = []
    day = None
    for r in records:
        if r.time is None:
            stamp = "--:--:--"
        elif r.time.date() != day:
            day = r.time.date()
            stamp = r.time.strftime("%Y-%m-%d %H:%M:%S")
        else:
            stamp = r.time.strftime("%H:%M:%S")
        level = "" if r.level == "info" else f"[{r.level}] "
        out.append(f"{stamp} {level}{r.text}")
    return out


@dataclass
class LastRun:
    """A job's newest finished session and its per-machine results."""

    session: SessionRecord
    tasks: list[TaskRecord] = field(default_factory=list)

    def task(self, machine: str) -> TaskRecord | None:
        return next((t for t in self.tasks if t.machine == machine), None)
