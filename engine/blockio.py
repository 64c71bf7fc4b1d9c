"""Hash and compress blocks in a small thread pool, streaming, in order.

zstandard and xxhash release the GIL, so two threads use both cores. The
reader fills a ring of preallocated buffers (`readinto`, no fresh allocation
per block) and never reuses a buffer before its job is consumed, so memory is
bounded by block size x ring depth.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
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


_dlocal = threading.local()


def decompressor() -> zstandard.ZstdDecompressor:
    """This thread's zstd decompressor (contexts are not thread safe, and cheap to keep)."""
    d = getattr(_dlocal, "d", None)
    if d is None:
        d = _dlocal.d = zstandard.ZstdDecompressor()
    return d


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
    """What reading a disk image cost (for the result's figures)."""
    read: int = 0  # bytes read from the image


def scan_image(path: Path, block_size: int, comp: Compressor, pool: ThreadPoolExecutor,
               previous: dict[int, bytes] | None = None, stats: ScanStats | None = None,
               depth: int | None = None) -> Iterator[Block]:
    """Yield every block of a raw image in order, hashed and (if changed) compressed.

    Blocks whose digest equals `previous[index]` come back as UNCHANGED with no
    payload; all-zero blocks as FLAG_ZERO. Holes of sparse files are not read.
    Workers read (`preadv` into a buffer from the free list), hash and compress;
    a buffer goes back to the free list only once its block has been yielded.
    """
    previous = previous or {}
    stats = stats or ScanStats()
    depth = depth or 2 * THREADS + 2
    size = os.path.getsize(path)
    free: deque[bytearray] = deque(bytearray(block_size) for _ in range(depth))
    # (Block | Future, buffer | None), in block order
    pending: deque[tuple[Block | Future[Block], bytearray | None]] = deque()

    def work(fd: int, i: int, off: int, n: int, buf: bytearray) -> Block:
        view = memoryview(buf)[:n]
        if os.preadv(fd, [view], off) != n:
            raise OSError(f"{path}: short read at block {i}")
        d = digest(view)
        if d == zero_digest(n):
            return Block(i, n, d, FLAG_ZERO)
        if previous.get(i) == d:
            return Block(i, n, d, UNCHANGED)
        flags, payload = comp.compress(view)
        return Block(i, n, d, flags, payload)

    def take() -> Block:
        item, buf = pending.popleft()
        blk = item if isinstance(item, Block) else item.result()
        if buf is not None:
            free.append(buf)
        return blk

    nblocks = -(-size // block_size)
    fd = os.open(path, os.O_RDONLY)
    try:
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
        except OSError:
            pass
        data_start, data_end = _data_region(fd, 0, size)
        for i in range(nblocks):
            off = i * block_size
            n = min(block_size, size - off)
            if data_end <= off:  # past this data region: find the next (one pair per extent)
                data_start, data_end = _data_region(fd, off, size)
            if off + n <= data_start:  # a hole covers this whole block
                pending.append((Block(i, n, zero_digest(n), FLAG_ZERO), None))
            else:
                while not free:
                    yield take()
                buf = free.popleft()
                pending.append((pool.submit(work, fd, i, off, n, buf), buf))
                stats.read += n
            while pending and (isinstance(pending[0][0], Block) or pending[0][0].done()
                               or len(pending) > 4 * depth):
                yield take()
        while pending:
            yield take()
    finally:
        while pending:  # never close the fd under a running worker
            item, _ = pending.popleft()
            if not isinstance(item, Block):
                try:
                    item.result()
                except Exception:  # noqa: BLE001 - the first error is already raised
                    pass
        os.close(fd)


def _data_region(fd: int, pos: int, size: int) -> tuple[int, int]:
    """(start, end) of the first data region at or after pos; (size, size) if none.

    Without SEEK_DATA support the whole rest of the file counts as data.
    """
    try:
        start = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno == errno.ENXIO:
            return size, size
        return pos, size
    try:
        end = os.lseek(fd, start, os.SEEK_HOLE)
    except OSError:
        end = size
    return start, max(end, start + 1)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _M_ARENA_MAX = -1, -3, -8  # glibc <malloc.h>


def limit_arenas(n: int) -> None:
    """At most `n` malloc arenas for threads started from now on. Many I/O threads (the
    S3 uploads) would each get an arena keeping its own freed block buffers (up to the
    trim slack each), which multiplies the peak RSS by the thread count."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(_M_ARENA_MAX, n)
    except (OSError, AttributeError):  # not glibc
        pass


def tune_malloc() -> None:
    """Keep freed block buffers in the heap instead of returning them to the kernel.

    Every block makes fresh 1 MiB bytes objects (compressed, decompressed); with
    glibc's defaults each is a new mmap and its pages fault in again (~2.4 us per
    4 KiB here), which cost a quarter of a recompressing copy's time. Memory stays
    bounded by the pipeline's queue depths; only the trim slack (64 MiB) is kept.
    """
    global _tuned
    if _tuned:
        return
    _tuned = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 32 << 20)
        libc.mallopt(_M_TRIM_THRESHOLD, 64 << 20)
    except (OSError, AttributeError):  # not glibc: keep the defaults
        pass


_tuned = False


def make_pool(tune: bool = True) -> ThreadPoolExecutor:
    """The block pool (its threads start on the first task). `tune=False` leaves
    `tune_malloc` to the first block worked on: a run with nothing to copy then never
    loads ctypes."""
    if tune:
        tune_malloc()
    return ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="ferry-block")
