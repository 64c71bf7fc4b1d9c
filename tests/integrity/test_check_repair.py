"""Repair after any check: `ferry check` by hand records what it found, the job's
next run re-fetches it from the source; `ferry check --repair JOBFILE` does it at
once; what the source no longer has fails the run naming the blocks, and the chain
view shows the point as damaged."""

from __future__ import annotations

import json
from datetime import timedelta

from copyjob.conftest import ferry
from retention_e2e.replaykit import START, Lab

from engine.copy.runner import run_job
from engine.jobs.load import load_job
from engine.repository.container import Container
from engine.repository.repository import Repository

from .conftest import rot_block

NO_RETRY = "\n[transport]\nretries = 0\n"


def _lab(work, days: int = 3, keep: int = 3):
    lab = Lab(work, blocks=6)
    path = lab.job("R", keep=keep, retention=NO_RETRY)
    spec = load_job(path)
    for d in range(days):
        t = START + timedelta(days=d)
        lab.backup(t)
        assert run_job(spec, at=t).status == "Success"
    return lab, spec, path


def test_check_by_hand_then_the_next_run_repairs(work):
    lab, spec, _ = _lab(work)
    older = lab.chain("R")[1]  # not the latest: the scheduled health check would not see it
    rot_block(lab.dst, "R", "vm1", older)
    res = ferry("check", "--repo", lab.dst, "--all", "--json")
    assert res.returncode == 2 and "digest mismatch" in res.stderr
    chain = json.loads(ferry("chain", "--repo", lab.dst, "--json", check=True).stdout)
    pts = {p["id"]: p for p in chain["chains"][0]["points"]}
    assert pts[older.id]["damaged"] is True and pts[older.id]["damaged_blocks"]
    assert sum(1 for p in pts.values() if p.get("damaged")) == 1
    t = START + timedelta(days=3)
    lab.backup(t)
    out = run_job(spec, at=t)
    task = out.tasks[0]
    assert task.status == "Warning" and "re-fetched from the source" in task.message, \
        out.to_json()
    lab.check_exports("R")
    assert ferry("check", "--repo", lab.dst, "--all").returncode == 0
    chain = json.loads(ferry("chain", "--repo", lab.dst, "--json", check=True).stdout)
    assert not any(p.get("damaged") for p in chain["chains"][0]["points"])


def test_check_repair_jobfile_repairs_at_once(work):
    lab, spec, path = _lab(work)
    older = lab.chain("R")[1]
    rot_block(lab.dst, "R", "vm1", older)
    res = ferry("check", "--repair", path, "--all", "--json")
    assert res.returncode == 0, res.stderr
    js = json.loads(res.stdout)
    assert js["ok"] is True and "re-fetched" in js["machines"][0]["repair"]
    lab.check_exports("R")
    # the chain is what it was: same points, nothing copied
    assert [p.id for p in lab.chain("R")] == [p.id for p in Repository(lab.dst).load(
        "R", "vm1").points]


def test_block_the_source_no_longer_has_fails_naming_it(work):
    lab, spec, _ = _lab(work, days=2, keep=2)
    full = lab.chain("R")[0]
    b, _ = rot_block(lab.dst, "R", "vm1", full)
    # the source's copies of that block rot too: no verified copy anywhere
    src = Repository(lab.src)
    meta = src.load("Daily", "vm1")
    for p in meta.points:
        with Container(src.machine_dir("Daily", "vm1") / p.file, state=p.id) as c:
            present = b in c.disks["disk0.img"].blocks
        if present:
            rot_block(lab.src, "Daily", "vm1", p, block=b)
    assert ferry("check", "--repo", lab.dst, "--all").returncode == 2
    t = START + timedelta(days=2)
    lab.backup(t)
    task = run_job(spec, at=t).tasks[0]
    assert task.status == "Failed"
    assert f"block {b}" in task.message and full.file in task.message, task.message
    chain = json.loads(ferry("chain", "--repo", lab.dst, "--json", check=True).stdout)
    damaged = [p for p in chain["chains"][0]["points"] if p.get("damaged")]
    # the full (which may stand for a newer point after a merge) is the damaged one
    assert [p["file"].rsplit("/", 1)[-1] for p in damaged] == [full.file]
    assert damaged[0]["damaged_blocks"][0]["block"] == b
