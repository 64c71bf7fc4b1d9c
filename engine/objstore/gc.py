"""Garbage collection of a machine's prefix, in an order a kill cannot break.

1. `chain.json` was already committed without the dropped points.
2. Every manifest is read; those `chain.json` does not name and whose lock has
   expired are deleted. The objects holding the blocks of every manifest that remains
   (named, locked, or refused by the server) are referenced: its packs, and for a
   packed block also its own `blocks/` object if a repair wrote one.
3. `index-epoch` is replaced: every block index cache becomes untrusted.
4. Unreferenced packs and blocks whose lock has expired are deleted (all versions);
   a pack goes only when no remaining manifest names any block in it.
5. The local cache drops them and takes the new epoch.

A kill between any two steps leaves every existing manifest's blocks in place, so
a reader never finds a manifest naming a missing block; the next run finishes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.objstore import locks
from engine.objstore.index import UNKNOWN, new_epoch
from engine.objstore.manifest import (
    MAX_MANIFEST,
    Manifest,
    ManifestError,
    block_name,
    object_name,
    parse_block_name,
    parse_pack_name,
    split_loc,
)
from engine.objstore.repo import CHAIN, EPOCH
from engine.repository.container import FLAG_ZERO

if TYPE_CHECKING:
    from engine.model import MachineMeta
    from engine.objstore.target import Machine

log = logging.getLogger("ferry.s3")


@dataclass
class GcResult:
    manifests: int = 0
    blocks: int = 0
    locked: int = 0  # garbage kept because its Object Lock has not expired
    next_due: str = ""  # when the earliest kept lock expires (ISO), "" = nothing kept


def collect(m: Machine, meta: MachineMeta) -> GcResult:
    res = GcResult()
    bucket, key = m.bucket, m.key
    versioned = bucket.lock_enabled()
    now = locks.wall_now()
    named = {p.file for p in meta.points}
    referenced: set[str] = set()  # object names, relative to the machine
    garbage: dict[str, set[str]] = {}
    soonest = None
    for name, _ in list(m.repo.keys(m.job, m.machine, "points")):
        try:
            mf = Manifest.decode(bucket.get(f"{key}/{name}", MAX_MANIFEST), name)
        except ManifestError:
            if name in named:
                raise
            garbage[name] = set()  # a torn or foreign object: nothing can use it
            continue
        until = locks.utc_from_iso(mf.lock_until)
        refs = {object_name(e) for d in mf.disks.values() for e in d.blocks.values()
                if e.flags != FLAG_ZERO}
        refs |= {block_name(e.digest, e.flags) for d in mf.disks.values()
                 for e in d.blocks.values() if split_loc(e.offset)[0]}  # repaired copies
        if name in named or (until is not None and until > now):
            if name not in named and until is not None:  # kept for its lock alone
                res.locked += 1
                soonest = until if soonest is None else min(soonest, until)
            referenced |= refs
        else:
            garbage[name] = refs
    refused = _delete(m, [f"{key}/{n}" for n in garbage], versioned)
    for name, refs in garbage.items():
        if f"{key}/{name}" in refused:  # still there: its blocks stay
            referenced |= refs
            res.locked += 1
    res.manifests = len(garbage) - len(refused)
    epoch = new_epoch()
    bucket.put(f"{key}/{EPOCH}", epoch.encode())  # before the first block goes
    doomed: list[tuple[str, bytes | None, int]] = []  # (key, digest of a block, pack id)
    listing = [*m.repo.keys(m.job, m.machine, "packs"), *m.repo.keys(m.job, m.machine, "blocks")]
    for name, _ in listing:
        parsed, pack = parse_block_name(name), parse_pack_name(name)
        if (parsed is None and pack is None) or name in referenced:
            continue
        if parsed is not None:
            hit = m.index.lookup(parsed[0])
            lock_s = hit.lock_until if hit is not None and hit.pack == 0 else UNKNOWN
        else:
            known = m.index.pack_lock(pack or 0)
            lock_s = UNKNOWN if known is None else known
        if lock_s == UNKNOWN and versioned:
            until = bucket.retention(f"{key}/{name}")
            lock_s = locks.to_epoch(until) if until else 0
        if lock_s > locks.to_epoch(now):
            res.locked += 1
            until = locks.from_epoch(lock_s)
            soonest = until if soonest is None else min(soonest, until)
            continue
        doomed.append((f"{key}/{name}", parsed[0] if parsed else None, pack or 0))
    refused = _delete(m, [k for k, _, _ in doomed], versioned)
    res.blocks = len(doomed) - len(refused)
    res.locked += len(refused)
    gone = [(d, p) for k, d, p in doomed if k not in refused]
    m.index.remove([d for d, _ in gone if d is not None], [p for _, p in gone if p])
    m.index.set_epoch(epoch)
    if versioned:  # old versions of chain.json pile up otherwise
        old = [(k, v) for k, v, latest in bucket.versions(f"{key}/{CHAIN}")
               if k == f"{key}/{CHAIN}" and not latest]
        bucket.delete(old)
    res.next_due = soonest.isoformat() if soonest else ""
    log.info("%s: gc deleted %d manifest(s), %d block(s); %d locked kept", key, res.manifests,
             res.blocks, res.locked)
    return res


def _delete(m: Machine, keys: list[str], versioned: bool) -> set[str]:
    """Delete objects (every version when the bucket keeps versions); the keys refused."""
    if not keys:
        return set()
    if not versioned:
        return set(m.bucket.delete((k, None) for k in keys))
    wanted = set(keys)
    items = [(k, v) for k, v, _ in m.bucket.versions(_common_prefix(keys)) if k in wanted]
    return set(m.bucket.delete(items))


def _common_prefix(keys: list[str]) -> str:
    a, b = min(keys), max(keys)
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]
