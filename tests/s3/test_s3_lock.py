"""S3 Object Lock on a real Ceph cluster: COMPLIANCE on every object, refused deletes,
lock generations, a bucket without Object Lock, retention that waits for the lock."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError
from copyjob.conftest import Source

from engine.cli import chain_json
from engine.copy.runner import run_job
from engine.objstore import locks
from engine.objstore.open import open_repository
from engine.restore import export_point

from .test_s3_copy import s3_job

# Point times near the wall clock: a lock is only set when it lies in the future.
NOW = datetime.now().replace(microsecond=0) - timedelta(hours=3)
JOB = "S3 copy"


def _objects(s3, bucket: str, sub: str) -> list[str]:
    r = s3.list_objects_v2(Bucket=bucket, Prefix="dr/", MaxKeys=1000)
    return [o["Key"] for o in r.get("Contents", []) if f"/{sub}/" in o["Key"]]


def _until(s3, bucket: str, key: str) -> datetime:
    r = s3.get_object_retention(Bucket=bucket, Key=key)["Retention"]
    assert r["Mode"] == "COMPLIANCE", (key, r)
    return r["RetainUntilDate"].astimezone(UTC)


def _copy(tmp_path, src: Source, url: str, when: datetime, days: int, keep: int = 7,
          extra: str = ""):
    src.backup(when)
    spec = s3_job(tmp_path, src, url, keep=keep, mode="immediate",
                  extra=f"{extra}\n[storage]\nimmutable_days = {days}\n")
    return run_job(spec, at=when + timedelta(minutes=30))


def test_every_object_compliance_locked_and_delete_refused(tmp_path, lock_bucket, s3):
    src = Source(tmp_path, methods=("forward",))
    url = f"s3://{lock_bucket}/dr"
    for day in range(2):
        res = _copy(tmp_path, src, url, NOW + timedelta(hours=day), days=2)
        assert res.status == "Success", (res.message, [t.message for t in res.tasks])
    repo = open_repository(url)
    meta = repo.load(JOB, "vm-forward")
    assert len(meta.points) == 2
    key = repo.machine_key(JOB, "vm-forward")
    need = {p.file: locks.point_lock(p.time, 2) for p in meta.points}
    manifests = _objects(s3, lock_bucket, "points")
    assert sorted(k.rsplit("/", 1)[1] for k in manifests) == sorted(f.split("/")[1] for f in need)
    for k in manifests:
        assert _until(s3, lock_bucket, k) >= need[k[len(key) + 1:]] - timedelta(seconds=1)
    # every object holding a block any point uses (its pack) is locked at least as long
    # as the newest point using it
    newest = max(need.values())
    blocks = _objects(s3, lock_bucket, "packs") + _objects(s3, lock_bucket, "blocks")
    assert blocks
    for k in blocks:
        assert _until(s3, lock_bucket, k) >= newest
    # the cluster refuses to delete a locked version (also with the version id)
    victim = blocks[0]
    version = s3.head_object(Bucket=lock_bucket, Key=victim)["VersionId"]
    with pytest.raises(ClientError) as err:
        s3.delete_object(Bucket=lock_bucket, Key=victim, VersionId=version)
    assert err.value.response["Error"]["Code"] == "AccessDenied"
    assert s3.head_object(Bucket=lock_bucket, Key=victim, VersionId=version)
    # `ferry chain --json` names each point's immutability
    data = chain_json(url, JOB, "vm-forward")
    points = data["chains"][0]["points"]
    assert [bool(p.get("immutable_until")) for p in points] == [True, True]
    for p in meta.points:
        out = tmp_path / "x" / p.id
        export_point(url, JOB, "vm-forward", p.id, out)
        assert (out / "disk0.img").read_bytes() == src.machines["vm-forward"].states[
            p.source_point]


def test_reused_blocks_extended_in_generations_not_per_run(tmp_path, lock_bucket, s3):
    """A block written for point 0 is locked for N days + one generation; points within
    that generation leave its lock alone; the first point needing more extends it by a
    whole generation again."""
    src = Source(tmp_path, methods=("forward",))
    url = f"s3://{lock_bucket}/dr"
    days = 1
    res = _copy(tmp_path, src, url, NOW, days)
    assert res.status == "Success", (res.message, [t.message for t in res.tasks])
    blocks = _objects(s3, lock_bucket, "packs") + _objects(s3, lock_bucket, "blocks")
    first = {k: _until(s3, lock_bucket, k) for k in blocks}
    want = locks.utc(NOW) + timedelta(days=days) + locks.GENERATION
    for k, until in first.items():
        assert abs(until - want) <= timedelta(seconds=2), (k, until, want)
    for day in (1, 3, 9):  # still inside the first generation: no block lock changes
        res = _copy(tmp_path, src, url, NOW + timedelta(days=day), days)
        assert res.status == "Success", (res.message, [t.message for t in res.tasks])
    assert {k: _until(s3, lock_bucket, k) for k in blocks} == first
    res = _copy(tmp_path, src, url, NOW + timedelta(days=12), days)  # needs more than 10+1
    assert res.status == "Success", (res.message, [t.message for t in res.tasks])
    later = locks.utc(NOW + timedelta(days=12)) + timedelta(days=days) + locks.GENERATION
    repo = open_repository(url)
    meta = repo.load(JOB, "vm-forward")
    key = repo.machine_key(JOB, "vm-forward")
    from engine.objstore.manifest import object_name

    with repo.view(meta, meta.points[-1]) as view:
        used = Counter(f"{key}/{object_name(loc.entry)}"
                       for d in view.disks for loc in view.blocks(d.name).values())
    reused = [k for k in blocks if k in used]  # objects (packs) the first run wrote
    assert sum(used[k] for k in reused) >= 3, "the latest point reads blocks the first wrote"
    for k in reused:
        assert abs(_until(s3, lock_bucket, k) - later) <= timedelta(seconds=2)


def test_bucket_without_object_lock_refused_nothing_written(tmp_path, bucket, s3):
    src = Source(tmp_path, methods=("forward",))
    res = _copy(tmp_path, src, f"s3://{bucket}/dr", NOW, days=3)
    assert res.status == "Failed"
    msg = res.tasks[0].message
    assert "Object Lock is not enabled" in msg and "\n" not in msg
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_retention_keeps_immutable_points_then_deletes_them(tmp_path, lock_bucket, s3):
    """keep = 2 points with immutable_days = 3: nothing leaves the chain while locked,
    the preview reason names the lock, and once the days passed the chain shrinks; the
    objects whose wall-clock lock still holds are kept by GC, not deleted."""
    src = Source(tmp_path, methods=("forever-forward",))
    url = f"s3://{lock_bucket}/dr"
    for day in range(4):
        res = _copy(tmp_path, src, url, NOW + timedelta(hours=day), days=3, keep=2)
        assert res.status == "Success", (res.message, [t.message for t in res.tasks])
        assert not [a for a in res.retention if a["action"] in ("merge", "delete-chain")]
    repo = open_repository(url)
    assert len(repo.load(JOB, "vm-forever-forward").points) == 4
    from engine.retention import points_from_chain
    from engine.retention_why import reasons

    meta = repo.load(JOB, "vm-forever-forward")
    spec = s3_job(tmp_path, src, url, keep=2, extra="\n[storage]\nimmutable_days = 3\n")
    why = reasons(points_from_chain(meta.points), spec.retention, NOW + timedelta(hours=4))
    until = (meta.points[0].time + timedelta(days=3)).date().isoformat()
    assert why[meta.points[0].id] == f"immutable until {until}"
    # a week later (by the run's clock): no merge ever (an immutable chain is forward
    # incremental); the run's increment becomes a periodic synthetic full (one new
    # manifest naming the existing blocks) and the next run deletes the old chain whole,
    # its immutability passed
    res = _copy(tmp_path, src, url, NOW + timedelta(days=7), days=3, keep=2)
    assert res.status == "Success", (res.message, [t.message for t in res.tasks])
    assert [a["action"] for a in res.retention] == ["synthetic-full"]
    res = _copy(tmp_path, src, url, NOW + timedelta(days=7, hours=1), days=3, keep=2)
    assert res.status == "Success", (res.message, [t.message for t in res.tasks])
    assert [a["action"] for a in res.retention if a["action"] != "gc"] == ["delete-chain"]
    meta = repo.load(JOB, "vm-forever-forward")
    assert [p.kind.value for p in meta.points] == ["full", "incremental"]
    gc = [a for a in res.retention if a["action"] == "gc"]
    assert not gc or "locked" in gc[0]["detail"]
    # the manifests of the merged-away points are still there, locked, until the wall
    # clock passes their lock
    assert len(_objects(s3, lock_bucket, "points")) >= 5
    for p in meta.points:
        out = tmp_path / "y" / p.id
        export_point(url, JOB, "vm-forever-forward", p.id, out)
        assert (out / "disk0.img").read_bytes() == src.machines["vm-forever-forward"].states[
            p.source_point]


def test_a_repaired_blocks_own_object_is_held_with_the_pack_it_stands_in_for(
        tmp_path, lock_bucket, s3):
    """A repair writes a damaged block again as its own `blocks/` object, which every
    reader of the damaged pack's range falls back to. Holding an entry that names the
    pack must hold that object as well: it is what the reader really reads."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.objstore.generations import extend_locks
    from engine.objstore.manifest import block_name, object_name, split_loc
    from engine.objstore.target import Machine

    src = Source(tmp_path, methods=("forward",))
    url = f"s3://{lock_bucket}/dr"
    spec = s3_job(tmp_path, src, url, mode="immediate",
                  extra='[storage]\nimmutable_days = 1\nhealth_check = "daily 05:00"\n'
                  '[transport]\nretries = 0\n')
    src.backup(NOW)
    assert run_job(spec, at=NOW + timedelta(minutes=30)).status == "Success"
    repo = open_repository(url)
    key = repo.machine_key(JOB, "vm-forward")
    meta = repo.load(JOB, "vm-forward")
    with repo.view(meta, meta.points[-1]) as view:
        packed = next(loc.entry for d in view.disks for loc in view.blocks(d.name).values()
                      if split_loc(loc.entry.offset)[0])
    pack_key = f"{key}/{object_name(packed)}"
    obj = s3.get_object(Bucket=lock_bucket, Key=pack_key)
    body = bytearray(obj["Body"].read())
    body[split_loc(packed.offset)[1] + packed.stored // 2] ^= 0x40  # a new, damaged version
    s3.put_object(Bucket=lock_bucket, Key=pack_key, Body=bytes(body), Metadata=obj["Metadata"])
    # a 05:00 slot lies in any day and a half: the next run checks, then repairs
    src.backup(NOW + timedelta(days=1), mutate=0)
    run = run_job(spec, at=NOW + timedelta(days=1, hours=6))
    assert run.status in ("Success", "Warning") and "corrupt" in run.tasks[0].message, \
        [t.message for t in run.tasks]
    own_key = f"{key}/{block_name(packed.digest, packed.flags)}"
    before = _until(s3, lock_bucket, own_key)
    required = locks.utc(NOW + timedelta(days=20))
    m = Machine(repo, JOB, "vm-forward")
    try:
        m.sync(create=False)
        assert m.index.lookup(packed.digest).pack == 0  # the repair's object is the cached one
        with ThreadPoolExecutor(2) as pool:
            assert extend_locks(m, {packed.digest: packed}, required, pool) == 2
    finally:
        m.close()
    want = required + locks.GENERATION
    assert before < required
    for k in (pack_key, own_key):
        assert abs(_until(s3, lock_bucket, k) - want) <= timedelta(seconds=2), k
