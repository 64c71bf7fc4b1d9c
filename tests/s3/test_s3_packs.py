"""Packs: blocks go out ~4 MiB to an object, and buckets written before packs (one
object per block, version-1 manifests) stay readable and take increments."""

from __future__ import annotations

import struct
from datetime import timedelta

import xxhash
import zstandard
from copyjob.conftest import BS, T0, Source

from engine.copy.runner import run_job
from engine.health import check_repository
from engine.objstore.index import BlockIndex, row_of
from engine.objstore.manifest import (
    MAGIC,
    MAX_MANIFEST,
    Manifest,
    block_name,
    pack_loc,
    read_entry,
    split_loc,
)
from engine.objstore.open import open_repository
from engine.objstore.repo import EPOCH
from engine.repository.container import FLAG_ZERO, FLAG_ZSTD, Entry
from engine.restore import export_point

from .test_s3_copy import s3_job

JOB = "S3 copy"
MACHINE = "vm-forward"


def _v1(mf: Manifest) -> bytes:
    """A manifest as Ferry wrote it before packs (FERRYMF1: no locations)."""
    import json

    head = json.dumps({"state": mf.state, "block_size": mf.block_size,
                       "lock_until": mf.lock_until, "point": mf.point,
                       "disks": [{"name": d.name, "size": d.size, "count": len(d.blocks)}
                                 for d in mf.disks.values()]}).encode()
    parts = [MAGIC, struct.pack("<I", len(head)), head]
    for d in mf.disks.values():
        for b in sorted(d.blocks):
            e = d.blocks[b]
            parts.append(struct.pack("<QIIB16s", b, e.stored, e.raw, e.flags, e.digest))
    body = zstandard.ZstdCompressor(level=3).compress(b"".join(parts))
    return body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body))


def _to_old_layout(repo, key: str, meta) -> int:
    """Rewrite a bucket as the pre-pack layout: every block its own object, v1 manifests,
    no packs, a new index epoch (so caches are rebuilt from the bucket)."""
    b = repo.bucket
    for p in meta.points:
        mf = Manifest.decode(b.get(f"{key}/{p.file}", MAX_MANIFEST), p.file)
        for d in mf.disks.values():
            for e in d.blocks.values():
                if e.flags != FLAG_ZERO:
                    b.put(f"{key}/{block_name(e.digest, e.flags)}", read_entry(b, key, e),
                          checksum=True)
        b.put(f"{key}/{p.file}", _v1(mf))
    packs = [k for k, _ in b.list(f"{key}/packs/")]
    b.delete((k, None) for k in packs)
    b.put(f"{key}/{EPOCH}", b"before-packs")
    return len(packs)


def test_full_is_packed_and_a_bucket_from_before_packs_stays_usable(tmp_path, bucket):
    src = Source(tmp_path, methods=("forward",), size=24 * BS + 1000, seed=5)
    m = src.machines[MACHINE]
    url = f"s3://{bucket}/dr"
    spec = s3_job(tmp_path, src, url, keep=2, mode="immediate")
    src.backup(T0)
    res = run_job(spec, at=T0 + timedelta(hours=1))
    assert res.status == "Success", res.to_json()
    repo = open_repository(url)
    key = repo.machine_key(JOB, MACHINE)
    meta = repo.load(JOB, MACHINE)
    with repo.view(meta, meta.points[-1]) as view:
        entries = [loc.entry for d in view.disks for loc in view.blocks(d.name).values()]
    packs = {split_loc(e.offset)[0] for e in entries}
    assert 0 not in packs and len(packs) < len(entries) // 4, "blocks were not packed"
    assert not list(repo.bucket.list(f"{key}/blocks/"))

    assert _to_old_layout(repo, key, meta) == len(packs)
    for day in (1, 2):  # increments (and a merge, keep = 2) on the old layout
        src.backup(T0 + timedelta(days=day))
        res = run_job(spec, at=T0 + timedelta(days=day, hours=1))
        assert res.status == "Success", res.to_json()
    meta = repo.load(JOB, MACHINE)
    assert len(meta.points) == 2
    for p in meta.points:
        out = tmp_path / "x" / p.id
        export_point(url, JOB, MACHINE, p.id, out)
        assert (out / "disk0.img").read_bytes() == m.states[p.source_point]
    assert all(r.ok for r in check_repository(url, JOB, all_points=True))
    # the merged full still reads the old blocks/ objects; GC kept exactly what is named
    with repo.view(meta, meta.points[0]) as view:
        old = [loc.entry for d in view.disks for loc in view.blocks(d.name).values()
               if not split_loc(loc.entry.offset)[0]]
    assert old, "the merged full reads no block of the old layout"
    names = {k for k, _ in repo.bucket.list(f"{key}/blocks/")}
    assert {f"{key}/{block_name(e.digest, e.flags)}" for e in old} <= names


def test_index_keeps_pack_locations_and_unsigned_checksums(tmp_path):
    idx = BlockIndex(tmp_path / "i.sqlite")
    dg = bytes(range(16))
    e = Entry(pack_loc((1 << 63) - 5, 123456), 1000, 4096, FLAG_ZSTD, dg, (1 << 64) - 7)
    idx.add([row_of(e, 42)])
    hit = idx.lookup(dg)
    assert hit is not None and hit.entry(4096, dg) == e and hit.lock_until == 42
    assert idx.pack_lock((1 << 63) - 5) == 42
    idx.remove([], [(1 << 63) - 5])
    assert idx.lookup(dg) is None
