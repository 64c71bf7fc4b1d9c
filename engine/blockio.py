"""Hash and compress blocks in a small thread pool, streaming, in order.

zstandard and xxhash release the GIL, so two threads use both cores. The
reader fills a ring of preallocated buffers (`readinto`, no fresh allocation
per block) and never reuses a buffer before its job is consumed, so memory is
bounded by block size x ring depth.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import xxhash
import zstandard

from engine.repository.container import FLAG_RAW, FLAG_ZERO, FLAG_ZSTD

# Compression levels of the job files mapped to zstd levels (see docs/ARCHITECTURE.md).
LEVELS: dict[str, int | None] = {
    "none": None,
    "dedupe-friendly": -5,
    "optimal": 1,
    "high": 3,
    "extreme": 9,
}
DEFAULT_LEVEL = "optimal"
THREADS = max(1, min(4, os.cpu_count() or 2))

_zero_digests: dict[int, bytes] = {}


def zero_digest(n: int) -> bytes:
    """Digest of n zero bytes (cached): zero blocks are recognised by digest."""
    d = _zero_digests.get(n)
    if d is None:
        d = _zero_digests[n] = xxhash.xxh3_128_digest(bytes(n))
    return d


def digest(data: bytes | memoryview) -> bytes:
    return xxhash.xxh3_128_digest(data)


class Compressor:
    """One zstd compressor per thread (zstd contexts are not thread safe)."""

    def __init__(self, level: str):
        if level not in LEVELS:
            raise ValueError(f"unknown compression level {level!r}")
        self.level = LEVELS[level]
        self._local = threading.local()

    def compress(self, data: bytes | memoryview) -> tuple[int, bytes]:
        """(flags, payload): raw when compression is off or does not help."""
        if self.level is None:
            return FLAG_RAW, bytes(data)
        c = getattr(self._local, "c", None)
        if c is None:
            c = self._local.c = zstandard.ZstdCompressor(level=self.level)
        out = c.compress(data)
        if len(out) >= len(data):
            return FLAG_RAW, bytes(data)
        return FLAG_ZSTD, out


@dataclass(slots=True)
class Block:
    """One block as scanned: what must be stored (or that it is unchanged)."""

    index: int
    raw_len: int
    digest: bytes
    flags: int  # FLAG_ZERO / FLAG_RAW / FLAG_ZSTD, or -1 = unchanged from `previous`
    payload: bytes = b""


UNCHANGED = -1


@dataclass
class ScanStats:
    read: int = 0  # bytes read from the image


def scan_image(path: Path, block_size: int, comp: Compressor, pool: ThreadPoolExecutor,
               previous: dict[int, bytes] | None = None, stats: ScanStats | None = None,
               depth: int | None = None) -> Iterator[Block]:
    """Yield every block of a raw image in order, hashed and (if changed) compressed.

    Blocks whose digest equals `previous[index]` come back as UNCHANGED with no
    payload; all-zero blocks as FLAG_ZERO. Holes of sparse files are not read.
    """
    previous = previous or {}
    stats = stats or ScanStats()
    depth = depth or 2 * THREADS + 2
    size = os.path.getsize(path)
    ring = [bytearray(block_size) for _ in range(depth)]
    pending: deque = deque()

    def work(i: int, view: memoryview) -> Block:
        d = digest(view)
        n = len(view)
        if d == zero_digest(n):
            return Block(i, n, d, FLAG_ZERO)
        if previous.get(i) == d:
            return Block(i, n, d, UNCHANGED)
        flags, payload = comp.compress(view)
        return Block(i, n, d, flags, payload)

    nblocks = -(-size // block_size)
    with open(path, "rb", buffering=0) as f:
        fd = f.fileno()
        data_from = _next_data(fd, 0, size)
        for i in range(nblocks):
            off = i * block_size
            n = min(block_size, size - off)
            if data_from >= off + n:  # a hole covers this whole block
                zd = zero_digest(n)
                blk = Block(i, n, zd, FLAG_ZERO)
                if not pending:
                    yield blk
                    continue
                pending.append(blk)
            else:
                if len(pending) >= depth:
                    yield _result(pending.popleft())
                buf = memoryview(ring[i % depth])[:n]
                f.seek(off)
                got = f.readinto(buf)
                if got != n:
                    raise OSError(f"{path}: short read at block {i}")
                stats.read += n
                pending.append(pool.submit(work, i, buf))
                if data_from < off + n and off + n < size:
                    data_from = _next_data(fd, off + n, size)
            while pending and isinstance(pending[0], Block):
                yield pending.popleft()
        while pending:
            yield _result(pending.popleft())


def _result(item) -> Block:
    return item if isinstance(item, Block) else item.result()


def _next_data(fd: int, pos: int, size: int) -> int:
    """Offset of the next data region at or after pos (size if none); pos if unknown."""
    try:
        return os.lseek(fd, pos, os.SEEK_DATA)
    except OSError:  # ENXIO: no more data; EINVAL: not supported
        import errno
        import sys

        err = sys.exc_info()[1]
        return size if getattr(err, "errno", None) == errno.ENXIO else pos


def make_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="ferry-block")
