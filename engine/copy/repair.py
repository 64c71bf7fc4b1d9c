"""The repair exchange: damaged stored blocks of the target re-fetched from the source.

A damaged block (one that failed its check in a health check, `ferry check`, a
merge, a synthesis or a compact, recorded in `facts["damaged"]`, see
`engine.repository.damage`) is looked up in the source chain by its digest (keyed
for encrypted chains), read and verified there, sealed again for encrypted
chains, and sent; the target checks each frame against its own record and
rewrites the damaged file in place: a new state (same point id) in the file's
other header slot whose entries use the fresh payload, committed by the slot
write (the metadata names the point, not the generation). Blocks the source no
longer has stay recorded: the point shows as damaged and the task is Failed.

Frames: source REPAIR {"records": [...]} -> BLOCK frames (disk field 0, block
field = index into records) -> COMMIT; target REPAIR {"fixed": n, "left": [...]}.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from engine.blockio import decompressor, digest
from engine.copy import transport as t
from engine.copy.payloads import RepairAnswer
from engine.keys import OVERHEAD, ChainKey, KeyRing
from engine.model import MachineMeta
from engine.repository.container import (
    FLAG_SEALED,
    FLAG_ZERO,
    KIND_OF_CODE,
    Container,
    ContainerWriter,
    Entry,
    decode_block,
    stored_problem,
)
from engine.repository.damage import clear_records, damaged_records
from engine.repository.locks import COPY_LOCK_WAIT
from engine.repository.metadata import point_record
from engine.repository.repository import Repository
from engine.repository.resolve import Located, PointView

log = logging.getLogger("ferry.repair")
PER_EXCHANGE = 256  # records per exchange: bounds what the target holds in memory
MAX_EXCHANGE_BYTES = 512 << 20


# --------------------------------------------------------------------------- source side

def source_repair(end: t.Endpoint, folder: Path, src_meta: MachineMeta, target_meta: dict[str, Any],
                  records: list[dict[str, Any]], keys: KeyRing
                  ) -> tuple[int, list[dict[str, Any]]]:
    """Send verified source copies of the target's damaged blocks; (fixed, still damaged)."""
    fixed, left = 0, []
    for start in range(0, len(records), PER_EXCHANGE):
        n, rest = _exchange(end, folder, src_meta, target_meta, records[start:start + PER_EXCHANGE],
                            keys)
        fixed += n
        left += rest
    return fixed, left


def _exchange(end: t.Endpoint, folder: Path, src_meta: MachineMeta, target_meta: dict[str, Any],
              records: list[dict[str, Any]], keys: KeyRing) -> tuple[int, list[dict[str, Any]]]:
    file_key = {p["file"]: p.get("key", "") for p in target_meta.get("points", [])}
    want: dict[tuple[str, bytes], list[int]] = {}
    for i, r in enumerate(records):
        want.setdefault((file_key.get(r["file"], ""), bytes.fromhex(r["digest"])), []).append(i)
    chain_keys: dict[str, ChainKey | None] = {"": None}
    for kid in {k for k, _ in want if k}:
        chain_keys[kid] = keys.open(kid, target_meta.get("keys", {}).get(kid))
    end.send_json(t.REPAIR, {"records": records})
    for p in reversed(src_meta.points):  # the newest source points first
        if not want:
            break
        try:
            view = PointView(folder, src_meta, p)
        except Exception:  # noqa: BLE001 - a source point that does not open has no copies
            continue
        with view:
            for d in view.disks:
                for loc in view.blocks(d.name).values():
                    e = loc.entry
                    for kid, ck in chain_keys.items():
                        dg = ck.digest(e.digest, e.raw) if ck is not None else e.digest
                        idx = want.get((kid, dg))
                        if idx is None:
                            continue
                        frames = _frames(view, loc, ck, dg, idx, records)
                        if frames is None:
                            continue  # rotten in the source too: maybe another copy
                        del want[(kid, dg)]
                        for f in frames:
                            end.send(f)
    end.send(t.encode(t.COMMIT, b""))
    answer = RepairAnswer.parse(end.expect(t.REPAIR).json())
    return answer.fixed, answer.left


def _frames(view: PointView, loc: Located, ck: ChainKey | None, dg: bytes, idx: list[int],
            records: list[dict[str, Any]]) -> list[bytes] | None:
    """BLOCK frames carrying a verified copy of one source block (None: it is rotten too)."""
    e = loc.entry
    payload = view.read_stored(loc)
    try:
        data = decode_block(payload, e, decompressor())
    except Exception:  # noqa: BLE001 - zstd errors: a rotten source copy
        return None
    if digest(data) != e.digest:
        return None
    out = []
    for i in idx:
        if records[i].get("raw") != e.raw:
            continue
        if ck is not None:
            frame, room = t.block_frame(0, i, e.raw, e.flags | FLAG_SEALED, dg,
                                        len(payload) + OVERHEAD)
            ck.seal_into(room, payload, dg, e.raw, e.flags)
            out.append(bytes(frame))
        else:
            out.append(t.encode_block(0, i, e.raw, e.flags, e.digest, payload))
    return out


# --------------------------------------------------------------------------- target side

def target_repair(repo: Repository, job: str, machine: str, end: t.Endpoint,
                  request: dict[str, Any]) -> dict[str, Any]:
    """Receive the source's copies of recorded damaged blocks and rewrite their files."""
    records = request.get("records")
    if not isinstance(records, list) or len(records) > PER_EXCHANGE:
        raise t.StreamError("REPAIR: bad record list")
    meta = repo.load(job, machine)
    known = {(r["file"], r["disk"], r["block"], r["digest"]): r for r in damaged_records(meta)}
    bs = meta.block_size
    got: dict[int, tuple[int, int, bytes]] = {}
    total = 0
    while True:
        f = end.recv()
        if f.type == t.COMMIT:
            break
        if f.type != t.BLOCK:
            raise t.StreamError(f"REPAIR: unexpected frame {t.NAMES.get(f.type)}")
        _, i, raw, flags, dg, payload = t.decode_block(f.payload)
        if i >= len(records) or not isinstance(records[i], dict):
            raise t.StreamError("REPAIR: block for no record")
        r = records[i]
        key = (r.get("file"), r.get("disk"), r.get("block"), r.get("digest"))
        if key not in known or dg.hex() != r.get("digest") or raw != known[key]["raw"] \
                or raw > bs or len(payload) > bs + OVERHEAD + 64:
            raise t.StreamError("REPAIR: a block that matches no damage record")
        total += len(payload)
        if total > MAX_EXCHANGE_BYTES:
            raise t.StreamError("REPAIR: exchange too large")
        stored = bytes(payload)
        if not flags & FLAG_SEALED and stored_problem(Entry(0, len(stored), raw, flags, dg),
                                                      stored):
            log.warning("%s/%s: a repair copy failed its digest; not used", job, machine)
            continue
        got[i] = (flags, raw, stored)
    with repo.lock(job, machine, exclusive=True, wait=COPY_LOCK_WAIT):
        meta = repo.load(job, machine)
        fixed = _rewrite(repo, meta, [(records[i], v) for i, v in got.items()])
        clear_records(meta, fixed)
        repo.save(meta)
        left = damaged_records(meta)
    log.info("%s/%s: %d damaged block(s) repaired from the source, %d left", job, machine,
             len(fixed), len(left))
    return {"fixed": len(fixed), "left": left}


def _rewrite(repo: Repository, meta: MachineMeta,
             blocks: list[tuple[dict[str, Any], tuple[int, int, bytes]]]) -> set[tuple[str, str, int]]:
    """Each damaged file rewritten in place with its fresh payloads; the (file, disk,
    block)s now sound. Updates the points' sizes in `meta` (the caller saves)."""
    folder = repo.machine_dir(meta.job, meta.machine)
    by_file: dict[str, list[tuple[dict[str, Any], tuple[int, int, bytes]]]] = {}
    for r, v in blocks:
        by_file.setdefault(r["file"], []).append((r, v))
    fixed: set[tuple[str, str, int]] = set()
    for name, items in by_file.items():
        p = next((p for p in meta.points if p.file == name), None)
        if p is None:
            continue
        with Container(folder / name, state=p.id) as base:
            w = ContainerWriter(folder / name, KIND_OF_CODE[base.kind_code], base.block_size,
                                base=base)
            try:
                for d in base.disks.values():
                    w.set_disk(d.name, d.size)
                    for b, e in d.blocks.items():
                        w.put_entry(d.name, b, e)
                done = []
                for r, (flags, raw, payload) in items:
                    disk = base.disks.get(r["disk"])
                    old = disk.blocks.get(int(r["block"])) if disk else None
                    if old is None or old.flags == FLAG_ZERO or old.digest.hex() != r["digest"]:
                        done.append((name, r["disk"], r["block"]))  # no longer in this state
                        continue
                    if base.read_verified(old)[1]:
                        w.reject(old)
                    w.put(r["disk"], int(r["block"]), old.digest, raw, flags, payload)
                    done.append((name, r["disk"], r["block"]))
                p.size = w.commit(state=p.id, info=point_record(meta, p))
            except BaseException:
                w.abort()
                raise
        fixed.update(done)
    return fixed
