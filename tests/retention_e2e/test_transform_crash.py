"""kill -9 of `ferry run` during a merge and during a GFS synthetic full.

The run is a real subprocess (`python -m engine.cli run JOB --at ...`) on a 32 MiB
disk so each transform takes a measurable time, killed at random moments inside the
transform across many attempts. After every kill each point the target metadata
names exports exactly the source point it was copied from; a rerun finishes the
transform and leaves the chain the rules (and `ferry preview`) say.
"""

from __future__ import annotations

import dataclasses
import json
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from copyjob.conftest import ROOT

from engine.copy.runner import run_job
from engine.jobfile import load_job
from engine.repository.repository import Repository
from engine.simulate import Sizing, simulate

from .replaykit import START, Lab, shape

BLOCKS = 128  # 32 MiB
CHANGED = 300  # random block writes per day: ~90% of the blocks, ~29 MiB increments


def _launch(job: Path, when) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(job), "--json",
                             "--at", when.isoformat()], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(job: Path, when) -> dict:
    p = _launch(job, when)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return json.loads(out)


def _kill(p: subprocess.Popen) -> bool:
    """SIGKILL; True when the process was still running (the kill interrupted it)."""
    alive = p.poll() is None
    p.send_signal(signal.SIGKILL)
    p.communicate()
    return alive


def _wait_for(cond, p: subprocess.Popen, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        if p.poll() is not None:
            return cond()
        time.sleep(0.002)
    raise AssertionError("the run neither reached the transform nor ended")


def _check_all(lab: Lab, job: str) -> list:
    """Every point the metadata names: its file exists and it exports exactly."""
    points = lab.chain(job)
    folder = Repository(lab.dst).machine_dir(job, "vm1")
    for p in points:
        assert (folder / p.file).exists(), p.file
    lab.check_exports(job)
    return points


def test_kill_9_during_merge(tmp_path):
    """keep = 2 points: every run after the second merges a ~29 MiB increment into the
    full. Kill the run soon after its new point is committed (the merge starts right
    then), and the reruns (which have only the merge left) once the merge has begun to
    append to the full; until enough kills landed inside a merge."""
    rng = random.Random(2)
    lab = Lab(tmp_path, blocks=BLOCKS, full_every=1000)
    job = lab.job("M", keep=2)
    spec = load_job(job)
    repo = Repository(lab.dst)
    fbm = repo.meta_path("M", "vm1")
    for d in range(2):
        lab.backup(START + timedelta(days=d), mutate=CHANGED)
        assert run_job(spec, at=START + timedelta(days=d)).status == "Success"
    kills = mid_merge = 0
    outcomes = []
    for d in range(2, 20):
        t = START + timedelta(days=d)
        lab.backup(t, mutate=CHANGED)
        before = lab.chain("M")
        full_path = repo.machine_dir("M", "vm1") / before[0].file
        for attempt in range(3):
            ino, mtime = fbm.stat().st_ino, full_path.stat().st_mtime_ns
            p = _launch(job, t)
            if attempt == 0:
                _wait_for(lambda ino=ino: fbm.stat().st_ino != ino, p)
                time.sleep(rng.uniform(0.0, 0.12))
            else:
                _wait_for(lambda f=full_path, m=mtime: f.stat().st_mtime_ns != m, p)
                time.sleep(rng.uniform(0.0, 0.1))
            alive = _kill(p)
            kills += alive
            points = _check_all(lab, "M")
            ids = [x.source_point for x in points]
            assert ids in ([x.source_point for x in before] + [ids[-1]],
                           [before[-1].source_point, ids[-1]]), ids
            # data (maybe a header slot) written into the full, the metadata not replaced
            # (a merge reuses dead space, so the file need not grow: look at its mtime)
            inside = len(points) == 3 and full_path.stat().st_mtime_ns != mtime
            mid_merge += inside
            outcomes.append((d, attempt, alive, inside))
            if len(points) == 2:
                break  # merged: nothing left to interrupt
        res = _finish(job, t)
        assert res["status"] == "Success"
        chain = lab.chain("M")
        assert [(x.kind.value, x.source_point) for x in chain] == \
            [("full", before[-1].source_point), ("incremental", chain[-1].source_point)]
        assert lab.states[chain[-1].source_point] == bytes(lab.disks["vm1"].data)
        _check_all(lab, "M")
        if mid_merge >= 8 and d >= 5:
            break
    assert mid_merge >= 5, f"only {mid_merge} kills landed inside a merge: {outcomes}"
    folder = repo.machine_dir("M", "vm1")
    assert not list(folder.glob("*.part"))
    print(f"merge: {kills} kills of a running process, {mid_merge} inside a merge, "
          f"{d - 1} days")


def test_kill_9_during_gfs_synthetic_full(tmp_path):
    """Weekly GFS (synthetic): each Sunday's run copies the increment, then synthesizes
    a 32 MiB full. Kill it, and then each rerun (which resumes the interrupted full),
    at a random moment after the new full's file appears."""
    rng = random.Random(3)
    lab = Lab(tmp_path, blocks=BLOCKS, full_every=1000)
    job = lab.job("G", keep=3, retention="""
[retention.gfs]
weekly = { keep_weeks = 2, day = "sunday" }
""")
    spec = load_job(job)
    repo = Repository(lab.dst)
    folder = repo.machine_dir("G", "vm1")
    kills = mid_synth = 0
    outcomes = []
    days = 29  # GFS Sundays 7, 14, 21, 28 after the first full
    for d in range(days):
        t = START + timedelta(days=d)
        lab.backup(t, mutate=CHANGED if t.weekday() == 5 else 8)
        if d == 0 or t.weekday() != 6:
            assert run_job(spec, at=t).status == "Success"
            continue
        for attempt in range(6):
            started = time.time_ns()

            def synthesizing(started=started) -> bool:
                return any(f.stat().st_mtime_ns >= started for f in folder.glob("*.fbk.part"))

            p = _launch(job, t)
            _wait_for(synthesizing, p)
            time.sleep(rng.uniform(0.0, 0.1))  # a 32 MiB synthesis takes ~0.15-0.3 s
            alive = _kill(p)
            kills += alive
            points = _check_all(lab, "G")
            new = points[-1]
            assert new.time == t, "the copied point is committed before the synthesis"
            pending = repo.load("G", "vm1").facts.get("gfs_pending")
            inside = new.kind.value == "incremental"
            if inside:  # the intent is durable, so the next run finishes the full
                assert pending == {"point": new.id, "flags": {"W": t.date().isoformat()},
                                   "method": "synthetic", "assigned": t.date().isoformat()}
            mid_synth += inside
            outcomes.append((d, attempt, alive, inside))
            if pending is None:
                break  # the GFS full is done: nothing left to interrupt
        res = _finish(job, t)
        finished = [a for a in res["retention"] if "interrupted" in a["detail"]]
        assert len(finished) == (pending is not None)
        new = lab.chain("G")[-1]
        assert (new.time, new.kind.value, new.gfs, new.gfs_dates, new.gfs_assigned) == \
            (t, "full", ["W"], {"W": t.date().isoformat()}, {"W": t.date().isoformat()})
        assert "gfs_pending" not in repo.load("G", "vm1").facts
        _check_all(lab, "G")
    assert mid_synth >= 4, f"only {mid_synth} kills landed inside a synthesis: {outcomes}"
    assert not list(folder.glob("*.part"))
    # after all the kills and reruns the chain is what the preview shows
    sim = simulate("G", spec.retention, spec.mode, START, days, Sizing(10, 1))
    assert shape(lab.chain("G")) == shape(sim.days[-1].points)
    print(f"GFS: {kills} kills of a running process, {mid_synth} inside a synthesis")


def test_interrupted_gfs_full_is_finished_by_the_next_days_run_once(tmp_path, monkeypatch):
    """The synthesis fails on the GFS Sunday and nobody reruns: Monday's run finishes
    Sunday's full first and does not make a second weekly full for the same Sunday
    (Monday's run planned one: its chain showed no W for Sunday yet)."""
    import engine.copy.retain as retain

    lab = Lab(tmp_path, blocks=8)
    job = lab.job("I", keep=3, retention="""
[retention.gfs]
weekly = { keep_weeks = 2, day = "sunday" }

[transport]
retries = 0
""")
    spec = load_job(job)
    real = retain.FILE_OPS

    def broken(*args, **kwargs):
        raise OSError("killed")

    failing = dataclasses.replace(real, synthesize=broken)

    for d in range(9):
        t = START + timedelta(days=d)
        lab.backup(t)
        monkeypatch.setattr(retain, "FILE_OPS", failing if d == 7 else real)
        res = run_job(spec, at=t)
        assert res.status == ("Failed" if d == 7 else "Success")
        if d == 7:
            sunday = lab.chain("I")[-1]
            assert sunday.kind.value == "incremental"
            assert Repository(lab.dst).load("I", "vm1").facts["gfs_pending"]["point"] == sunday.id
    details = [a["detail"] for a in res.retention if a["action"] == "gfs-full"]
    assert details == ["W full (synthetic), finished after an interrupted run"]
    chain = lab.chain("I")
    weekly = [(p.time, p.gfs_dates["W"]) for p in chain if "W" in p.gfs]
    assert weekly == [(START, "2026-11-01"), (START + timedelta(days=7), "2026-11-08")]
    sim = simulate("I", spec.retention, spec.mode, START, 9, Sizing(10, 1))
    assert shape(chain) == shape(sim.days[-1].points)
    lab.check_exports("I")
