"""Encrypted copies to S3 (objects hold ciphertext only) and the health check that reads
objects back, names the damaged ones and has the next run repair them from the source."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from copyjob.conftest import BS, Source
from copyjob.enc_helpers import PW_ENV, leaks, ring, samples_of, set_pw

from engine.cli import chain_json
from engine.copy.runner import run_job
from engine.health import check_repository
from engine.keys import WrongPassword
from engine.objstore.manifest import object_name, split_loc
from engine.objstore.open import open_repository
from engine.restore import export_point

from .test_s3_copy import s3_job

T0 = datetime(2026, 11, 2, 22, 0)
JOB = "S3 copy"


def _all_objects(s3, bucket: str) -> dict[str, bytes]:
    r = s3.list_objects_v2(Bucket=bucket, MaxKeys=1000)
    return {o["Key"]: s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            for o in r.get("Contents", [])}


def test_encrypted_copy_stores_ciphertext_only(tmp_path, bucket, s3, monkeypatch):
    set_pw(monkeypatch)
    src = Source(tmp_path, methods=("forward", "forever-forward"), size=6 * BS + 1000)
    url = f"s3://{bucket}/dr"
    storage = f'[storage]\ncompression = "none"\nencryption = true\npassword_env = "{PW_ENV}"\n'
    for day in range(3):
        src.backup(T0 + timedelta(days=day))
        spec = s3_job(tmp_path, src, url, keep=2, mode="immediate", extra=storage)
        res = run_job(spec, at=T0 + timedelta(days=day, hours=1))
        assert res.status == "Success", [t.message for t in res.tasks]
    objects = _all_objects(s3, bucket)
    blocks = [k for k in objects if "/blocks/" in k or "/packs/" in k]
    assert blocks and all(k.endswith((".sp", ".sz", ".sr")) for k in blocks), blocks
    states = [s for m in src.machines.values() for s in m.states.values()]
    assert sum(leaks(blob, samples_of(states)) for blob in objects.values()) == 0
    repo = open_repository(url)
    for name, m in src.machines.items():
        meta = repo.load(JOB, name)
        assert len(meta.points) == 2 and all(p.key for p in meta.points)  # merged, still sealed
        assert chain_json(url, JOB, name)["chains"][0]["points"][0]["encrypted"] is True
        for p in meta.points:
            out = tmp_path / "x" / name / p.id
            export_point(url, JOB, name, p.id, out, ring())
            assert (out / "disk0.img").read_bytes() == m.states[p.source_point]
        with pytest.raises(Exception, match="password"):
            export_point(url, JOB, name, meta.points[-1].id, tmp_path / "nopw", None)
        with pytest.raises(WrongPassword):
            export_point(url, JOB, name, meta.points[-1].id, tmp_path / "wrong", ring("nope"))
    # without the password the check verifies the stored bytes, with it it decrypts too
    assert all(r.ok for r in check_repository(url, JOB, all_points=True))
    assert all(r.ok for r in check_repository(url, JOB, all_points=True, keys=ring()))


@pytest.mark.parametrize("encrypted", [False, True])
def test_health_check_names_damaged_objects_and_the_next_run_repairs(tmp_path, bucket, s3,
                                                                      monkeypatch, encrypted):
    set_pw(monkeypatch)
    src = Source(tmp_path, methods=("forward",), size=6 * BS + 1000)
    m = src.machines["vm-forward"]
    url = f"s3://{bucket}/dr"
    storage = '[storage]\nhealth_check = "daily 05:00"\n' + (
        f'encryption = true\npassword_env = "{PW_ENV}"\n' if encrypted else "")
    spec = s3_job(tmp_path, src, url, mode="immediate", extra=storage)
    src.backup(T0)
    assert run_job(spec, at=T0 + timedelta(hours=1)).status == "Success"
    repo = open_repository(url)
    meta = repo.load(JOB, "vm-forward")
    key = repo.machine_key(JOB, "vm-forward")
    with repo.view(meta, meta.points[-1]) as view:
        entries = list({loc.entry.digest: loc.entry for d in view.disks
                        for loc in view.blocks(d.name).values()}.values())
    assert len(entries) >= 4
    # bit rot in two stored blocks (in their pack): one byte flipped each, metadata kept
    for e in entries[:2]:
        victim = f"{key}/{object_name(e)}"
        obj = s3.get_object(Bucket=bucket, Key=victim)
        body = bytearray(obj["Body"].read())
        body[split_loc(e.offset)[1] + e.stored // 2] ^= 0x40
        s3.put_object(Bucket=bucket, Key=victim, Body=bytes(body), Metadata=obj["Metadata"])
    [res] = check_repository(url, JOB)
    assert not res.ok and len({c.block for c in res.corrupt}) >= 2
    assert all("damaged" in c.reason for c in res.corrupt), res.corrupt
    with pytest.raises(Exception, match="damaged"):
        export_point(url, JOB, "vm-forward", meta.points[-1].id, tmp_path / "bad", ring())
    # the next run's health check finds them, its increment re-sends them from the source
    # and they replace the damaged objects, which every point names (content addressed);
    # no other change, so each damaged block is still the one the new point uses
    src.backup(T0 + timedelta(days=1), mutate=0)
    run = run_job(spec, at=T0 + timedelta(days=1, hours=1))
    assert run.status in ("Success", "Warning"), [t.message for t in run.tasks]
    assert "corrupt" in run.tasks[0].message
    meta = repo.load(JOB, "vm-forward")
    assert "repair" not in meta.facts
    [res] = check_repository(url, JOB, all_points=True, keys=ring() if encrypted else None)
    assert res.ok, res.corrupt
    for p in meta.points:
        out = tmp_path / "y" / p.id
        export_point(url, JOB, "vm-forward", p.id, out, ring())
        assert (out / "disk0.img").read_bytes() == m.states[p.source_point]
