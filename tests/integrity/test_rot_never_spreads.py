"""No unverified byte enters a file: rot in a stored block never spreads into
another file (merge, GFS synthesis, compact, WAN cache), and dedup never keeps a
rotten copy over a verified one. Each run either exports every point exactly or
ends Failed naming the damaged block."""

from __future__ import annotations

from datetime import timedelta

from retention_e2e.replaykit import START, Lab

from engine.copy.runner import run_job
from engine.jobs.load import load_job
from engine.repository.repository import Repository

from .conftest import rot_block

NO_RETRY = "\n[transport]\nretries = 0\n"


def test_repaired_block_does_not_come_back_rotten(work):
    """The issue's reproduction: keep 2, health check daily, one rotten byte in an
    increment, two more days: every point still exports the source's bytes."""
    lab = Lab(work, blocks=8)
    spec = load_job(lab.job("H", keep=2, storage='health_check = "daily 04:00"'))
    for d in range(3):
        t = START + timedelta(days=d)
        lab.backup(t)
        assert run_job(spec, at=t).status == "Success"
    inc = lab.chain("H")[-1]
    assert inc.kind.value == "incremental"
    rot_block(lab.dst, "H", "vm1", inc)
    for d in (3, 4):
        t = START + timedelta(days=d)
        lab.backup(t, mutate=0 if d == 3 else 2)
        res = run_job(spec, at=t)
        assert res.status in ("Success", "Warning"), res.to_json()
        lab.check_exports("H")
    assert lab.check_exports("H") == 2


def test_rot_in_the_full_is_not_kept_by_dedup_over_a_verified_copy(work):
    """A rotten payload in the full with the same digest as a freshly copied block:
    the merge stores the verified copy and the full's entries use it."""
    lab = Lab(work, blocks=8)
    spec = load_job(lab.job("D", keep=2, storage='health_check = "daily 04:00"'))
    for d in range(2):
        t = START + timedelta(days=d)
        lab.backup(t)
        assert run_job(spec, at=t).status == "Success"
    full = lab.chain("D")[0]
    rot_block(lab.dst, "D", "vm1", full)  # the full's block that the next points share
    for d in (2, 3, 4):
        t = START + timedelta(days=d)
        lab.backup(t, mutate=0)
        res = run_job(spec, at=t)
        assert res.status in ("Success", "Warning"), res.to_json()
    assert lab.check_exports("D") == 2


def test_wan_cache_never_copies_a_rotten_block_into_another_machine(work):
    lab = Lab(work, machines=("vm1", "vm2"), blocks=6)
    lab.disks["vm2"].data[:] = lab.disks["vm1"].data  # equal blocks: the cache serves them
    spec = load_job(lab.job("W", keep=3, retention="\n[transport]\nwan_acceleration = true\n"))
    lab.backup(START, machines=["vm1"])
    assert run_job(spec, at=START).status == "Success"
    (full,) = lab.chain("W", "vm1")
    rot_block(lab.dst, "W", "vm1", full)
    t = START + timedelta(days=1)
    lab.backup(t, machines=["vm2"])
    res = run_job(spec, at=t)
    vm2 = next(x for x in res.tasks if x.machine == "vm2")
    assert vm2.status == "Success", res.to_json()
    assert lab.check_exports("W", "vm2") == 1  # the rotten byte did not travel


def test_gfs_synthetic_full_never_takes_a_rotten_block(work):
    """Rot in an increment the synthetic GFS full is built from: the long-term full
    gets no rotten byte - it is repaired first or the run is Failed naming it."""
    lab = Lab(work, blocks=6)
    gfs = '\n[retention.gfs]\nweekly = { keep_weeks = 2, day = "saturday" }\n' + NO_RETRY
    spec = load_job(lab.job("G", keep=3, retention=gfs))
    # Nov 1 2026 is a Sunday: days 0..5 run plain increments, day 6 is Saturday
    for d in range(6):
        t = START + timedelta(days=d)
        lab.backup(t)
        assert run_job(spec, at=t).status == "Success"
    t = START + timedelta(days=6)
    lab.backup(t, mutate=0)
    # rot the block of the newest increment the synthesis will copy (the day-6 point
    # is an increment with no changed block, so the synthesis reads the day-5 one)
    inc = lab.chain("G")[-1]
    rot_block(lab.dst, "G", "vm1", inc)
    res = run_job(spec, at=t)
    _spread_or_failed(lab, "G", res)


def test_compact_never_takes_a_rotten_block(work):
    lab = Lab(work, blocks=6)
    spec = load_job(lab.job("C", keep=2, storage='compact = "daily 05:00"', retention=NO_RETRY))
    for d in range(2):
        t = START + timedelta(days=d)
        lab.backup(t)
        assert run_job(spec, at=t).status == "Success"
    full = lab.chain("C")[0]
    rot_block(lab.dst, "C", "vm1", full)
    t = START + timedelta(days=2)
    lab.backup(t, mutate=0)
    res = run_job(spec, at=t)
    _spread_or_failed(lab, "C", res)


def _spread_or_failed(lab: Lab, job: str, res) -> None:
    """The source still has the block: the run re-fetched it (Warning, saying so) and
    every point exports exactly; no Success over a rotten point."""
    task = res.tasks[0]
    assert task.status == "Warning", res.to_json()
    assert "re-fetched from the source" in task.message, task.message
    lab.check_exports(job)
    assert not Repository(lab.dst).load(job, "vm1").facts.get("damaged")
