"""Deleted-items retention (`deleted_items_days`) with real runs: a machine removed from
the source is kept N days, then its folder goes; a machine that comes back keeps its
chain; GFS-flagged fulls of a removed machine are never deleted while flagged."""

from __future__ import annotations

import shutil
from datetime import timedelta

import pytest

from engine.copy.maintenance import after_session
from engine.copy.runner import run_job
from engine.jobs.load import load_job
from engine.repository.repository import Repository

from .replaykit import SOURCE_JOB, START, Lab, fast_dir, no_fsync


@pytest.fixture
def work(tmp_path, monkeypatch):
    no_fsync(monkeypatch)
    yield from fast_dir(tmp_path)


def _by(res, action: str) -> dict[str, dict]:
    return {a["machine"]: a for a in res.retention if a["action"] == action}


def test_removed_machine_is_kept_n_days_then_removed_and_a_returning_one_stays(work):
    lab = Lab(work, machines=("vm1", "vm2", "vm3"))
    spec = load_job(lab.job("Del", keep=3, retention="deleted_items_days = 3"))
    repo = Repository(lab.dst)
    src_dir = lab.src / SOURCE_JOB
    present = ["vm1", "vm2", "vm3"]
    removed_on = {}
    for d in range(14):
        t = START + timedelta(days=d)
        if d == 5:  # vm2 is deleted from the source; vm3 disappears for a while
            shutil.rmtree(src_dir / "vm2")
            (src_dir / "vm3").rename(lab.root / "vm3-away")
            present = ["vm1"]
        if d == 7:  # vm3 comes back with its chain
            (lab.root / "vm3-away").rename(src_dir / "vm3")
            present = ["vm1", "vm3"]
        lab.backup(t, machines=present)
        res = run_job(spec, at=t)
        assert res.status == "Success", res.to_json()
        for m in _by(res, "remove-machine"):
            removed_on[m] = d
        gone = {m: repo.load("Del", m).gone_since for _, m in repo.machines("Del")}
        if 5 <= d < 8:
            assert gone["vm2"] == START.replace(day=6).isoformat()  # the first run missing it
            lab.check_exports("Del", "vm2")  # kept, and still exact
        if d in (5, 6):
            assert gone["vm3"] == START.replace(day=6).isoformat()
        if d >= 7:
            assert gone["vm3"] == "", "a machine seen again is not gone any more"
        assert gone["vm1"] == ""
    assert removed_on == {"vm2": 8}  # gone since day 5, kept 3 days
    assert not (lab.dst / "Del" / "vm2").exists()
    assert [m for _, m in repo.machines("Del")] == ["vm1", "vm3"]
    assert not [p for p in (lab.dst / "Del").iterdir() if p.name.startswith(".removed-")]
    for m in ("vm1", "vm3"):
        assert len(lab.chain("Del", m)) == 3
        lab.check_exports("Del", m)
    # vm3 missed two days but its chain went on from where it was
    assert lab.chain("Del", "vm3")[-1].time == START + timedelta(days=13)


def test_gfs_fulls_of_a_removed_machine_survive_until_their_flags_expire(work):
    lab = Lab(work, machines=("vm1", "vm2"))
    spec = load_job(lab.job("DelG", keep=3, retention="""deleted_items_days = 2

[retention.gfs]
weekly = { keep_weeks = 2, day = "sunday" }
"""))
    repo = Repository(lab.dst)
    present = ["vm1", "vm2"]
    events = {}
    for d in range(40):
        t = START + timedelta(days=d)
        if d == 10:  # a Wednesday: vm2 has W fulls of Nov 1 and Nov 8, and increments
            shutil.rmtree(lab.src / SOURCE_JOB / "vm2")
            present = ["vm1"]
        lab.backup(t, machines=present)
        res = run_job(spec, at=t)
        assert res.status == "Success", res.to_json()
        for a in res.retention:
            if a["machine"] == "vm2":
                events.setdefault(d, []).append(a["action"])
        if d == 9:
            before = [(p.id, p.kind.value, p.gfs) for p in lab.chain("DelG", "vm2")]
            assert [k for _, k, _ in before] == ["full", "full", "incremental", "incremental"]
        if 10 <= d < 12:  # gone, kept untouched for 2 days
            assert [(p.id, p.kind.value, p.gfs) for p in lab.chain("DelG", "vm2")] == before
        if repo.has("DelG", "vm2"):
            lab.check_exports("DelG", "vm2")
    # day 12: the unflagged points go, the two W fulls stay; the Nov 1 W flag expires on
    # Nov 15 (day 14) and that full goes; the Nov 8 one expires on Nov 22 (day 21) and
    # the machine's folder goes at that run
    assert {d: a for d, a in events.items() if d >= 10} == {
        12: ["delete-chain"], 14: ["expire-flag", "delete-chain"],
        21: ["expire-flag", "remove-machine"]}
    assert not repo.has("DelG", "vm2")
    assert len(lab.chain("DelG", "vm1")) >= 3


def test_between_sessions_only_flagged_fulls_are_left(work):
    """Day by day after N days: the flagged fulls, nothing else, and they export."""
    lab = Lab(work, machines=("vm1", "vm2"))
    spec = load_job(lab.job("DelH", keep=2, retention="""deleted_items_days = 1

[retention.gfs]
weekly = { keep_weeks = 3, day = "sunday" }
monthly = { keep_months = 1, week = "first" }
"""))
    for d in range(17):
        t = START + timedelta(days=d)
        lab.backup(t)
        assert run_job(spec, at=t).status == "Success"
    shutil.rmtree(lab.src / SOURCE_JOB / "vm2")
    for d in range(17, 19):
        t = START + timedelta(days=d)
        lab.backup(t, machines=["vm1"])
        assert run_job(spec, at=t).status == "Success"
    left = lab.chain("DelH", "vm2")
    assert [(p.kind.value, p.gfs) for p in left] == \
        [("full", ["W", "M"]), ("full", ["W"]), ("full", ["W"])]
    lab.check_exports("DelH", "vm2")
    # calling the hook again the same day changes nothing
    assert after_session(spec, ["vm1"], Repository(lab.dst), START + timedelta(days=18)) == []


def test_half_done_removal_is_finished_and_a_busy_machine_waits(work, monkeypatch):
    """A removal killed after its rename leaves `.removed-*` (not a machine); the next
    session deletes it. A machine whose chain is in use is left for the next session."""
    import engine.copy.maintenance as maint

    lab = Lab(work, machines=("vm1", "vm2"))
    spec = load_job(lab.job("Busy", keep=2, retention="deleted_items_days = 1"))
    for d in range(2):
        lab.backup(START + timedelta(days=d))
        run_job(spec, at=START + timedelta(days=d))
    repo = Repository(lab.dst)
    leftover = lab.dst / "Busy" / ".removed-0123456789ab"
    shutil.copytree(repo.machine_dir("Busy", "vm2"), leftover)
    assert [m for _, m in repo.machines("Busy")] == ["vm1", "vm2"]
    monkeypatch.setattr(maint, "LOCK_WAIT", 0.1)
    now = START + timedelta(days=5)
    with repo.lock("Busy", "vm2", exclusive=False):  # e.g. a restore reading vm2
        assert after_session(spec, ["vm1"], repo, now) == []
    assert not leftover.exists()
    assert repo.load("Busy", "vm2").gone_since == ""  # not even marked: it was busy
    assert after_session(spec, ["vm1"], repo, now) == []  # marked now
    acts = after_session(spec, ["vm1"], repo, now + timedelta(days=1))
    assert [(a["machine"], a["action"]) for a in acts] == [("vm2", "remove-machine")]
    assert [m for _, m in repo.machines("Busy")] == ["vm1"]
