"""One run of a job at a time, and the error of a run that cannot start.

The lock is a flock on `<target>/<job>/.job.lock`, taken for the whole run (or, for a
remote target, by the mover for the job stream: engine.copy.jobsession); a second
run of the job is refused at once with exit 3 rather than waiting.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from engine.errors import ExitCode, FerryError
from engine.repository.repository import safe_name


class RunError(FerryError):
    """The whole run cannot start (job already running, bad repositories)."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.FAILED):
        super().__init__(message)
        self.exit_code = exit_code


class JobLock:
    """One run of a job at a time: a flock on `<target>/<job>/.job.lock`."""

    def __init__(self, target: Path, job: str):
        self.path = Path(target) / safe_name(job, "job name") / ".job.lock"
        self.fd: int | None = None

    def __enter__(self) -> JobLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunError(f"job {self.path.parent.name!r} is already running", ExitCode.BUSY) from None
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
