"""What a copy session returns: per-machine task results, the session result, and
how a finished session goes into the job's history (`engine.history`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.errors import ExitCode, one_line
from engine.history import History, history_path
from engine.model import Stats, Status
from engine.repository.repository import Repository
from engine.units import rfc3339


@dataclass
class TaskResult:
    """One machine's outcome; filled while its copy goes, so a failure keeps the bytes
    already copied (the history and `TaskFinished` report them)."""

    machine: str
    status: Status = Status.SUCCESS
    kind: str = "none"  # "full", "incremental", or "none" (nothing copied)
    point: str = ""
    source_point: str = ""
    stats: Stats = field(default_factory=Stats)
    duration_s: float = 0.0
    held_s: float = 0.0
    bottleneck: str = ""
    load: dict[str, float] = field(default_factory=dict)
    message: str = ""
    attempts: int = 1
    gave_up_waiting: bool = False
    retryable: bool = True  # a plan error (e.g. another block size) fails the same way again
    plan: list[dict[str, Any]] = field(default_factory=list)  # dry run: what would be copied
    # the retention actions the target applied for this machine (the session lists them)
    retention: list[dict[str, Any]] = field(default_factory=list)

    def fail(self, message: str, *, retryable: bool = True) -> None:
        self.status, self.message, self.retryable = Status.FAILED, message, retryable

    def warn(self, message: str) -> None:
        """Warning (never better than a Failed) with `message` as the reason."""
        if self.status != Status.FAILED:
            self.status = Status.WARNING
        self.message = message

    def to_json(self) -> dict[str, Any]:
        s = self.stats
        return {"machine": self.machine, "status": str(self.status), "kind": self.kind,
                "point": self.point, "source_point": self.source_point,
                "processed": s.processed, "read": s.read, "transferred": s.transferred,
                "written": s.written, "duration_s": round(self.duration_s, 3),
                "held_s": round(self.held_s, 3), "bottleneck": self.bottleneck,
                "load": self.load, "message": self.message, "attempts": self.attempts,
                **({"plan": self.plan} if self.plan else {})}


@dataclass
class SessionResult:
    """One session's outcome (CONTRACT: `ferry run --json`)."""
    job: str
    session: str
    status: Status
    started: datetime
    finished: datetime
    tasks: list[TaskResult]
    retention: list[dict[str, Any]]
    duration_s: float = 0.0
    dry_run: bool = False
    message: str = ""
    kind: str = "copy"  # or "retention": a background retention pass (engine.copy.background)
    # object storage targets: S3 requests the session made, by kind (PUT, GET, LIST, ...)
    requests: dict[str, int] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.of_status(self.status, any(tr.gave_up_waiting for tr in self.tasks))

    def to_json(self) -> dict[str, Any]:
        return {"job": self.job, "session": self.session, "status": str(self.status),
                "started": rfc3339(self.started), "finished": rfc3339(self.finished),
                "duration_s": round(self.duration_s, 3), "dry_run": self.dry_run,
                "kind": self.kind, "message": self.message,
                "tasks": [tr.to_json() for tr in self.tasks], "retention": self.retention,
                **({"requests": self.requests} if self.requests else {})}


def session_row(res: SessionResult) -> dict[str, Any]:
    """A finished session as the history stores it."""
    tot = Stats()
    for tr in res.tasks:
        tot.add(tr.stats)
    return {"id": res.session, "job": res.job, "status": str(res.status),
            "started": res.started.isoformat(), "finished": res.finished.isoformat(),
            "duration_s": res.duration_s, "processed": tot.processed, "read": tot.read,
            "transferred": tot.transferred, "written": tot.written,
            "message": res.message, "dry_run": 0, "kind": res.kind}


def record_session(spec: Any, dst: Any, res: SessionResult, upload: bool = True,
                   log: list[dict[str, Any]] | None = None) -> str:
    """Write a finished session (and its log lines, `engine.session_log`) into the job's
    history; "" or why it could not be. `upload=False`: an object storage target refused
    the run, so nothing goes there."""
    session = session_row(res)
    try:
        History(history_path(spec)).record(session, [tr.to_json() for tr in res.tasks], log)
        if upload and not isinstance(dst, Repository):
            from engine.objstore.history import upload_history

            upload_history(dst, history_path(spec))
    except Exception as exc:  # noqa: BLE001 - history must not fail the copy
        return one_line(exc)
    return ""
