"""The *source* backup job: raw disk images -> one restore point per call.

Forward (full, then increments; an active full starts a new chain),
forever-forward (past `keep`, the oldest increment is merged into the full)
and reverse incremental (the full always holds the newest state; the blocks it
overwrites go to a new rollback file placed before it).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.blockio import (
    LEVELS,
    UNCHANGED,
    Compressor,
    ScanStats,
    make_pool,
    scan_image,
)
from engine.errors import FerryError
from engine.model import DiskInfo, Kind, MachineMeta, Method, RestorePoint
from engine.repository.container import FLAG_ZERO, Container, ContainerWriter, Entry
from engine.repository.damage import VerifiedReader
from engine.repository.metadata import point_record
from engine.repository.repository import (
    MetadataError,
    Repository,
    new_point_id,
    point_file_name,
    safe_name,
)
from engine.repository.resolve import PointView
from engine.repository.transforms import delete_points, merge_oldest_increment
from engine.units import now

MIN_BLOCK, MAX_BLOCK = 256 << 10, 8 << 20
DEFAULT_BLOCK = 1 << 20  # a new chain without --block-size

_Written = tuple[RestorePoint, int, int]  # the new point, bytes read, bytes written


class BackupError(FerryError):
    """Bad input or an impossible request: one line, nothing stored is touched."""


@dataclass
class BackupResult:
    point: RestorePoint
    read: int
    written: int
    removed: list[str]  # ids of points removed by retention


def validate(job: str, machine: str, disks: list[Path], method: str, keep: int,
             block_size: int, compression: str) -> None:
    """Check every input before any file is touched."""
    try:
        safe_name(job, "job name")
        safe_name(machine, "machine name")
        for d in disks:
            safe_name(Path(d).name, "disk name")
    except ValueError as exc:
        raise BackupError(str(exc)) from None
    if method not in {m.value for m in Method}:
        raise BackupError(f"unknown method {method!r} (forward, forever-forward or reverse)")
    if keep < 1:
        raise BackupError(f"--keep must be at least 1, got {keep}")
    if block_size < MIN_BLOCK or block_size > MAX_BLOCK or block_size & (block_size - 1):
        raise BackupError(f"block size {block_size} must be a power of two from 256KiB to 8MiB")
    if compression not in LEVELS:
        raise BackupError(f"unknown compression {compression!r} ({', '.join(LEVELS)})")
    if not disks:
        raise BackupError("at least one --disk is needed")
    names = [Path(d).name for d in disks]
    if len(set(names)) != len(names):
        raise BackupError("two disks have the same file name")
    for d in disks:
        if not Path(d).is_file():
            raise BackupError(f"disk file not found: {d}")
        if not os.access(d, os.R_OK):
            raise BackupError(f"disk file not readable: {d}")


def take_backup(repo_path: Path, job: str, machine: str, disks: list[Path], *,
                method: str = "forward", active_full: bool = False, keep: int = 14,
                block_size: int | None = None, compression: str = "optimal",
                at: datetime | None = None) -> BackupResult:
    """Take one restore point. Holds the machine's chain lock exclusively throughout.

    `block_size=None` keeps the chain's block size (1 MiB for a new chain), so a later
    backup needs no --block-size to match the first one.
    """
    validate(job, machine, disks, method, keep, block_size or DEFAULT_BLOCK, compression)
    when = at or now()
    repo = Repository(repo_path)
    repo.path.mkdir(parents=True, exist_ok=True)
    folder = repo.machine_dir(job, machine)
    with repo.lock(job, machine, exclusive=True):
        meta = repo.try_load(job, machine)
        if block_size is None:
            block_size = meta.block_size if meta is not None and meta.points else DEFAULT_BLOCK
        if meta is not None and meta.method.value != method:
            raise BackupError(f"{machine}: chain uses method {meta.method.value}, not {method}")
        if meta is not None and meta.points and when <= meta.points[-1].time:
            raise BackupError(f"{machine}: restore point time {when.isoformat()} is not after "
                              f"the latest point {meta.points[-1].time.isoformat()}")
        if meta is None:
            meta = MachineMeta(job, machine, block_size, Method(method), compression)
        new_chain = not meta.points or (active_full and method == Method.FORWARD.value)
        if not new_chain and meta.block_size != block_size:
            raise BackupError(f"{machine}: chain block size is {meta.block_size}, not "
                              f"{block_size}; start a new chain with --active-full")
        repo.sweep(meta if meta.points else None, job, machine)  # all checks passed
        meta.block_size, meta.compression = block_size, compression
        comp = Compressor(compression)
        pid = new_point_id()
        infos = [DiskInfo(Path(d).name, os.path.getsize(d)) for d in disks]
        with make_pool() as pool:
            if method == Method.REVERSE.value and not new_chain:
                point, read, written = _write_reverse(folder, meta, pid, when, disks, infos,
                                                      comp, pool)
            else:
                point, read, written = _write_forward(folder, meta, pid, when, disks, infos,
                                                      comp, pool,
                                                      Kind.FULL if new_chain else Kind.INCREMENTAL)
        if method == Method.REVERSE.value:
            old_full = meta.points[-1] if meta.points and not new_chain else None
            if old_full is not None:
                rb = point_file_name(machine, old_full.time, old_full.id, Kind.ROLLBACK)
                meta.points[-1] = RestorePoint(
                    old_full.id, old_full.time, Kind.ROLLBACK, rb, old_full.disks,
                    size=(folder / rb).stat().st_size, block_size=old_full.block_size)
        meta.points.append(point)
        try:
            repo.save(meta)
            removed = _retain(repo, meta, keep)
        finally:
            _sweep_committed(repo, job, machine)
    return BackupResult(point, read, written, removed)


def _sweep_committed(repo: Repository, job: str, machine: str) -> None:
    """The end of a backup, even a failed one: files the committed metadata does not
    name go now (a deleted chain's files whose unlink failed, a save's temp file), not
    at the next backup of this machine. Exclusive lock held; nothing is swept when the
    metadata cannot be read."""
    try:
        meta = repo.try_load(job, machine)
    except MetadataError:
        return
    if meta is not None and meta.points:
        repo.sweep(meta, job, machine)


def _scan_into(w: ContainerWriter, disks: list[Path], infos: list[DiskInfo], comp: Compressor,
               pool: ThreadPoolExecutor, previous: dict[str, dict[int, bytes]] | None,
               stats: ScanStats) -> None:
    """Scan each disk and store what changed against `previous` into `w`."""
    bs = w.block_size
    for path, info in zip(disks, infos, strict=True):
        w.set_disk(info.name, info.size)
        prev = (previous or {}).get(info.name, {})
        for blk in scan_image(Path(path), bs, comp, pool, prev, stats):
            if blk.flags == UNCHANGED:
                continue
            if blk.flags == FLAG_ZERO:
                if blk.index in prev:  # became zero: must shadow the older data
                    w.put(info.name, blk.index, blk.digest, blk.raw_len, FLAG_ZERO)
                continue
            w.put(info.name, blk.index, blk.digest, blk.raw_len, blk.flags, blk.payload)


def _new_point(meta: MachineMeta, pid: str, when: datetime, kind: Kind, file: str,
               infos: list[DiskInfo], size: int) -> RestorePoint:
    return RestorePoint(pid, when, kind, file, infos, size=size, block_size=meta.block_size)


def _info(meta: MachineMeta, pid: str, when: datetime, kind: Kind, file: str,
          infos: list[DiskInfo]) -> dict[str, Any]:
    """The point's record for its file's index (`ferry check --rebuild`)."""
    return point_record(meta, _new_point(meta, pid, when, kind, file, infos, 0))


def _write_forward(folder: Path, meta: MachineMeta, pid: str, when: datetime,
                   disks: list[Path], infos: list[DiskInfo], comp: Compressor,
                   pool: ThreadPoolExecutor, kind: Kind) -> _Written:
    """A new full, or an increment of the blocks whose digest differs from the latest
    point's."""
    previous = None
    if kind == Kind.INCREMENTAL:
        with PointView(folder, meta, meta.points[-1]) as view:
            previous = {d.name: view.digests(d.name) for d in infos}
    name = point_file_name(meta.machine, when, pid, kind)
    w = ContainerWriter(folder / name, kind, meta.block_size)
    stats = ScanStats()
    try:
        _scan_into(w, disks, infos, comp, pool, previous, stats)
        size = w.commit(state=pid, info=_info(meta, pid, when, kind, name, infos))
    except BaseException:
        w.abort()
        raise
    return _new_point(meta, pid, when, kind, name, infos, size), stats.read, w.written


def _write_reverse(folder: Path, meta: MachineMeta, pid: str, when: datetime,
                   disks: list[Path], infos: list[DiskInfo], comp: Compressor,
                   pool: ThreadPoolExecutor) -> _Written:
    """Inject changed blocks into the full; their old versions go to a new rollback."""
    full = meta.points[-1]
    bs = meta.block_size
    stats = ScanStats()
    rb_name = point_file_name(meta.machine, full.time, full.id, Kind.ROLLBACK)
    with Container(folder / full.file, state=full.id) as base, \
            VerifiedReader(folder, meta) as reader:
        def keep_old(disk: str, b: int, e: Entry) -> None:
            """The old version of a block goes to the rollback only once verified."""
            got = reader.get(base, e, disk, b)
            if got is not None:
                rb.put(disk, b, e.digest, got[1].raw, got[1].flags, got[0])

        rb = ContainerWriter(folder / rb_name, Kind.ROLLBACK, bs)
        fw = ContainerWriter(folder / full.file, Kind.FULL, bs, base=base)
        try:
            new_names = {i.name for i in infos}
            for kept in base.disks.values():  # keep the old state of disks that went away
                rb.set_disk(kept.name, kept.size)
                if kept.name not in new_names:
                    for b, e in kept.blocks.items():
                        keep_old(kept.name, b, e)
            for path, info in zip(disks, infos, strict=True):
                old = base.disks.get(info.name)
                old_blocks = old.blocks if old else {}
                nblocks = -(-info.size // bs)
                fw.set_disk(info.name, info.size)
                target = fw.disks[info.name].blocks
                for b, e in old_blocks.items():
                    if b < nblocks:
                        target[b] = e
                    elif old is not None:  # cut off by a shrink: the rollback keeps it
                        keep_old(info.name, b, e)
                prev = {b: e.digest for b, e in old_blocks.items()}
                for blk in scan_image(Path(path), bs, comp, pool, prev, stats):
                    if blk.flags == UNCHANGED or (blk.flags == FLAG_ZERO and blk.index not in prev):
                        continue
                    if old is not None and blk.index * bs < old.size:
                        was = old_blocks.get(blk.index)
                        if was is not None:
                            keep_old(info.name, blk.index, was)
                        else:
                            rb.put(info.name, blk.index, blk.digest, blk.raw_len, FLAG_ZERO)
                    if blk.flags == FLAG_ZERO:
                        target.pop(blk.index, None)
                    else:
                        fw.put(info.name, blk.index, blk.digest, blk.raw_len, blk.flags,
                               blk.payload)
            reader.check()  # a rotten old version: Failed, naming it (nothing committed)
            rb_point = RestorePoint(full.id, full.time, Kind.ROLLBACK, rb_name, full.disks,
                                    block_size=full.block_size)
            rb.commit(state=full.id, info=point_record(meta, rb_point))
            size = fw.commit(state=pid, info=_info(meta, pid, when, Kind.FULL, full.file, infos))
        except BaseException:
            rb.abort()
            fw.abort()
            raise
    written = rb.written + fw.written
    return _new_point(meta, pid, when, Kind.FULL, full.file, infos, size), stats.read, written


def _retain(repo: Repository, meta: MachineMeta, keep: int) -> list[str]:
    """Source job retention: whole chains (forward), merges (forever), rollbacks (reverse)."""
    removed: list[str] = []
    if meta.method == Method.FOREVER_FORWARD:
        while len(meta.points) > keep:
            removed.append(merge_oldest_increment(repo, meta).id)
    elif meta.method == Method.REVERSE:
        while len(meta.points) > keep:
            removed += [p.id for p in delete_points(repo, meta, {meta.points[0].id})]
    else:
        while True:
            chains = meta.chains()
            if len(chains) < 2 or sum(len(c) for c in chains[1:]) < keep:
                break
            removed += [p.id for p in delete_points(repo, meta, {p.id for p in chains[0]})]
    return removed
