"""Retention on object storage: the same rules, carried out as manifest operations.

A forever-forward merge, a GFS synthetic full and a compact never copy or
rewrite block data: they write one new manifest (blocks named by digest are
shared), lock it and extend the locks of its blocks where a generation ran out,
then commit `chain.json`. Deleted points only leave `chain.json`; the garbage
collector (`gc.py`) then removes manifests and blocks nothing references.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.copy.retain import ChainOps, apply_retention
from engine.model import Kind, MachineMeta, RestorePoint, RetentionPolicy
from engine.objstore import locks
from engine.objstore.gc import collect
from engine.objstore.generations import extend_locks, newest_reader
from engine.objstore.manifest import Manifest, ManifestLayer, manifest_name
from engine.repository.container import FLAG_ZERO, DiskIndex

if TYPE_CHECKING:
    from engine.objstore.repo import S3Repository
    from engine.objstore.target import Machine


def apply_s3_retention(m: Machine, request: dict[str, Any], days: int,
                       pool: ThreadPoolExecutor) -> list[dict[str, Any]]:
    """Rules, then garbage collection when something left the chain (or is still due)."""
    days = max(days, int((request.get("policy") or {}).get("immutable_days") or 0))
    def put_manifest(meta: MachineMeta, point: RestorePoint, disks: dict[str, DiskIndex],
                     bs: int) -> str:
        """A new full layer for `point`, locked as long as the newest point reading it."""
        index = next(i for i, p in enumerate(meta.points) if p.id == point.id)
        required = locks.point_lock(newest_reader(meta, index), days)
        until = locks.effective(required)
        reused = {e.digest: e for d in disks.values() for e in d.blocks.values()
                  if e.flags != FLAG_ZERO}
        extend_locks(m, reused, required, pool)
        name = manifest_name(point.id)
        mf = Manifest(point.id, bs, disks, until.isoformat() if until else "",
                      {"id": point.id, "time": point.time.isoformat(), "kind": Kind.FULL.value})
        m.bucket.put(f"{m.key}/{name}", mf.encode(), lock_until=until)
        if until is not None:
            locks.lock_facts(meta)[point.id] = until.isoformat()
        return name

    def merge(repo: S3Repository, meta: MachineMeta, at: int) -> None:
        full, inc = meta.points[at - 1], meta.points[at]
        if full.kind != Kind.FULL or inc.kind != Kind.INCREMENTAL:
            raise ValueError("merge needs a full followed by an increment")
        base = ManifestLayer(m.bucket, m.key, full.file, full.id)
        delta = ManifestLayer(m.bucket, m.key, inc.file, inc.id)
        bs = base.block_size
        disks: dict[str, DiskIndex] = {}
        for name, d in delta.disks.items():
            nblocks = -(-d.size // bs)
            old = base.disks.get(name)
            blocks = {b: e for b, e in (old.blocks.items() if old else ())
                      if b < nblocks and e.flags != FLAG_ZERO}
            for b, e in d.blocks.items():
                if e.flags == FLAG_ZERO:
                    blocks.pop(b, None)
                else:
                    blocks[b] = e
            disks[name] = DiskIndex(name, d.size, blocks)
        file = put_manifest(meta, inc, disks, bs)
        merged = replace(inc, kind=Kind.FULL, file=file, size=_size(disks),
                         gfs=sorted(set(full.gfs) | set(inc.gfs)),
                         gfs_dates={**full.gfs_dates, **inc.gfs_dates})
        meta.points = meta.points[:at - 1] + [merged] + meta.points[at + 1:]
        _forget(meta, {full.id} - {merged.id})
        meta.facts["gc_pending"] = True
        repo.save(meta)

    def delete(repo: S3Repository, meta: MachineMeta, ids: set[str]) -> None:
        meta.points = [p for p in meta.points if p.id not in ids]
        _forget(meta, ids)
        meta.facts["gc_pending"] = True
        repo.save(meta)

    def synthesize(repo: S3Repository, meta: MachineMeta, point: RestorePoint) -> RestorePoint:
        with repo.view(meta, point) as view:
            disks = {d.name: DiskIndex(d.name, d.size, {b: loc.entry for b, loc in
                                                       view.blocks(d.name).items()})
                     for d in view.disks}
            bs = view.block_size
        file = put_manifest(meta, point, disks, bs)
        new = replace(point, kind=Kind.FULL, file=file, size=_size(disks))
        meta.points = [new if p.id == point.id else p for p in meta.points]
        meta.facts["gc_pending"] = True
        repo.save(meta)
        return new

    def compact(repo: S3Repository, meta: MachineMeta, policy: RetentionPolicy, slot: str,
                now: datetime) -> list[dict[str, Any]]:
        """Manifests have no dead space to reclaim: a compact slot has nothing to do."""
        return []

    ops = ChainOps(merge, delete, synthesize, compact)
    done = apply_retention(m.repo, m.job, m.machine, request, ops)
    meta = m.repo.try_load(m.job, m.machine)
    if meta is not None and meta.facts.get("gc_pending"):
        res = collect(m, meta)
        detail = f"{res.manifests} manifest(s), {res.blocks} block(s) deleted"
        if res.locked:
            detail += f"; {res.locked} locked object(s) kept until {res.next_due}"
        else:
            meta.facts.pop("gc_pending", None)
        meta.facts["gc_next"] = res.next_due
        m.repo.save(meta)
        if res.manifests or res.blocks:
            done.append({"action": "gc", "point": "", "detail": detail})
    return done


def _size(disks: dict[str, DiskIndex]) -> int:
    return sum(e.stored for d in disks.values() for e in d.blocks.values())


def _forget(meta: MachineMeta, ids: set[str]) -> None:
    imm = meta.facts.get("immutable_until")
    if isinstance(imm, dict):
        for i in ids:
            imm.pop(i, None)
