"""This machine's limits, measured in the same run and on the same data as a bench.

A throughput figure means little alone on a shared, noisy machine
(research/machine.md: a single run can be 5x off). Benches print their result
next to these ceilings, measured minutes apart on the same blocks:

* `cpu_ceiling(blocks, level, threads)` - xxh3-128 of every block plus zstd of
  every non-zero block (what the engine must do per block), 1 or 2 threads, one
  compressor per thread, data already in memory;
* `recompress_floor(blocks, src, level, scratch)` - the least a verified recompressing
  copy must do per block (read the stored payload, decompress, xxh3-128 check, compress
  at `level`, write; fsync), 2 threads: what bounds a copy at another level;
* `hash_ceiling(blocks)` - xxh3-128 alone (an increment's floor besides reading);
* `write_fsync_ceiling(folder, blocks, total)` - sequential 8 MiB writes + fsync;
* `read_ceiling(path, block_size, cold=True)` - sequential `readinto` of a file,
  after evicting it from the page cache (`posix_fadvise(DONTNEED)`: no root
  needed, only that file is dropped) or warm.

And `run_measured(cmd)`: wall time and the child's *own* peak RSS. Beware:
`os.wait4`/`RUSAGE_CHILDREN` of a child started directly from a big bench
process report at least the bench's own RSS (Linux carries the parent's RSS
high-water mark into the child through fork/vfork + exec), so the command is
started through a small launcher process and its figures come from there.

Use from a script in bench/ (its folder is on sys.path): `from ceilings import
measure_ceilings`; elsewhere add bench/ to sys.path first. `python bench/ceilings.py
FILE` prints the ceilings for one image.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import xxhash
import zstandard

MB = 1e6  # throughputs are MB/s = 10^6 bytes/s of input, as in research/machine.md


@dataclass
class Figure:
    """One measured figure over several runs: MB/s (or any unit) per run."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else float("nan")

    @property
    def lo(self) -> float:
        return min(self.values) if self.values else float("nan")

    @property
    def hi(self) -> float:
        return max(self.values) if self.values else float("nan")

    def spread(self) -> str:
        """`min-max (±x% of the median)`."""
        if not self.values:
            return "-"
        m = self.median
        pct = 100 * (self.hi - self.lo) / 2 / m if m else 0.0
        return f"{self.lo:,.0f}-{self.hi:,.0f} (±{pct:.0f}%)"

    def as_dict(self) -> dict:
        return {"median": self.median, "min": self.lo, "max": self.hi, "runs": self.values}


def evict(path: str | Path) -> None:
    """Drop a file's pages from the page cache (written back first) so the next read is cold."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def sample_blocks(path: str | Path, block_size: int, max_bytes: int = 256 << 20) -> list[bytes]:
    """Up to `max_bytes` of whole blocks spread evenly over the file (same data as the bench)."""
    size = os.path.getsize(path)
    nblocks = size // block_size
    want = max(1, min(nblocks, max_bytes // block_size))
    step = nblocks / want
    out = []
    with open(path, "rb", buffering=0) as f:
        for k in range(want):
            out.append(os.pread(f.fileno(), block_size, int(k * step) * block_size))
    return out


def _work(level: int | None) -> Callable[[list[bytes]], int]:
    """Per-thread worker: hash each block, compress the non-zero ones; returns stored bytes."""

    def run(blocks: list[bytes]) -> int:
        comp = zstandard.ZstdCompressor(level=level) if level is not None else None
        zero: dict[int, bytes] = {}
        stored = 0
        for b in blocks:
            d = xxhash.xxh3_128_digest(b)
            z = zero.get(len(b))
            if z is None:
                z = zero[len(b)] = xxhash.xxh3_128_digest(bytes(len(b)))
            if d == z:
                continue
            if comp is None:
                stored += len(b)
                continue
            stored += min(len(b), len(comp.compress(b)))
        return stored

    return run


def cpu_ceiling(blocks: list[bytes], level: int | None, threads: int = 1) -> tuple[float, float]:
    """(MB/s of input, compression ratio) of hash + compress over `blocks` with `threads`."""
    work = _work(level)
    parts = [blocks[i::threads] for i in range(threads)]
    results = [0] * threads
    barrier = threading.Barrier(threads + 1)

    def thread(i: int) -> None:
        barrier.wait()
        results[i] = work(parts[i])

    dt = _run_together([threading.Thread(target=thread, args=(i,)) for i in range(threads)],
                       barrier)
    total = sum(len(b) for b in blocks)
    return total / dt / MB, total / max(1, sum(results))


def recompress_floor(blocks: list[bytes], src_level: int, level: int, scratch: str | Path,
                     threads: int = 2) -> tuple[float, float]:
    """(MB/s of input, CPU seconds per input byte) of the least a verified recompressing
    copy must do, on `threads` threads: for every stored block, pread its zstd-`src_level`
    payload from a file (written untimed first, so in the page cache), decompress it,
    xxh3-128 it and compare with its digest, compress it at `level`, pwrite the result
    into one output file; fsync that file at the end. Zero blocks cost nothing (never
    stored, never read). No second decode: the target stores the payload the source
    checked and compressed (engine.copy.receive, BEGIN `decoded`). `cpu_ceiling(blocks,
    level, threads)` is the compress step alone, on blocks already in memory."""
    zero = xxhash.xxh3_128_digest(bytes(len(blocks[0])))
    src = zstandard.ZstdCompressor(level=src_level)
    stored = [(xxhash.xxh3_128_digest(b), src.compress(b)) for b in blocks]
    stored = [(d, p) for d, p in stored if d != zero]
    folder = Path(scratch)
    inp, outp = folder / "ceiling-recompress-in.tmp", folder / "ceiling-recompress-out.tmp"
    items, pos = [], 0
    with open(inp, "wb") as f:
        for d, p in stored:
            f.write(p)
            items.append((pos, len(p), d))
            pos += len(p)
    parts = [items[i::threads] for i in range(threads)]
    barrier = threading.Barrier(threads + 1)
    lock, end = threading.Lock(), [0]
    fin, fout = os.open(inp, os.O_RDONLY), os.open(outp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    bad: list[int] = []

    def thread(part: list[tuple[int, int, bytes]]) -> None:
        comp, dec = zstandard.ZstdCompressor(level=level), zstandard.ZstdDecompressor()
        barrier.wait()
        for off, n, d in part:
            data = dec.decompress(os.pread(fin, n, off))
            if xxhash.xxh3_128_digest(data) != d:
                bad.append(off)
            out = comp.compress(data)
            with lock:
                at = end[0]
                end[0] += len(out)
            os.pwrite(fout, out, at)

    try:
        c0 = time.process_time()
        dt = _run_together([threading.Thread(target=thread, args=(p,)) for p in parts], barrier,
                           lambda: os.fsync(fout))
        cpu = time.process_time() - c0
    finally:
        os.close(fin)
        os.close(fout)
        inp.unlink(missing_ok=True)
        outp.unlink(missing_ok=True)
    if bad:
        raise RuntimeError("recompress floor: a block did not match its digest")
    total = sum(len(b) for b in blocks)
    return total / dt / MB, cpu / total


def _run_together(ts: list[threading.Thread], barrier: threading.Barrier,
                  then: Callable[[], None] | None = None) -> float:
    """Start the threads, release them at once (each waits on `barrier` first), and
    return the seconds until the last one ends (and `then`, run after it, returns)."""
    for t in ts:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    if then is not None:
        then()
    return time.perf_counter() - t0


def hash_ceiling(blocks: list[bytes]) -> float:
    t0 = time.perf_counter()
    for b in blocks:
        xxhash.xxh3_128_digest(b)
    return sum(len(b) for b in blocks) / (time.perf_counter() - t0) / MB


def write_fsync_ceiling(folder: str | Path, blocks: list[bytes], total: int) -> float:
    """MB/s of writing `total` bytes (the blocks, repeated) in 8 MiB writes, then fsync."""
    path = Path(folder) / "ceiling-write.tmp"
    chunk = b"".join(blocks[: max(1, (8 << 20) // len(blocks[0]))])
    try:
        t0 = time.perf_counter()
        with open(path, "wb", buffering=0) as f:
            done = 0
            while done < total:
                done += f.write(chunk[: total - done])
            os.fsync(f.fileno())
        return total / (time.perf_counter() - t0) / MB
    finally:
        path.unlink(missing_ok=True)


def read_ceiling(path: str | Path, block_size: int = 1 << 20, cold: bool = True) -> float:
    """MB/s of reading the whole file sequentially into one reused buffer."""
    if cold:
        evict(path)
    buf = bytearray(block_size)
    total = 0
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buf):
            total += n
    return total / (time.perf_counter() - t0) / MB


_LAUNCHER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.run(sys.argv[2:])
wall = time.perf_counter() - t0
with open(sys.argv[1], "w") as f:
    u = resource.getrusage(resource.RUSAGE_CHILDREN)
    json.dump({"wall_s": wall, "returncode": p.returncode, "maxrss_kib": u.ru_maxrss,
               "cpu_s": u.ru_utime + u.ru_stime}, f)
"""


@dataclass
class Measured:
    wall_s: float  # from the launcher: excludes the launcher's own start
    rss_mib: float  # peak RSS of the command itself
    cpu_s: float  # user + system CPU time of the command (all its threads)
    returncode: int
    stdout: bytes
    stderr: bytes


def run_measured(cmd: list[str], cwd: str | Path | None = None) -> Measured:
    """Run `cmd` through a small launcher: honest wall time and peak RSS of the command."""
    fd, tmp = tempfile.mkstemp(prefix="ferry-measure-", suffix=".json")
    os.close(fd)
    try:
        p = subprocess.run([sys.executable, "-S", "-c", _LAUNCHER, tmp, *cmd], cwd=cwd,
                           capture_output=True)
        info = json.loads(Path(tmp).read_text() or "{}")
    finally:
        os.unlink(tmp)
    if "wall_s" not in info:
        raise RuntimeError(f"launcher failed: {p.stderr.decode().strip()}")
    return Measured(info["wall_s"], info["maxrss_kib"] / 1024, info["cpu_s"],
                    info["returncode"], p.stdout, p.stderr)


@dataclass
class Ceilings:
    block_size: int
    level: int | None
    sample_bytes: int
    ratio: float = 0.0
    hash: Figure = field(default_factory=Figure)
    cpu1: Figure = field(default_factory=Figure)
    cpu2: Figure = field(default_factory=Figure)
    write_fsync: Figure = field(default_factory=Figure)
    read_cold: Figure = field(default_factory=Figure)
    read_warm: Figure = field(default_factory=Figure)
    load: Figure = field(default_factory=Figure)  # 1-minute load average at each measurement

    FIGURES = ("hash", "cpu1", "cpu2", "write_fsync", "read_cold", "read_warm")
    LABELS = {
        "hash": "xxh3-128, 1 thread",
        "cpu1": "xxh3-128 + zstd, 1 thread",
        "cpu2": "xxh3-128 + zstd, 2 threads",
        "write_fsync": "sequential write + fsync",
        "read_cold": "sequential read, cold",
        "read_warm": "sequential read, page cache",
    }

    def rows(self) -> list[tuple[str, Figure]]:
        return [(self.LABELS[n], getattr(self, n)) for n in self.FIGURES]

    def as_dict(self) -> dict:
        d = {"block_size": self.block_size, "zstd_level": self.level,
             "sample_bytes": self.sample_bytes, "ratio": self.ratio}
        d.update({n: getattr(self, n).as_dict() for n in self.FIGURES})
        return d


class CeilingMeter:
    """Ceilings on the blocks of `image`; `measure()` adds one value of each figure.

    Call it right before each run of the thing being benchmarked, so that every
    run has ceilings taken under the same load (the machines are shared).
    """

    def __init__(self, image: str | Path, block_size: int, level: int | None,
                 scratch: str | Path, sample_bytes: int = 256 << 20,
                 write_bytes: int = 512 << 20, read_file: bool = True):
        self.image, self.scratch = Path(image), Path(scratch)
        self.level, self.write_bytes, self.read_file = level, write_bytes, read_file
        self.blocks = sample_blocks(image, block_size, sample_bytes)
        self.ceilings = Ceilings(block_size, level, sum(len(b) for b in self.blocks))

    def measure(self) -> Ceilings:
        c, blocks = self.ceilings, self.blocks
        c.load.values.append(os.getloadavg()[0])
        c.hash.values.append(hash_ceiling(blocks))
        mbps, c.ratio = cpu_ceiling(blocks, self.level, 1)
        c.cpu1.values.append(mbps)
        c.cpu2.values.append(cpu_ceiling(blocks, self.level, 2)[0])
        c.write_fsync.values.append(write_fsync_ceiling(self.scratch, blocks, self.write_bytes))
        if self.read_file:
            c.read_cold.values.append(read_ceiling(self.image, c.block_size, cold=True))
            c.read_warm.values.append(read_ceiling(self.image, c.block_size, cold=False))
        return c


def measure_ceilings(image: str | Path, block_size: int, level: int | None,
                     scratch: str | Path, runs: int = 3, sample_bytes: int = 256 << 20,
                     write_bytes: int = 512 << 20, read_file: bool = True) -> Ceilings:
    """All ceilings on the blocks of `image`, `runs` times each, interleaved."""
    meter = CeilingMeter(image, block_size, level, scratch, sample_bytes, write_bytes,
                         read_file)
    for _ in range(runs):
        meter.measure()
    return meter.ceilings


def format_ceilings(c: Ceilings) -> str:
    lvl = "off" if c.level is None else str(c.level)
    lines = [f"machine ceilings (block {c.block_size >> 10} KiB, zstd level {lvl}, "
             f"{c.sample_bytes / MB:,.0f} MB sample, ratio {c.ratio:.2f}; MB/s median, min-max)"]
    for label, fig in c.rows():
        if fig.values:
            lines.append(f"  {label:<30} {fig.median:>9,.0f}   {fig.spread()}")
    if c.load.values:
        lines.append(f"  (1-minute load average while measuring: "
                     f"{', '.join(f'{v:.1f}' for v in c.load.values)} on {os.cpu_count()} CPUs)")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        print("usage: python bench/ceilings.py IMAGE [LEVEL]", file=sys.stderr)
        sys.exit(2)
    img = Path(sys.argv[1])
    lv = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    print(format_ceilings(measure_ceilings(img, 1 << 20, lv, img.parent)))
