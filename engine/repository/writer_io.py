"""A background writer thread for one backup file.

The block pipeline's main thread hands full buffers over instead of writing
them itself (`pwritev` at a known offset, no join), so reading, hashing,
compressing and writing overlap. Tasks run in order on one thread; at most
`depth` buffers wait, which bounds memory.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

IOV_MAX = 1024


class BackgroundWriter:
    def __init__(self, fd: int, depth: int = 4):
        self.fd = fd
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ferry-write")
        self._slots = threading.BoundedSemaphore(depth)
        self._futures: list[Future] = []

    def write(self, bufs: list[bytes], offset: int) -> None:
        """Queue `bufs` to be written at `offset` (the list is owned by the writer now)."""
        self._check()
        self._slots.acquire()
        self._futures.append(self._pool.submit(self._pwrite, bufs, offset))

    def _pwrite(self, bufs: list[bytes], offset: int) -> None:
        try:
            for i in range(0, len(bufs), IOV_MAX):
                part = bufs[i:i + IOV_MAX]
                want = sum(len(b) for b in part)
                done = os.pwritev(self.fd, part, offset)
                if done != want:  # short write: finish it the slow way
                    data = b"".join(part)
                    while done < want:
                        done += os.pwrite(self.fd, data[done:], offset + done)
                offset += want
        finally:
            self._slots.release()

    def call(self, fn: Callable[[], None]) -> None:
        """Run fn on the writer thread after every write queued so far."""
        self._check()
        self._futures.append(self._pool.submit(fn))

    def _check(self) -> None:
        """Raise the first failure of a finished task; forget finished ones."""
        keep = []
        for f in self._futures:
            if f.done():
                f.result()
            else:
                keep.append(f)
        self._futures = keep

    def drain(self) -> None:
        """Wait for every queued task; raise the first failure."""
        futures, self._futures = self._futures, []
        for f in futures:
            f.result()

    def close(self) -> None:
        try:
            self.drain()
        finally:
            self._pool.shutdown(wait=True)
