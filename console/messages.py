"""Messages that thread workers post back to screens and the App.

Workers never touch widgets; they post one of these and a handler on the
screen (or App) owns the state change (harlequin style).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from textual.message import Message

from console.backend import JobEntry, MachineInfo


@dataclass
class JobsLoaded(Message):
    """The jobs folder was read."""

    entries: list[JobEntry]
    error: str = ""


@dataclass
class MachinesLoaded(Message):
    """The machines (and chains) of one job were read."""

    job_key: str
    machines: list[MachineInfo]
    error: str = ""


@dataclass
class StatusesLoaded(Message):
    """Last session status per job (from history)."""

    statuses: dict[str, str] = field(default_factory=dict)


@dataclass
class JobChanged(Message):
    """A job's file or run state changed; views showing it should refresh."""

    job_key: str
    spec: Any | None = None


@dataclass
class HistoryLoaded(Message):
    sessions: list[dict[str, Any]]
    error: str = ""


@dataclass
class TasksLoaded(Message):
    session_id: Any
    tasks: list[dict[str, Any]]
    error: str = ""


@dataclass
class PreviewReady(Message):
    """A retention what-if finished."""

    generation: int
    result: Any | None
    error: str = ""


@dataclass
class JobSaved(Message):
    """A worker wrote a job file (or failed to); the App updates its state and says so."""

    job_key: str
    spec: Any | None
    text: str
    error: str = ""
