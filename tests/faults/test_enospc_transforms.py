"""ENOSPC on a real small file system during a merge, a GFS synthetic full and an
export (issue 9, the fault-injection suite).

The space is taken by a filler file sized from the real files, so the copy of the
day's point fits and the transform after it does not. The restore truth after every
run: each point the target names exports exactly its source point; a run that could
not finish says Failed and names the step; once space is back the next run finishes
it and leaves nothing behind.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

from copyjob.conftest import ROOT
from retention_e2e.replaykit import START, Lab

from engine.jobs.load import load_job
from engine.repository.repository import Repository

from .conftest import MIB
from .test_enospc_copy import run_bounded

BLOCKS = 16  # 4 MiB disks of 256 KiB blocks


def _lab(tmp_path, fs) -> Lab:
    lab = Lab(tmp_path, machines=("vm1",), blocks=BLOCKS, full_every=1000)
    lab.dst = fs.path / "dr"
    return lab


def _job(lab: Lab, name: str, retention: str = "", keep: int = 2):
    job = lab.job(name, keep=keep, retention=retention)
    job.write_text(job.read_text() + "\n[transport]\nretries = 0\n")
    return load_job(job)


def _newest_source_file(lab: Lab) -> int:
    """Bytes of the newest source point's file: what the copy of it needs on the target."""
    repo = Repository(lab.src)
    meta = repo.load("Daily", "vm1")
    return repo.file(meta, meta.points[-1]).stat().st_size


def _ferry(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def _only_named(lab: Lab, job: str) -> None:
    meta = Repository(lab.dst).load(job, "vm1")
    folder = Repository(lab.dst).machine_dir(job, "vm1")
    named = {"lock", "vm1.fbm"} | {p.file for p in meta.points}
    assert {f.name for f in folder.iterdir()} == named


def test_enospc_during_a_merge_fails_naming_it_and_the_next_run_merges(tmp_path, small_fs):
    fs = small_fs(32 * MIB)
    lab = _lab(tmp_path, fs)
    spec = _job(lab, "M")
    for d in range(2):
        lab.backup(START + timedelta(days=d), mutate=6)
        assert run_bounded(spec, START + timedelta(days=d)).status == "Success"
    t = START + timedelta(days=2)
    lab.backup(t, mutate=6)
    # room for the day's increment, not for merging the oldest one into the full
    fs.fill(leave=_newest_source_file(lab) + 256 * 1024)
    res = run_bounded(spec, t)
    assert res.status == "Failed", res.to_json()
    msg = res.tasks[0].message
    assert "merge of the 2026-11-02 22:00 point into the full failed: No space left" in msg
    assert [p.kind.value for p in lab.chain("M")] == ["full", "incremental", "incremental"]
    assert lab.check_exports("M") == 3
    fs.unfill()
    res = run_bounded(spec, t + timedelta(hours=1))
    assert res.status == "Success", res.to_json()
    assert [a["action"] for a in res.retention] == ["merge"]
    assert lab.check_exports("M") == 2
    _only_named(lab, "M")


def test_enospc_during_a_gfs_synthetic_full_releases_its_space(tmp_path, small_fs):
    """The Sunday run copies its increment, then cannot write the synthetic full: Failed,
    naming it; the partial full is gone (its space is free again), the intent stays,
    and the next run makes the weekly full for that Sunday."""
    fs = small_fs(32 * MIB)
    lab = _lab(tmp_path, fs)
    spec = _job(lab, "G", keep=3, retention="""
[retention.gfs]
weekly = { keep_weeks = 2, day = "sunday" }
""")
    for d in range(1, 7):  # Monday to Saturday: the full and its increments
        lab.backup(START + timedelta(days=d))
        assert run_bounded(spec, START + timedelta(days=d)).status == "Success"
    sunday = START + timedelta(days=7)
    lab.backup(sunday)
    fs.fill(leave=_newest_source_file(lab) + 512 * 1024)
    free = fs.free()
    res = run_bounded(spec, sunday)
    assert res.status == "Failed", res.to_json()
    assert "GFS full of the 2026-11-08 22:00 point failed: No space left" in \
        res.tasks[0].message, res.tasks[0].message
    chain = lab.chain("G")
    assert chain[-1].time == sunday and chain[-1].kind.value == "incremental"
    assert lab.check_exports("G") == len(chain)
    folder = Repository(lab.dst).machine_dir("G", "vm1")
    assert not list(folder.glob("*.part")), "the partial full still takes the space"
    assert fs.free() >= free - _newest_source_file(lab) - 256 * 1024
    assert Repository(lab.dst).load("G", "vm1").facts["gfs_pending"]["point"] == chain[-1].id
    fs.unfill()
    res = run_bounded(spec, sunday + timedelta(hours=1))
    assert res.status == "Success", res.to_json()
    new = lab.chain("G")[-1]
    assert (new.time, new.kind.value, new.gfs) == (sunday, "full", ["W"])
    assert lab.check_exports("G") == len(lab.chain("G"))
    _only_named(lab, "G")


def test_enospc_during_an_export_is_one_line_and_leaves_no_partial_disk(tmp_path, small_fs):
    """An export to a folder too small for the disk: exit 2, one line naming the cause,
    no disk image (not even a part of one) left as if it were the disk."""
    out_fs = small_fs(2 * MIB, name="out")
    lab = Lab(tmp_path, machines=("vm1",), blocks=BLOCKS, full_every=1000)
    lab.backup(START)
    point = Repository(lab.src).load("Daily", "vm1").points[-1]
    out = out_fs.path / "export"
    res = _ferry("export", "--repo", lab.src, "--job", "Daily", "--machine", "vm1",
                 "--out", out)
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    (line,) = res.stderr.splitlines()
    assert "No space left on device" in line, line
    assert not out.exists() or not list(out.iterdir()), sorted(out.iterdir())
    out_fs.resize(8 * MIB)
    res = _ferry("export", "--repo", lab.src, "--job", "Daily", "--machine", "vm1",
                 "--out", out)
    assert res.returncode == 0, res.stderr
    assert (out / "disk0.img").read_bytes() == lab.states[point.id]
