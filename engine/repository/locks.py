"""Chain locks (CONTRACT: a `lock` file per machine folder, flock shared/exclusive).

Writers of a chain (a source backup job, a merge, any transform) hold LOCK_EX;
readers (the copy job's source mover) hold LOCK_SH. Non-blocking attempts let
the copy runner put a task on hold instead of waiting blind.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from engine.errors import ExitCode, FerryError

COPY_LOCK_WAIT = 600.0  # seconds the copy path waits for a target chain lock (no blind wait)


class LockBusy(FerryError):
    """The lock is held in a conflicting mode by someone else."""

    exit_code = ExitCode.BUSY


class ChainLock:
    """A flock on `<machine folder>/lock`; use as a context manager."""

    def __init__(self, folder: Path, exclusive: bool, wait: float | None = None):
        """`wait`: how long the context manager waits for the lock (None = until free)."""
        self.path = Path(folder) / "lock"
        self.exclusive = exclusive
        self.wait = wait
        self._fd: int | None = None

    def acquire(self, timeout: float | None = None, poll: float = 0.05) -> None:
        """Take the lock; `timeout=0` tries once, `None` waits forever. Raises LockBusy."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        mode = fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                self._fd = fd
                return
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    os.close(fd)
                    held = f" still held after {timeout:.0f}s" if timeout else " is held"
                    raise LockBusy(f"chain lock {self.path}{held}") from None
                time.sleep(poll)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ChainLock:
        self.acquire(self.wait)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def exclusive(folder: Path) -> ChainLock:
    return ChainLock(folder, exclusive=True)


def shared(folder: Path) -> ChainLock:
    return ChainLock(folder, exclusive=False)
