"""A background writer thread for one backup file.

The block pipeline's main thread hands full buffers over instead of writing
them itself (`pwritev` at a known offset, no join), so reading, hashing,
compressing and writing overlap. Tasks run in order on one thread; at most
`depth` buffers wait, which bounds memory.

A failed write is terminal for the file: the first failure is kept, every
later task (a write, a journal sync) is skipped, and every later call raises
it. So a journal sync queued behind a failed `pwritev` never records entries
for bytes that did not reach the disk.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from engine.errors import FerryError

IOV_MAX = 1024
STALL_LIMIT = 900.0  # seconds a queued write may take before the file is given up


class WriterFailed(FerryError, OSError):
    """A write to this file failed earlier; nothing after it was written."""


class BackgroundWriter:
    def __init__(self, fd: int, depth: int = 4, stall_limit: float = STALL_LIMIT):
        self.fd = fd
        self.stall_limit = stall_limit
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ferry-write")
        self._slots = threading.BoundedSemaphore(depth)
        self._futures: list[Future[None]] = []
        self.error: BaseException | None = None  # the first failure; terminal

    def write(self, bufs: list[bytes | memoryview], offset: int) -> None:
        """Queue `bufs` to be written at `offset` (the list is owned by the writer now)."""
        self._check()
        if not self._slots.acquire(timeout=self.stall_limit):
            self._fail(WriterFailed(f"write to the backup file stalled for "
                                    f"{self.stall_limit:.0f}s"))
            raise self.error  # type: ignore[misc]
        self._futures.append(self._pool.submit(self._guarded, self._pwrite, bufs, offset))

    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc

    def _guarded(self, fn: Callable[..., object], *args: object) -> None:
        """Run one task unless an earlier one failed; remember the first failure."""
        try:
            if self.error is not None:
                return
            fn(*args)
        except BaseException as exc:
            self._fail(exc)
            raise

    def _pwrite(self, bufs: list[bytes | memoryview], offset: int) -> None:
        try:
            for i in range(0, len(bufs), IOV_MAX):
                part = bufs[i:i + IOV_MAX]
                want = sum(len(b) for b in part)
                done = os.pwritev(self.fd, part, offset)
                if done != want:  # short write: finish it the slow way (ENOSPC raises here)
                    data = b"".join(part)
                    while done < want:
                        n = os.pwrite(self.fd, data[done:], offset + done)
                        if n <= 0:
                            raise OSError(28, "No space left on device")
                        done += n
                offset += want
        finally:
            self._slots.release()

    def call(self, fn: Callable[[], None]) -> None:
        """Run fn on the writer thread after every write queued so far (skipped after a failure)."""
        self._check()
        self._futures.append(self._pool.submit(self._guarded, fn))

    def _check(self) -> None:
        """Raise the first failure; forget finished tasks."""
        self._futures = [f for f in self._futures if not f.done()]
        if self.error is not None:
            raise self.error

    def drain(self) -> None:
        """Wait for every queued task; raise the first failure."""
        futures, self._futures = self._futures, []
        for f in futures:
            try:
                f.result(timeout=self.stall_limit)
            except FutureTimeout:
                self._fail(WriterFailed(f"write to the backup file stalled for "
                                        f"{self.stall_limit:.0f}s"))
            except BaseException:  # noqa: BLE001 - the first failure is raised below
                pass
        if self.error is not None:
            raise self.error

    @property
    def failed(self) -> bool:
        return self.error is not None

    def close(self) -> None:
        try:
            self.drain()
        finally:  # a stalled write cannot be interrupted: do not wait for it
            self._pool.shutdown(wait=not isinstance(self.error, WriterFailed))
