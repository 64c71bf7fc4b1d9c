"""Leftovers go at the end of the run that made them, or of the next run of the machine
(after a kill), not at the next copied point: resume.json and its partial once nothing
will resume it, a metadata temp file, backup files no committed point names.

A kill -9 aftermath is reproduced by writing the files a killed process leaves (as
tests/engine/test_crash.py does); a stopped run and ENOSPC make theirs for real.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from retention_e2e.replaykit import START, Lab

from engine import events as ev
from engine.copy.control import RunControl
from engine.copy.runner import run_job
from engine.jobs.load import load_job
from engine.repository.repository import Repository

from .test_enospc_copy import run_bounded

JOB = "L"


def _named(lab: Lab, machine: str = "vm1") -> set[str]:
    """What a clean machine folder holds: the lock, the metadata, the points' files."""
    meta = Repository(lab.dst).load(JOB, machine)
    return {"lock", f"{machine}.fbm"} | {p.file for p in meta.points}


def _files(lab: Lab, machine: str = "vm1") -> set[str]:
    return {f.name for f in (lab.dst / JOB / machine).iterdir()}


def _kill_aftermath(lab: Lab, machine: str = "vm1") -> set[str]:
    """The files a run killed at various moments leaves: a half-written metadata temp
    file, the increment of a deleted chain whose unlink never ran, a partial point with
    its journal and resume.json."""
    folder = lab.dst / JOB / machine
    (folder / f"{machine}.fbm.tmp").write_text('{"format": 1, "bo')
    (folder / f"{machine}D2026-10-01T220000_0badc0de.fib").write_bytes(b"x" * 9000)
    part = f"{machine}D2026-10-02T220000_5eed5eed.fib"
    (folder / f"{part}.part").write_bytes(b"y" * 9000)
    (folder / f"{part}.part.journal").write_bytes(b"{}\n")
    (folder / "resume.json").write_text(json.dumps({
        "plan": {"source_point": "gone", "kind": "incremental", "base": "x",
                 "block_size": 1, "key": ""}, "disks": ["disk0.img"], "file": part,
        "point": "5eed5eed5eed5eed", "key": "", "envelope": None}))
    return {f"{machine}.fbm.tmp", f"{machine}D2026-10-01T220000_0badc0de.fib",
            f"{part}.part", f"{part}.part.journal", "resume.json"}


@pytest.fixture
def lab(tmp_path) -> Lab:
    return Lab(tmp_path, machines=("vm1",), blocks=8, full_every=1000)


def test_a_run_with_nothing_to_copy_sweeps_what_a_killed_run_left(lab):
    spec = load_job(lab.job(JOB, keep=3))
    lab.backup(START)
    assert run_job(spec, at=START).status == "Success"
    left = _kill_aftermath(lab)
    assert left <= _files(lab)
    # the next run finds no new source point: it still ends by sweeping
    res = run_job(spec, at=START + timedelta(hours=1))
    assert res.status == "Success" and res.tasks[0].kind == "none", res.to_json()
    assert _files(lab) == _named(lab), sorted(_files(lab) - _named(lab))
    assert lab.check_exports(JOB) == 1


def test_a_stopped_runs_partial_stays_for_the_run_that_resumes_it(lab):
    """Stopped mid-point: the partial and resume.json stay (a window-blocked run keeps
    them, sweeping only the rest); the run that copies the point leaves nothing."""
    spec = load_job(lab.job(JOB, keep=3, schedule='window = ["20:00-06:00"]'))
    lab.backup(START)
    assert run_job(spec, at=START).status == "Success"
    t1 = START + timedelta(days=1)
    lab.backup(t1, mutate=6)
    control, held = RunControl(), threading.Event()
    control.hold()

    def sink(e) -> None:
        if isinstance(e, ev.TaskOnHold):
            held.set()

    out: list = []
    th = threading.Thread(target=lambda: out.append(run_job(spec, at=t1, sink=sink,
                                                            control=control)), daemon=True)
    th.start()
    assert held.wait(60), "the run never reached a block boundary"
    control.stop()
    th.join(60)
    assert not th.is_alive() and out and out[0].status == "Failed", out
    folder = lab.dst / JOB / "vm1"
    marker = json.loads((folder / "resume.json").read_text())
    partial = {"resume.json", marker["file"] + ".part"}
    assert partial <= _files(lab)
    orphan = "vm1D2026-10-01T220000_0badc0de.fib"  # and a deleted chain's file a kill left
    (folder / orphan).write_bytes(b"x" * 9000)
    # outside the copy window: nothing is copied, the partial stays, the rest goes
    res = run_job(spec, at=t1 + timedelta(hours=14))
    assert res.status == "Warning" and "outside the copy window" in res.tasks[0].message
    assert partial <= _files(lab) and orphan not in _files(lab)
    # in the window the point is copied (resuming the partial) and nothing is left
    res = run_bounded(spec, t1 + timedelta(hours=24))
    assert res.status == "Success", res.to_json()
    assert _files(lab) == _named(lab), sorted(_files(lab) - _named(lab))
    assert lab.check_exports(JOB) == 2


def test_a_failed_metadata_save_leaves_no_temp_file(tmp_path, small_fs):
    """ENOSPC while the metadata is written: the save fails, the old metadata stays in
    force and readable, and its temp file is gone at once."""
    fs = small_fs(4 << 20)
    lab = Lab(tmp_path, machines=("vm1",), blocks=4, full_every=1000)
    lab.src = fs.path / "primary"
    lab.src.mkdir()
    lab.backup(START)
    repo = Repository(lab.src)
    meta = repo.load("Daily", "vm1")
    before = repo.meta_path("Daily", "vm1").read_bytes()
    meta.facts["note"] = "x" * 200_000  # bigger than what is left
    fs.fill(leave=0)
    try:
        with pytest.raises(OSError, match="No space left"):
            repo.save(meta)
        folder = repo.machine_dir("Daily", "vm1")
        assert not list(folder.glob("*.tmp")), sorted(f.name for f in folder.iterdir())
        assert repo.meta_path("Daily", "vm1").read_bytes() == before
        assert len(repo.load("Daily", "vm1").points) == 1
    finally:
        fs.unfill()
