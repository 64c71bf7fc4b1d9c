"""Deterministic, streaming generator of VM-like raw disk images.

Shared by the sample repositories (`sample_repos/generate.py`), the tests and
the benches, so that all of them see the same kind of data:

* whole regions of zeros (unallocated space) plus zero pages inside data,
* text-like pages (words, numbers, line breaks: compresses ~2.5x at zstd-1),
* random 4 KiB pages (incompressible: binaries, media, encrypted data),
* an "OS image" region at the start of the disk, seeded by `shared_seed`
  alone, so machines cloned from the same template hold identical blocks at
  the same offsets (a small share of that region diverges per machine).

With the defaults, pages come out as ~40 % zero, ~30 % text, ~30 % random,
the mix of research/machine.md.

Everything is a function of the seeds and arguments only (`random.Random`
with string seeds; no `os.urandom`, no hash randomisation), so the same call
gives the same bytes on every run and machine. Nothing holds a disk in
memory: content is composed a unit at a time from per-seed pools of
pre-generated pages (4 MiB of text, 16 MiB of random pages per seed, cached)
and written with `os.pwritev`, at roughly disk speed.

`mutate_disk` makes one day's changes in place: it rewrites runs of pages in
`change_pct` % of the units (every chosen unit is guaranteed to differ, each
change carries a stamp naming the seed, day and unit), sometimes zeroes a
whole unit (deleted and trimmed data), and can grow or shrink the disk.
"""

from __future__ import annotations

import itertools
import os
import random
import sys
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

PAGE = 4096
UNIT = 1 << 20  # default unit of layout and of mutation (match the backup block size)
TEXT_POOL_PAGES = 1024  # 4 MiB of text per seed
RANDOM_POOL_PAGES = 4096  # 16 MiB of random pages per seed
_MAX_RUN_EXP = 7  # runs of 1..64 pages inside a unit
_ZEROS = memoryview(bytes(8 << 20))


@dataclass(frozen=True)
class Mix:
    """Share of pages of each kind; `zero_regions` of the zeros come as whole units."""

    zero: float = 0.40
    text: float = 0.30
    random: float = 0.30
    zero_regions: float = 0.75

    def __post_init__(self) -> None:
        total = self.zero + self.text + self.random
        if abs(total - 1.0) > 1e-6 or min(self.zero, self.text, self.random) < 0:
            raise ValueError(f"page shares must be >= 0 and add up to 1, got {total}")
        if not 0 <= self.zero_regions <= 1:
            raise ValueError("zero_regions must be within 0..1")

    @property
    def unit_zero(self) -> float:
        """Probability that a whole unit is zero."""
        return self.zero * self.zero_regions

    def page_shares(self) -> tuple[float, float]:
        """(zero, zero+text) cumulative page probabilities inside a data unit."""
        rest = 1.0 - self.unit_zero
        if rest <= 0:
            return 1.0, 1.0
        z = (self.zero - self.unit_zero) / rest
        return z, z + self.text / rest


DEFAULT_MIX = Mix()


@dataclass
class DiskStats:
    """What was written: bytes of each kind (shared = from the template region)."""

    size: int = 0
    zero: int = 0
    text: int = 0
    random: int = 0
    shared: int = 0  # bytes of template units (also counted in zero/text/random)


@dataclass
class Mutation:
    """What one `mutate_disk` call did."""

    day: int
    old_size: int
    new_size: int
    units: list[int] = field(default_factory=list)  # units changed in place, sorted
    zeroed: list[int] = field(default_factory=list)  # of those, units now all zero
    ranges: list[tuple[int, int]] = field(default_factory=list)  # (offset, length) rewritten
    changed_bytes: int = 0  # bytes rewritten in place (not counting growth)
    grown_bytes: int = 0


# ---------------------------------------------------------------- pools


def _token_table() -> list[bytes]:
    """65536 tokens (pseudo-words, numbers, log words, line breaks), each repeated in
    proportion to a Zipf-like weight: a random 16-bit index draws one. Seed-independent."""
    rng = random.Random("ferry-vmdata-vocabulary")
    syl = ["ka", "to", "ri", "en", "la", "mo", "st", "er", "in", "on", "ar", "de", "sh", "qu",
           "ex", "ti", "ve", "ne", "po", "lu", "ch", "al", "or", "is", "ur", "ma", "pe", "zo",
           "be", "ck", "io", "ws", "db", "fs", "nt", "ly"]
    words: set[str] = set()
    while len(words) < 3000:
        words.add("".join(rng.choice(syl) for _ in range(rng.randint(1, 4))))
    toks = [w.encode() for w in sorted(words)]
    weights = [1.0 / (i + 1) ** 0.9 for i in range(len(toks))]
    nums = [str(rng.randrange(10 ** rng.randint(1, 7))).encode() for _ in range(1000)]
    toks += nums
    weights += [0.004] * len(nums)
    toks += [b"INFO", b"WARN", b"ERROR", b"=", b"/", b"\n"]
    base = sum(weights)
    weights += [base / 60, base / 300, base / 1000, base / 40, base / 30, base / 10]
    total = sum(weights)
    table: list[bytes] = []
    for tok, cum in zip(toks, itertools.accumulate(weights), strict=True):
        table.extend([tok] * (round(cum / total * 65536) - len(table)))
    return table[:65536]


_TABLE: list[bytes] | None = None


@dataclass(frozen=True)
class Pools:
    """Pre-generated pages of one seed: a text buffer and a random buffer."""

    text: memoryview
    random: memoryview

    @property
    def text_pages(self) -> int:
        return len(self.text) // PAGE

    @property
    def random_pages(self) -> int:
        return len(self.random) // PAGE


@lru_cache(maxsize=6)
def pools(seed: str) -> Pools:
    """The page pools of a seed (cached; ~0.1 s and 20 MiB each)."""
    global _TABLE
    if _TABLE is None:
        _TABLE = _token_table()
    rng = random.Random(f"ferry-vmdata-pools:{seed}")
    n = TEXT_POOL_PAGES * PAGE
    text = b""
    while len(text) < n:  # tokens average > 5 bytes with their space: one round
        draws = array("H", rng.randbytes(2 * (n // 5)))
        if sys.byteorder == "big":  # the same draws on every machine
            draws.byteswap()
        text += b" ".join(map(_TABLE.__getitem__, draws))
    rand = rng.randbytes(RANDOM_POOL_PAGES * PAGE)
    return Pools(memoryview(text[:n]), memoryview(rand))


# ---------------------------------------------------------------- composing units


def _compose(rng: random.Random, pool: Pools, nbytes: int, mix: Mix,
             kinds: list[int] | None = None) -> list[memoryview]:
    """Buffers making up `nbytes` of data-unit content: runs of zero/text/random pages.

    `kinds`, when given, receives [zero, text, random] byte counts.
    """
    pz, pzt = mix.page_shares()
    parts: list[memoryview] = []
    npages = -(-nbytes // PAGE)
    tp, rp = pool.text_pages, pool.random_pages
    j = 0
    while j < npages:
        run = min(npages - j, 1 << rng.randrange(_MAX_RUN_EXP))
        r = rng.random()
        if r < pz:
            parts.append(_ZEROS[:run * PAGE])
            k = 0
        elif r < pzt:
            s = rng.randrange(tp - run + 1)
            parts.append(pool.text[s * PAGE:(s + run) * PAGE])
            k = 1
        else:
            s = rng.randrange(rp - run + 1)
            parts.append(pool.random[s * PAGE:(s + run) * PAGE])
            k = 2
        if kinds is not None:
            kinds[k] += run * PAGE
        j += run
    extra = npages * PAGE - nbytes
    if extra:
        last = parts[-1]
        parts[-1] = last[:len(last) - extra]
        if kinds is not None:
            kinds[k] -= extra
    return parts


def _template_unit(shared_seed: str, index: int, nbytes: int, mix: Mix,
                   kinds: list[int] | None) -> list[memoryview]:
    """Unit `index` of the shared OS image: depends on (shared_seed, index, nbytes) only."""
    trng = random.Random(f"ferry-vmdata-template:{shared_seed}:{index}")
    if trng.random() < mix.unit_zero:
        if kinds is not None:
            kinds[0] += nbytes
        return [_ZEROS[:nbytes]] if nbytes <= len(_ZEROS) else [memoryview(bytes(nbytes))]
    return _compose(trng, pools(f"template:{shared_seed}"), nbytes, mix, kinds)


def iter_disk(size: int, seed: str | int, shared_seed: str | int | None = None, *,
              shared: float = 0.25, diverge: float = 0.1, unit: int = UNIT,
              mix: Mix = DEFAULT_MIX, stats: DiskStats | None = None
              ) -> Iterator[tuple[int, list[memoryview] | None]]:
    """Yield (offset, buffers or None for an all-zero unit) for each unit of a disk, in order.

    The first `shared` fraction of the units is the template ("OS image") of
    `shared_seed`, except `diverge` of them, which hold machine data.
    """
    if size < 0 or unit <= 0 or unit % PAGE:
        raise ValueError("size must be >= 0 and unit a positive multiple of 4 KiB")
    seed = str(seed)
    template = None if shared_seed is None else str(shared_seed)
    rng = random.Random(f"ferry-vmdata-disk:{seed}")
    pool = pools(seed)
    nunits = -(-size // unit)
    template_units = int(nunits * shared) if template is not None else 0
    region_left, region_zero = 0, False
    for i in range(nunits):
        off = i * unit
        n = min(unit, size - off)
        kinds = [0, 0, 0] if stats is not None else None
        if region_left == 0:  # regions of 1..16 units share one zero/data decision
            region_left = 1 << rng.randrange(5)
            region_zero = rng.random() < mix.unit_zero
        region_left -= 1
        diverged = rng.random() < diverge
        parts: list[memoryview] | None
        if template is not None and i < template_units and not diverged:
            parts = _template_unit(template, i, n, mix, kinds)
            if stats is not None:
                stats.shared += n
        elif region_zero:
            parts = None
            if kinds is not None:
                kinds[0] += n
        else:
            parts = _compose(rng, pool, n, mix, kinds)
        if stats is not None and kinds is not None:  # kinds is counted exactly when stats is
            stats.size += n
            stats.zero += kinds[0]
            stats.text += kinds[1]
            stats.random += kinds[2]
        yield off, parts


def _pwrite_all(fd: int, parts: Sequence[bytes | bytearray | memoryview], offset: int) -> None:
    """pwritev the buffers at offset, coping with short writes and IOV_MAX."""
    parts = list(parts)
    while parts:
        batch = parts[:512]
        want = sum(len(p) for p in batch)
        done = os.pwritev(fd, batch, offset)
        offset += done
        if done == want:
            parts = parts[512:]
            continue
        # short write: drop what was written and go on from there
        rest: list[bytes | bytearray | memoryview] = []
        for p in parts:
            if done >= len(p):
                done -= len(p)
                continue
            rest.append(memoryview(p)[done:])
            done = 0
        parts = rest


def write_disk(path: str | Path, size: int, seed: str | int,
               shared_seed: str | int | None = None, *, shared: float = 0.25,
               diverge: float = 0.1, unit: int = UNIT, mix: Mix = DEFAULT_MIX,
               sparse: bool = False) -> DiskStats:
    """Write a VM-like raw image of `size` bytes to `path` (replaced if present).

    `sparse=True` leaves all-zero units as holes; by default zeros are written,
    so a reader really reads every byte (what a benchmark wants).
    """
    stats = DiskStats()
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for off, parts in iter_disk(size, seed, shared_seed, shared=shared, diverge=diverge,
                                    unit=unit, mix=mix, stats=stats):
            if parts is None:
                if sparse:
                    continue
                n = min(unit, size - off)
                parts = [_ZEROS[:n]] if n <= len(_ZEROS) else [memoryview(bytes(n))]
            _pwrite_all(fd, parts, off)
        os.ftruncate(fd, size)
    finally:
        os.close(fd)
    return stats


def disk_bytes(size: int, seed: str | int, shared_seed: str | int | None = None,
               **kw: Any) -> bytes:
    """The whole content as bytes (small disks only: tests)."""
    out = bytearray(size)
    for off, parts in iter_disk(size, seed, shared_seed, **kw):
        if parts is not None:
            blob = b"".join(parts)
            out[off:off + len(blob)] = blob
    return bytes(out)


# ---------------------------------------------------------------- day-to-day changes


def _stamp(seed: str, day: int, unit_index: int) -> bytes:
    return f"\nferry-vmdata change seed={seed} day={day} unit={unit_index}\n".encode()


def mutate_disk(path: str | Path, day: int, seed: str | int, change_pct: float,
                grow_pct: float = 0, shrink_pct: float = 0, *, unit: int = UNIT,
                hot: float = 0.7, zero_pct: float = 5, mix: Mix = DEFAULT_MIX) -> Mutation:
    """Apply day `day`'s changes to the image at `path`, in place; deterministic.

    Order: shrink (truncate by `shrink_pct` % of the size, whole pages), grow
    (append `grow_pct` % of the size as new machine data), then change
    `change_pct` % of the units (at least one when > 0): each with probability
    `hot` from a fixed per-seed hot set of ~10 % of the units (logs, databases:
    the same blocks change day after day), the others anywhere.
    Each changed unit gets a run of rewritten pages with a unique stamp, or
    (`zero_pct` % of them) becomes all zero. Call it once per (seed, day).
    """
    if change_pct < 0 or grow_pct < 0 or shrink_pct < 0 or (grow_pct and shrink_pct):
        raise ValueError("percentages must be >= 0, and a day either grows or shrinks")
    if unit <= 0 or unit % PAGE:
        raise ValueError("unit must be a positive multiple of 4 KiB")
    seed = str(seed)
    path = Path(path)
    rng = random.Random(f"ferry-vmdata-mutate:{seed}:{day}")
    pool = pools(seed)
    fd = os.open(path, os.O_RDWR)
    try:
        size = os.fstat(fd).st_size
        m = Mutation(day, size, size)
        if shrink_pct:
            new = max(PAGE, (int(size * (100 - shrink_pct) / 100) // PAGE) * PAGE)
            os.ftruncate(fd, min(new, size))
            size = min(new, size)
        if grow_pct:
            add = max(PAGE, (int(size * grow_pct / 100) // PAGE) * PAGE)
            pos, end = size, size + add
            while pos < end:  # fill to the next unit boundary, then unit by unit
                n = min(end, (pos // unit + 1) * unit) - pos
                _pwrite_all(fd, _compose(rng, pool, n, mix), pos)
                pos += n
            size = end
            m.grown_bytes = add
        m.new_size = size
        nunits = -(-size // unit)
        k = min(nunits, max(1, round(nunits * change_pct / 100))) if change_pct > 0 else 0
        if k:
            hot_set = random.Random(f"ferry-vmdata-hot:{seed}").sample(
                range(nunits), max(1, nunits // 10))
            from_hot = min(len(hot_set), sum(rng.random() < hot for _ in range(k)))
            chosen = set(rng.sample(hot_set, from_hot))
            rest = [u for u in range(nunits) if u not in chosen]
            chosen.update(rng.sample(rest, k - len(chosen)))
            for u in sorted(chosen):
                off = u * unit
                n = min(unit, size - off)
                if rng.random() * 100 < zero_pct:
                    if os.pread(fd, n, off) != _ZEROS[:n]:  # only if not already zero
                        _pwrite_all(fd, [_ZEROS[:n]], off)
                        m.zeroed.append(u)
                        m.units.append(u)
                        m.ranges.append((off, n))
                        m.changed_bytes += n
                        continue
                pages = -(-n // PAGE)
                run = min(pages, 1 << rng.randrange(_MAX_RUN_EXP + 2))
                first = rng.randrange(pages - run + 1)
                start = off + first * PAGE
                length = min(run * PAGE, off + n - start)
                parts = _compose(rng, pool, length, mix)
                stamp = _stamp(seed, day, u)[:length]
                blob = bytearray(b"".join(parts))
                blob[:len(stamp)] = stamp
                _pwrite_all(fd, [blob], start)
                m.units.append(u)
                m.ranges.append((start, length))
                m.changed_bytes += length
        return m
    finally:
        os.close(fd)


def changed_blocks(m: Mutation, block_size: int) -> int:
    """How many backup blocks of `block_size` the in-place changes of `m` touched."""
    blocks: set[int] = set()
    for off, length in m.ranges:
        blocks.update(range(off // block_size, (off + length - 1) // block_size + 1))
    return len(blocks)
