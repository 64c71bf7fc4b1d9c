"""[storage] immutable_days on a folder target: retention keeps the points younger than
N days (the rule shared with S3 and the preview), `ferry chain --json` names until when."""

from __future__ import annotations

from datetime import timedelta

from engine.cli import chain_json
from engine.copy.runner import run_job
from engine.jobs.load import load_job
from engine.repository.repository import Repository

from .conftest import T0, Source, exported, write_job


def test_folder_target_keeps_immutable_points_and_shows_until(tmp_path):
    src = Source(tmp_path, methods=("forever-forward",))
    m = src.machines["vm-forever-forward"]
    dst = tmp_path / "dr"
    job = load_job(write_job(tmp_path / "j.toml", "Imm", src.repo, ["Forever"], dst, keep=2,
                             extra="[storage]\nimmutable_days = 3\n"))
    for day in range(5):
        src.backup(T0 + timedelta(days=day))
        res = run_job(job, at=T0 + timedelta(days=day, hours=1))
        assert res.status == "Success", [t.message for t in res.tasks]
    meta = Repository(dst).load("Imm", m.name)
    # keep = 2 alone would leave 2 points; an immutable chain is forward incremental (no
    # merge into the full its locked increments read), and its first periodic full is
    # due on day 7: all five points stay
    assert [p.time for p in meta.points] == [T0 + timedelta(days=d) for d in range(5)]
    assert [p.kind.value for p in meta.points] == ["full"] + ["incremental"] * 4
    points = chain_json(dst, "Imm", m.name)["chains"][0]["points"]
    for p, shown in zip(meta.points, points, strict=True):
        want = (p.time + timedelta(days=3)).astimezone().isoformat(timespec="seconds")
        assert shown["immutable_until"] == want
        assert exported(dst, "Imm", m.name, p.id, tmp_path / "x" / p.id) == m.states[
            p.source_point]


def test_immutable_attribute_on_point_files_as_root(tmp_path):
    """As root on ext4/xfs the point files get FS_IMMUTABLE_FL: not even root's unlink
    works until Ferry lifts it, which it does once the point's immutability passed."""
    import os
    from datetime import datetime

    import pytest

    from engine.repository import immutable

    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    if not immutable.set_immutable(probe, True):
        pytest.skip("the immutable attribute needs root and ext4/xfs/btrfs/tmpfs>=6.0 here")
    immutable.set_immutable(probe, False)
    src = Source(tmp_path, methods=("forward",))
    m = src.machines["vm-forward"]
    dst = tmp_path / "dr"
    job = load_job(write_job(tmp_path / "j.toml", "Imm", src.repo, ["Daily"], dst, keep=2,
                             extra="[storage]\nimmutable_days = 2\n"))
    now = datetime.now().replace(microsecond=0) - timedelta(hours=2)
    folder = Repository(dst).machine_dir("Imm", m.name)
    try:
        for hour in range(2):
            src.backup(now + timedelta(hours=hour))
            res = run_job(job, at=now + timedelta(hours=hour, minutes=5))
            assert res.status == "Success", [t.message for t in res.tasks]
        meta = Repository(dst).load("Imm", m.name)
        files = [folder / p.file for p in meta.points]
        assert len(files) == 2 and all(immutable.is_immutable(f) for f in files)
        with pytest.raises(PermissionError):
            os.unlink(files[0])
        with pytest.raises(PermissionError):
            files[0].open("r+b")
        # once the immutability passed (here: recorded as passed), the next pass lifts it
        for pid in list(meta.facts["immutable_until"]):
            meta.facts["immutable_until"][pid] = (now - timedelta(days=1)).isoformat()
        assert immutable.lift_expired(folder, meta) == 2
        assert not any(immutable.is_immutable(f) for f in files)
    finally:
        for f in folder.glob("*"):
            immutable.set_immutable(f, False)


def test_a_full_holds_as_long_as_a_locked_increment_reads_it(tmp_path):
    """The full's own immutability passed, its increments' did not: its file keeps the
    attribute (deleting it would lose the locked increments), and compact leaves it;
    the older chain, which no locked point reads, is lifted."""
    from datetime import datetime

    import pytest

    from engine.model import Kind, MachineMeta, Method, RestorePoint
    from engine.repository import immutable

    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    now = datetime.now().astimezone().replace(microsecond=0)
    kinds = [("a0", Kind.FULL, -20), ("a1", Kind.INCREMENTAL, -19),
             ("b0", Kind.FULL, -5), ("b1", Kind.INCREMENTAL, -4), ("b2", Kind.INCREMENTAL, 2)]
    meta = MachineMeta("J", "m", 1 << 20, Method.FOREVER_FORWARD, "auto")
    meta.points = [RestorePoint(pid, now, kind, f"{pid}.f", []) for pid, kind, _ in kinds]
    meta.facts["immutable_until"] = {pid: (now + timedelta(days=d)).isoformat()
                                     for pid, _, d in kinds}
    assert [immutable.immutable_now(meta, p) for p, _, _ in kinds] == [
        False, False, True, True, True]
    if not immutable.set_immutable(probe, True):
        pytest.skip("the immutable attribute needs root and ext4/xfs/btrfs/tmpfs>=6.0 here")
    immutable.set_immutable(probe, False)
    try:
        for pid, _, _ in kinds:
            (tmp_path / f"{pid}.f").write_bytes(b"x")
            immutable.set_immutable(tmp_path / f"{pid}.f", True)
        assert immutable.lift_expired(tmp_path, meta) == 2  # a0, a1
        assert [immutable.is_immutable(tmp_path / f"{p}.f") for p, _, _ in kinds] == [
            False, False, True, True, True]
    finally:
        for f in tmp_path.glob("*.f"):
            immutable.set_immutable(f, False)


def test_periodic_synthetic_full_of_an_encrypted_immutable_chain(tmp_path, monkeypatch):
    """The periodic full moves sealed blocks without the password (as a GFS synthetic
    full does); after it and after the old chain's deletion every point opens and
    exports exactly."""
    from .enc_helpers import enc_job, export_with, set_pw

    set_pw(monkeypatch)
    src = Source(tmp_path, methods=("forward",))
    m = src.machines["vm-forward"]
    dst = tmp_path / "dr"
    job = load_job(enc_job(tmp_path / "e.toml", "E", src.repo, ["Daily"], dst, keep=2,
                           extra="immutable_days = 3\n"))
    actions = []
    for day in range(12):
        src.backup(T0 + timedelta(days=day))
        res = run_job(job, at=T0 + timedelta(days=day, hours=1))
        assert res.status == "Success", res.to_json()
        actions += [a["action"] for a in res.retention]
        if day not in (7, 10, 11):  # after the synthetic full, the deletion, at the end
            continue
        for p in Repository(dst).load("E", m.name).points:
            assert export_with(dst, "E", m.name, p.id, tmp_path / "x" / p.id) == \
                m.states[p.source_point]
    assert actions == ["synthetic-full", "delete-chain"]
    meta = Repository(dst).load("E", m.name)
    assert [p.kind.value for p in meta.points] == ["full"] + ["incremental"] * 4
    assert all(p.encrypted for p in meta.points)
