"""Messages that thread workers post to the App, and the App posts to screens.

Workers never touch widgets or the store; they post one of these and a
handler on the App applies it to the `Store` (harlequin style); the App then
tells the screens with `JobChanged` / `JobsChanged`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from textual.message import Message

from console.records import JobEntry, LastRun, LogRecord, MachineInfo, SessionRecord, TaskRecord
from engine.copy.runner import SessionResult
from engine.jobs.load import JobSpec
from engine.live.client import SessionInfo
from engine.simulate import PreviewResult


@dataclass
class JobsLoaded(Message):
    """The jobs folder was read."""

    entries: list[JobEntry]
    error: str = ""


@dataclass
class JobDataLoaded(Message):
    """What one job's repositories and history hold: chains, last run, next start."""

    job_key: str
    machines: list[MachineInfo]
    last_run: LastRun | None = None
    next_run: datetime | None = None
    error: str = ""


@dataclass
class JobsChanged(Message):
    """The set of jobs changed (loaded, reloaded): views rebuild."""

    error: str = ""


@dataclass
class JobChanged(Message):
    """A job's file, data or run state changed; views showing it should refresh."""

    job_key: str


@dataclass
class HistoryLoaded(Message):
    sessions: list[SessionRecord]
    error: str = ""


@dataclass
class TasksLoaded(Message):
    session_id: str
    tasks: list[TaskRecord]
    error: str = ""


@dataclass
class SessionLoaded(Message):
    """A past session's task rows and its kept log lines (the session detail)."""

    session_id: str
    tasks: list[TaskRecord]
    log: list[LogRecord]
    error: str = ""


@dataclass
class PreviewReady(Message):
    """A retention what-if finished."""

    generation: int
    result: PreviewResult | None
    error: str = ""
    sizing: str = ""  # where the sizes came from, in words


@dataclass
class JobSaved(Message):
    """A worker wrote a job file (or failed to); the App updates the store and says so."""

    job_key: str
    spec: JobSpec | None
    text: str
    error: str = ""
    title: str = "Saved"


@dataclass
class RunEnded(Message):
    """A run of this console returned (posted from its thread)."""

    job_key: str
    result: SessionResult | None
    error: str = ""


@dataclass
class LiveSessionsFound(Message):
    """The sessions published for the jobs folder (runs of any process)."""

    sessions: list[SessionInfo]
