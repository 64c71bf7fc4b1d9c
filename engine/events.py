"""Typed progress events: the engine -> console (and CLI) contract.

Events are delivered to a plain callable the caller passes in; it is called
from engine threads, so a UI must marshal them onto its own thread. Progress
events are throttled per task to about 10 per second (`copy/source.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from engine.model import Stats


@dataclass(frozen=True)
class Event:
    """What the engine tells a UI; every event names its job."""
    job: str


@dataclass(frozen=True)
class RunStarted(Event):
    """A session began, with the machines it will copy."""
    session: str
    machines: list[str]
    dry_run: bool = False


@dataclass(frozen=True)
class RunFinished(Event):
    """A session ended, with its status."""
    session: str
    status: str  # Success | Warning | Failed
    duration_s: float
    message: str = ""


@dataclass(frozen=True)
class TaskQueued(Event):
    """A machine waits for a free task slot."""
    machine: str


@dataclass(frozen=True)
class TaskStarted(Event):
    """A machine's copy began (what it copies, how much)."""
    machine: str
    kind: str  # full | incremental | none
    total: int  # logical bytes the task will process


@dataclass(frozen=True)
class TaskOnHold(Event):
    """A machine waits, e.g. for its source chain lock."""
    machine: str
    reason: str  # e.g. "source chain locked by another job" or "held by operator"
    by: str = "source lock"  # "source lock" | "operator"


@dataclass(frozen=True)
class TaskResumed(Event):
    """A held machine goes on."""
    machine: str


@dataclass(frozen=True)
class TaskProgress(Event):
    """A machine's figures so far."""
    machine: str
    stats: Stats
    total: int
    rate: float  # bytes read per second of transfer time
    bottleneck: dict[str, float] = field(default_factory=dict)  # stage -> busy share 0..1
    to_read: int = 0  # raw bytes the task reads in all (known once digests are exchanged)
    disks: dict[str, float] = field(default_factory=dict)  # disk -> share covered 0..1


@dataclass(frozen=True)
class TaskFinished(Event):
    """A machine's copy ended, with its result."""
    machine: str
    status: str
    stats: Stats
    kind: str = ""
    point: str = ""
    duration_s: float = 0.0
    held_s: float = 0.0
    bottleneck: str = ""
    message: str = ""


@dataclass(frozen=True)
class RetentionAction(Event):
    """Retention removed, merged or flagged a point."""
    machine: str
    action: str  # merge | delete-chain | gfs-full | expire-flag | compact | remove-machine
    point: str = ""
    detail: str = ""


@dataclass(frozen=True)
class OperatorAction(Event):
    """An accepted hold / resume / stop, whoever sent it (this process or another)."""

    action: str  # hold | resume | stop
    machine: str = ""  # "" = the whole session
    by: str = ""  # who holds, or the stop's reason


@dataclass(frozen=True)
class LogLine(Event):
    """A line of the session's log."""
    level: str  # info | warning | error
    text: str
    machine: str = ""


Sink = Callable[[Event], None]


def discard(_: Event) -> None:
    """The default sink: drop events."""
