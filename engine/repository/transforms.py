"""Chain transforms done in place under the exclusive chain lock.

Each transform writes new data first (a new file, or a new state in the other
header slot of the full), then commits by replacing the metadata file, then
deletes what is no longer named. A crash at any step leaves the previous
metadata valid, and whatever it names still readable.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.model import Kind, MachineMeta, RestorePoint
from engine.repository.container import FLAG_ZERO, Container, ContainerWriter
from engine.repository.damage import VerifiedReader
from engine.repository.repository import Repository, point_file_name
from engine.repository.resolve import PointView


def merge_oldest_increment(repo: Repository, meta: MachineMeta, at: int = 1) -> RestorePoint:
    """Inject the increment at index `at` into the full right before it.

    The full then represents that increment's point (its id and time); the
    increment's file is deleted. Returns the merged-away increment.
    """
    full, inc = meta.points[at - 1], meta.points[at]
    if full.kind != Kind.FULL or inc.kind != Kind.INCREMENTAL:
        raise ValueError("merge needs a full followed by an increment")
    folder = repo.machine_dir(meta.job, meta.machine)
    merged = replace(inc, kind=Kind.FULL, file=full.file,
                     gfs=sorted(set(full.gfs) | set(inc.gfs)),
                     gfs_dates={**full.gfs_dates, **inc.gfs_dates},
                     gfs_assigned={**full.gfs_assigned, **inc.gfs_assigned},
                     gfs_until={**full.gfs_until, **inc.gfs_until})
    with Container(folder / full.file, state=full.id) as base, \
            Container(folder / inc.file, state=inc.id) as delta, \
            VerifiedReader(folder, meta) as reader:
        w = ContainerWriter(folder / full.file, Kind.FULL, base.block_size, base=base)
        try:
            bs = base.block_size
            for name, d in delta.disks.items():
                nblocks = -(-d.size // bs)
                w.set_disk(name, d.size)
                old = base.disks.get(name)
                if old is not None:
                    for b, e in old.blocks.items():
                        if b < nblocks and e.flags != FLAG_ZERO:
                            w.put_entry(name, b, e)
                target = w.disks[name].blocks
                for b, e in d.blocks.items():
                    if e.flags == FLAG_ZERO:
                        target.pop(b, None)
                        continue
                    got = reader.get(delta, e, name, b, inc.key)
                    if got is not None:  # verified: only then it enters the full
                        payload, src = got
                        w.put(name, b, e.digest, src.raw, src.flags, payload)
            reader.check()  # a damaged block: nothing is committed, the chain stays
            _kept_verified(w)
            size = w.commit(state=inc.id, info=point_info(meta, merged))
        except BaseException:
            w.abort()
            raise
    merged = replace(merged, size=size)
    meta.points = meta.points[:at - 1] + [merged] + meta.points[at + 1:]
    repo.save(meta)
    (folder / inc.file).unlink(missing_ok=True)
    return inc


def delete_points(repo: Repository, meta: MachineMeta, ids: set[str]) -> list[RestorePoint]:
    """Drop points (whole chains, or the oldest rollback) and then their files."""
    gone = [p for p in meta.points if p.id in ids]
    meta.points = [p for p in meta.points if p.id not in ids]
    used = {p.key for p in meta.points}
    meta.keys = {k: env for k, env in meta.keys.items() if k in used}  # its chain is gone
    repo.save(meta)
    folder = repo.machine_dir(meta.job, meta.machine)
    still = {p.file for p in meta.points}
    for p in gone:
        if p.file not in still:
            (folder / p.file).unlink(missing_ok=True)
    return gone


def synthesize_full(repo: Repository, meta: MachineMeta, point: RestorePoint,
                    *, replace_point: bool = True) -> RestorePoint:
    """Write a new full holding `point`'s state, copied block by block from the chain.

    Used for GFS synthetic fulls and for compacting a fragmented full. With
    `replace_point`, the point now lives in the new file (the old file is
    deleted when no point names it any more).
    """
    folder = repo.machine_dir(meta.job, meta.machine)
    name = point_file_name(meta.machine, point.time, point.id, Kind.FULL)
    if name == point.file:
        name = name.replace(".fbk", "c.fbk")
    with PointView(folder, meta, point) as view, VerifiedReader(folder, meta) as reader:
        w = ContainerWriter(folder / name, Kind.FULL, view.block_size)
        try:
            for disk in view.disks:
                w.set_disk(disk.name, disk.size)
                for b, loc in sorted(view.blocks(disk.name).items()):
                    e = loc.entry
                    layer = view.layers[loc.layer]
                    if not isinstance(layer, Container):  # a folder's view: files only
                        raise TypeError(f"{layer.path.name}: not a backup file")
                    got = reader.get(layer, e, disk.name, b, view.layer_keys[loc.layer])
                    if got is not None:
                        payload, src = got
                        w.put(disk.name, b, e.digest, src.raw, src.flags, payload)
            reader.check()  # rot never spreads into a new (long-lived) full
            new = replace(point, kind=Kind.FULL, file=name)
            size = w.commit(state=point.id, info=point_info(meta, new))
        except BaseException:
            w.abort()
            raise
    new = replace(point, kind=Kind.FULL, file=name, size=size)
    if replace_point:
        old_file = point.file
        meta.points = [new if p.id == point.id else p for p in meta.points]
        repo.save(meta)
        if old_file not in {p.file for p in meta.points}:
            Path(folder / old_file).unlink(missing_ok=True)
    return new


def _kept_verified(w: ContainerWriter) -> None:
    """A dedup hit on a rotten stored copy was refused (the fresh payload was stored)."""
    if w.rejected:
        import logging

        logging.getLogger("ferry.integrity").warning(
            "%s: %d damaged stored cop(ies) replaced by verified ones", w.path.name,
            len(w.rejected))


def point_info(meta: MachineMeta, p: RestorePoint) -> dict[str, Any]:
    """The point's record kept in its file's index, so metadata can be rebuilt from files."""
    from engine.repository.metadata import point_record

    return point_record(meta, p)
