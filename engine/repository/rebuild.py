"""`ferry check --rebuild`: a machine's metadata rebuilt when both of its copies are damaged.

The metadata (.fbm) is kept twice (`metadata.write_meta`); a reader falls back
to the copy on its own. When a copy is damaged, a rebuild rewrites both from
the sound one. When both are gone, the chain is rebuilt from the backup files:
each file's newest state and the point record its index carries (format 2:
id, time, kind, disks, source point, chain key envelope; files of format 1 give
id, kind and disks from the index and the time from the file name). What only
the metadata knew is lost and said so: GFS flags assigned after a file was
written, and the run facts (last run, health check and compact slots).
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.model import DiskInfo, Kind, MachineMeta, Method, RestorePoint
from engine.repository.container import KIND_OF_CODE, Container, ContainerError
from engine.repository.fileformat import read_slots
from engine.repository.metadata import (
    MetadataError,
    copy_path,
    meta_from_dict,
    point_from_dict,
    read_one,
    write_meta,
)
from engine.repository.repository import BACKUP_SUFFIXES, Repository
from engine.repository.resolve import layer_points

log = logging.getLogger("ferry.rebuild")


def rebuild_repository(repo_path: Path | str, job: str | None = None,
                       machine: str | None = None) -> list[str]:
    """Rebuild what is damaged under `repo_path`; one line per machine touched."""
    repo = Repository(repo_path)
    out = []
    for j in [job] if job else repo.jobs():
        jdir = repo.path / j
        if not jdir.is_dir():
            continue
        for folder in sorted(p for p in jdir.iterdir()
                             if p.is_dir() and not p.name.startswith(".")):
            if machine and folder.name != machine:
                continue
            line = rebuild_machine(repo, j, folder.name)
            if line:
                out.append(line)
    return out


def rebuild_machine(repo: Repository, job: str, machine: str) -> str:
    """Repair one machine's metadata under its exclusive lock; "" when nothing was needed."""
    folder = repo.machine_dir(job, machine)
    path = repo.meta_path(job, machine)
    if not any(f.suffix in BACKUP_SUFFIXES for f in folder.iterdir()) and \
            not path.exists() and not copy_path(path).exists():
        return ""
    with repo.lock(job, machine, exclusive=True, wait=60):
        good: dict[str, MachineMeta] = {}
        for p in (path, copy_path(path)):
            try:
                good[p.name] = read_one(p)
            except MetadataError:
                pass
        if len(good) == 2:
            return ""
        if good:
            meta = next(iter(good.values()))
            write_meta(path, meta)
            return f"{job}/{machine}: metadata rewritten from its sound copy"
        meta, lost = from_files(folder, job, machine)
        write_meta(path, meta)
        log.warning("%s/%s: metadata rebuilt from %d backup file(s)", job, machine,
                    len(meta.points))
        return (f"{job}/{machine}: metadata rebuilt from {len(meta.points)} backup file(s); "
                f"{lost}")


def from_files(folder: Path, job: str, machine: str) -> tuple[MachineMeta, str]:
    """The chain the backup files describe, and what could not be recovered."""
    points: dict[str, RestorePoint] = {}
    head: dict[str, Any] = {}
    keys: dict[str, dict[str, Any]] = {}
    for f in sorted(folder.iterdir()):
        if f.suffix not in BACKUP_SUFFIXES or not f.is_file():
            continue
        got = _newest_state(f)
        if got is None:
            log.warning("%s: no readable state; left out of the rebuilt chain", f.name)
            continue
        c, info = got
        p = _point(f, c, info)
        if info.get("envelope") and p.key:
            keys[p.key] = info["envelope"]
        head = head or info
        old = points.get(p.id)
        if old is None or (old.kind != Kind.FULL and p.kind == Kind.FULL):
            points[p.id] = p  # a merge whose increment was not yet deleted: the full wins
    chain = sorted(points.values(), key=lambda p: p.time)
    method = head.get("method") or (
        "reverse" if any(p.kind == Kind.ROLLBACK for p in chain) else "forever-forward")
    block_size = next((p.block_size for p in chain if p.block_size), 0)
    meta = MachineMeta(job, machine, block_size, Method(method), head.get("compression", "auto"),
                       points=chain, keys=keys)
    meta.points = [p for p in chain if _resolves(meta, p)]
    return meta, "GFS flags assigned later and run facts are not in the backup files"


def _newest_state(path: Path) -> tuple[Container, dict[str, Any]] | None:
    try:
        with open(path, "rb") as f:
            slots = [s for s in read_slots(f) if s is not None]
    except OSError:
        return None
    for s in sorted(slots, key=lambda s: -s.generation):
        try:
            with Container(path, state=s.state) as c:
                return c, dict(c.info)
        except ContainerError:
            continue
    return None


def _point(path: Path, c: Container, info: dict[str, Any]) -> RestorePoint:
    rec = info.get("point")
    if isinstance(rec, dict) and rec.get("id") == c.state:
        try:
            p = point_from_dict(rec)
            p.file = path.name
            p.size = path.stat().st_size
            return p
        except (KeyError, TypeError, ValueError):
            pass
    stamp = path.stem.split("D", 1)[-1].rsplit("_", 1)[0]
    try:
        when = datetime.strptime(stamp, "%Y-%m-%dT%H%M%S")
    except ValueError:
        when = datetime.fromtimestamp(path.stat().st_mtime)
    return RestorePoint(c.state, when, KIND_OF_CODE.get(c.kind_code, Kind.FULL), path.name,
                        [DiskInfo(d.name, d.size) for d in c.disks.values()],
                        size=path.stat().st_size, block_size=c.block_size)


def _resolves(meta: MachineMeta, p: RestorePoint) -> bool:
    try:
        layer_points(meta, p)
        return True
    except LookupError:
        return False


__all__ = ["rebuild_repository", "rebuild_machine", "from_files", "meta_from_dict"]
