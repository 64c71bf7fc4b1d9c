"""Where Ferry's log goes, so that an admin can read after the fact what a run,
the daemon or the mover did: sessions, errors, refusals.

Everything logs under the stdlib logger "ferry" (modules use "ferry.<area>").
Commands log to no terminal by default (their own output says what happened);
the long-running services (`ferry daemon`, `ferry mover`) also log to stderr.
A run appends to `<target repository>/.ferry/ferry.log` (rotated), one file per
repository, holding only the lines of the jobs that write there. Secrets are
never passed to a logger (password, token and key values stay in their holders).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = "ferry"
FILE_NAME = "ferry.log"
MAX_BYTES = 8 * 1024 * 1024
BACKUPS = 3
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

root = logging.getLogger(ROOT)
root.addHandler(logging.NullHandler())  # no stray "last resort" lines on a terminal
root.setLevel(logging.INFO)


class UtcFormatter(logging.Formatter):
    """RFC 3339 UTC times, like the JSON output."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{t}.{int(record.msecs):03d}Z"


class _JobFilter(logging.Filter):
    """A run's file takes the lines of its own job and the lines naming no job."""

    def __init__(self, job: str) -> None:
        super().__init__()
        self.job = job

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "job", self.job) == self.job


class _RotatingFile(logging.FileHandler):
    """The log file, moved to `.1` (`.1` to `.2`, ... up to BACKUPS) before a line would
    take it past MAX_BYTES: what logging.handlers' RotatingFileHandler does, without
    importing logging.handlers (pickle, socket, queue: ~2 ms of every run's start-up)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.stream is None:
                self.stream = self._open()
            size = self.stream.seek(0, os.SEEK_END)
            if size and size + len((self.format(record) + self.terminator).encode()) > MAX_BYTES:
                self._rotate()
        except Exception:  # noqa: BLE001 - logging's own rule: a log failure never raises
            self.handleError(record)
            return
        super().emit(record)  # opens the new file after a rotation

    def _rotate(self) -> None:
        if self.stream is not None:
            self.stream.close()
        self.stream = None
        for i in range(BACKUPS - 1, 0, -1):
            if os.path.exists(f"{self.baseFilename}.{i}"):
                os.replace(f"{self.baseFilename}.{i}", f"{self.baseFilename}.{i + 1}")
        os.replace(self.baseFilename, f"{self.baseFilename}.1")


def to_stderr(level: int = logging.INFO) -> None:
    """Services log to stderr too (once per process)."""
    if any(getattr(h, "_ferry_stderr", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(UtcFormatter(FORMAT))
    handler.setLevel(level)
    handler._ferry_stderr = True  # type: ignore[attr-defined]
    root.addHandler(handler)


@contextlib.contextmanager
def run_log(repository: Path | str, job: str) -> Iterator[None]:
    """Append the lines of `job` to the repository's log while the block runs; a log
    that cannot be opened costs a warning on the logger, never the run."""
    path = Path(repository) / ".ferry" / FILE_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = _RotatingFile(path, encoding="utf-8", delay=True)
    except OSError as exc:
        root.warning("log file %s not opened: %s", path, exc.strerror or exc)
        yield
        return
    handler.setFormatter(UtcFormatter(FORMAT))
    handler.addFilter(_JobFilter(job))
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def job_logger(area: str) -> logging.Logger:
    return logging.getLogger(f"{ROOT}.{area}")


__all__ = ["FILE_NAME", "job_logger", "run_log", "to_stderr"]
