"""Lock generations: every object a point reads stays locked as long as the point.

An increment reads its own manifest and blocks, and also the manifests and blocks
of the points before it back to its full. So when a point needing a lock until R is
committed, each of those objects locked for less than R is extended to R plus one
generation (`locks.GENERATION`); an object already locked past R costs nothing. The
block index cache remembers each block's lock and `chain.json` each manifest's
(`facts.immutable_until`), so the check is local and a block unchanged for months
costs one retention request per generation, not one per run.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING

from engine.model import Kind, MachineMeta, RestorePoint
from engine.objstore import locks
from engine.objstore.index import UNKNOWN
from engine.objstore.manifest import split_loc
from engine.objstore.store import S3Error
from engine.repository.container import FLAG_ZERO, Entry
from engine.repository.resolve import layer_points

if TYPE_CHECKING:
    from engine.objstore.store import Bucket
    from engine.objstore.target import Machine

log = logging.getLogger("ferry.s3")


def raise_lock(bucket: Bucket, key: str, until: datetime, required: datetime) -> datetime:
    """Set the COMPLIANCE lock of `key` to `until`; when the cluster refuses (it never
    shortens one), a lock already reaching `required` is fine. The lock it now has."""
    try:
        bucket.extend(key, until)
        return until
    except S3Error:
        current = bucket.retention(key)
        if current is not None and current >= required:
            return current
        raise


def extend_locks(m: Machine, entries: dict[bytes, Entry], required: datetime | None,
                 pool: ThreadPoolExecutor) -> int:
    """Extend (by a generation) the lock of each object holding a block of `entries`
    (digest -> where a manifest names it) locked for less than `required`: one request
    per pack, not per block. Returns the number of objects extended."""
    until = locks.block_lock(required)
    if until is None or required is None or not entries:
        return 0
    need = locks.to_epoch(required)
    todo: dict[str, tuple[list[Entry], bool]] = {}  # object key -> its entries, lock unknown

    def want(e: Entry, lock_s: int) -> None:
        if lock_s == UNKNOWN or lock_s < need:
            key = m.object_key(e)
            es, unknown = todo.get(key, ([], False))
            es.append(e)
            todo[key] = (es, unknown or lock_s == UNKNOWN)

    for dg, e in entries.items():
        hit = m.index.lookup(dg)
        if hit is None:
            want(e, UNKNOWN)
            continue
        own = hit.entry(e.raw, dg)
        same = own.offset == e.offset and hit.flags == e.flags
        want(e, hit.lock_until if same else UNKNOWN)  # the cache's lock is of its object
        if not same and hit.pack == 0 and split_loc(e.offset)[0]:
            # a repair wrote the block's own object: a reader of this packed entry falls
            # back to it when the pack's copy is damaged, so it must stay as long
            want(own, hit.lock_until)

    def one(item: tuple[str, tuple[list[Entry], bool]]) -> tuple[int, list[Entry]] | None:
        key, (es, unknown) = item
        if unknown:
            current = m.bucket.retention(key)
            if current is not None and locks.to_epoch(current) >= need:
                return locks.to_epoch(current), es
        return locks.to_epoch(raise_lock(m.bucket, key, until, required)), es

    done = [r for r in pool.map(one, todo.items()) if r]
    m.index.set_locks((lock_s, e) for lock_s, es in done for e in es)
    return len(done)


def hold_chain(m: Machine, meta: MachineMeta, point: RestorePoint, required: datetime | None,
               pool: ThreadPoolExecutor) -> int:
    """Lock every manifest and block `point` reads until at least `required` (manifests
    first recorded in `meta.facts`, saved by the caller's commit). Extensions made."""
    until = locks.block_lock(required)
    if until is None or required is None:
        return 0
    imm = locks.lock_facts(meta)
    n = 0
    for p in layer_points(meta, point):
        have = locks.utc_from_iso(str(imm.get(p.id) or ""))
        if have is None or have < required:
            got = raise_lock(m.bucket, f"{m.key}/{p.file}", until, required)
            imm[p.id] = got.isoformat()
            n += 1
    with m.repo.view(meta, point) as view:
        used = {loc.entry.digest: loc.entry for d in view.disks
                for loc in view.blocks(d.name).values() if loc.entry.flags != FLAG_ZERO}
    n += extend_locks(m, used, required, pool)
    if n:
        log.info("%s: %d lock(s) extended to %s for point %s", m.key, n, until.isoformat(),
                 point.id)
    return n


def newest_reader(meta: MachineMeta, index: int) -> datetime:
    """The time of the newest point reading the layer of `meta.points[index]` (a forward
    chain: itself and the increments after it, up to the next full)."""
    t = meta.points[index].time
    for p in meta.points[index + 1:]:
        if p.kind == Kind.FULL:
            break
        t = max(t, p.time)
    return t
