"""kill -9 of `ferry run` during a merge and during a GFS synthetic full.

The run is a real subprocess (`ferry run JOB --at ...`) killed inside the transform:
`paused_run.py` stops it at a chosen step of the merge or synthesis (before the k-th
block written, after the new data is committed but not named, after the metadata
names it but before the replaced file is deleted) and the test kills it there, so
every kill lands inside the transform by construction, on a loaded machine too (the
counts are of kills, not of wall-clock luck). The steps are drawn from a seeded
random generator. After every kill each point the target metadata names exports
exactly the source point it was copied from; a rerun finishes the transform and
leaves the chain the rules (and `ferry preview`) say, and no leftover file.
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
from engine.jobs.load import load_job
from engine.repository.repository import Repository
from engine.simulate import Sizing, simulate

from .replaykit import START, Lab, shape

BLOCKS = 16  # 4 MiB: the kills are placed by step, so the transforms need not be slow
CHANGED = 40  # random block writes per day: ~90% of the blocks change
PAUSED_RUN = Path(__file__).with_name("paused_run.py")


def _launch(job: Path, when) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(job), "--json",
                             "--at", when.isoformat()], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(job: Path, when) -> dict:
    p = _launch(job, when)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    return json.loads(out)


def _kill_at(job: Path, when, op: str, step: str, marker: Path) -> str:
    """Run the job in a process that stops at `step` of the `op` transform, and kill -9
    it there. Returns where it stood (the marker's text)."""
    marker.unlink(missing_ok=True)
    p = subprocess.Popen([sys.executable, str(PAUSED_RUN), op, step, str(marker), "--",
                          "run", str(job), "--json", "--at", when.isoformat()], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 120
    while not marker.exists() and p.poll() is None and time.monotonic() < end:
        time.sleep(0.005)
    reached = marker.exists()
    p.send_signal(signal.SIGKILL)
    out, err = p.communicate(timeout=30)
    assert reached, f"the run never reached {op} step {step} (exit {p.returncode}): {err}"
    return marker.read_text()


def _check_all(lab: Lab, job: str) -> list:
    """Every point the metadata names: its file exists and it exports exactly."""
    points = lab.chain(job)
    folder = Repository(lab.dst).machine_dir(job, "vm1")
    for p in points:
        assert (folder / p.file).exists(), p.file
    lab.check_exports(job)
    return points


def _only_named(lab: Lab, job: str) -> None:
    """The machine folder holds what the metadata names and nothing else."""
    meta = Repository(lab.dst).load(job, "vm1")
    folder = Repository(lab.dst).machine_dir(job, "vm1")
    named = {"lock", "vm1.fbm"} | {p.file for p in meta.points}
    assert {f.name for f in folder.iterdir()} == named


def _steps(rng: random.Random, blocks: int, n: int) -> list[str]:
    """Two kills for the `n`-th transform: inside its block writes, then in turn after
    the commit of its data, after the metadata save ("saved" ends the transform, so it
    can only be last) and inside the block writes again."""
    return [str(rng.randrange(blocks)), ("commit", "saved", str(rng.randrange(blocks)))[n % 3]]


def test_kill_9_during_merge(tmp_path):
    """keep = 2 points: every run after the second merges a ~90% increment into the
    full. Each day's run is killed inside its merge, then its rerun (which has only the
    merge left) inside the merge again; a third run finishes it."""
    rng = random.Random(2)
    lab = Lab(tmp_path, blocks=BLOCKS, full_every=1000)
    job = lab.job("M", keep=2)
    spec = load_job(job)
    marker = tmp_path / "paused"
    for d in range(2):
        lab.backup(START + timedelta(days=d), mutate=CHANGED)
        assert run_job(spec, at=START + timedelta(days=d)).status == "Success"
    kills = []
    days = 4
    for d in range(2, 2 + days):
        t = START + timedelta(days=d)
        lab.backup(t, mutate=CHANGED)
        before = [x.source_point for x in lab.chain("M")]
        for step in _steps(rng, 8, d):  # a ~90% increment writes more than 8 blocks
            kills.append(_kill_at(job, t, "merge", step, marker))
            ids = [x.source_point for x in _check_all(lab, "M")]
            if step == "saved":  # merged and named: only the increment's file is left over
                assert ids == [before[-1], ids[-1]], ids
            else:  # not committed: the chain is as before, plus the day's new point
                assert ids[:-1] == before and len(ids) == 3, ids
        res = _finish(job, t)
        assert res["status"] == "Success"
        chain = lab.chain("M")
        assert [(x.kind.value, x.source_point) for x in chain] == \
            [("full", before[-1]), ("incremental", chain[-1].source_point)]
        assert lab.states[chain[-1].source_point] == bytes(lab.disks["vm1"].data)
        _check_all(lab, "M")
        _only_named(lab, "M")
    assert len(kills) == 2 * days and all(k.startswith("merge") for k in kills), kills
    print(f"merge: {len(kills)} kills inside a merge: {kills}")


def test_kill_9_during_gfs_synthetic_full(tmp_path):
    """Weekly GFS (synthetic): each Sunday's run copies the increment, then synthesizes
    a full. Kill it inside the synthesis, and its rerun (which resumes the interrupted
    full) inside the synthesis again; a third run finishes it."""
    rng = random.Random(3)
    lab = Lab(tmp_path, blocks=BLOCKS, full_every=1000)
    job = lab.job("G", keep=3, retention="""
[retention.gfs]
weekly = { keep_weeks = 2, day = "sunday" }
""")
    spec = load_job(job)
    repo = Repository(lab.dst)
    marker = tmp_path / "paused"
    kills = []
    days = 29  # GFS Sundays 7, 14, 21, 28 after the first full
    for d in range(days):
        t = START + timedelta(days=d)
        lab.backup(t, mutate=CHANGED if t.weekday() == 5 else 2)
        if d == 0 or t.weekday() != 6:
            assert run_job(spec, at=t).status == "Success"
            continue
        for step in _steps(rng, BLOCKS - 2, d // 7):  # the full: every non-zero block
            kills.append(_kill_at(job, t, "synthesize", step, marker))
            points = _check_all(lab, "G")
            new = points[-1]
            assert new.time == t, "the copied point is committed before the synthesis"
            # the intent is durable, so the next run finishes the full
            pending = repo.load("G", "vm1").facts.get("gfs_pending")
            assert pending == {"point": new.id, "flags": {"W": t.date().isoformat()},
                               "method": "synthetic", "assigned": t.date().isoformat()}
            assert new.kind.value == ("full" if step == "saved" else "incremental")
        res = _finish(job, t)
        finished = [a for a in res["retention"] if "interrupted" in a["detail"]]
        assert len(finished) == 1, res["retention"]
        new = lab.chain("G")[-1]
        assert (new.time, new.kind.value, new.gfs, new.gfs_dates, new.gfs_assigned) == \
            (t, "full", ["W"], {"W": t.date().isoformat()}, {"W": t.date().isoformat()})
        assert "gfs_pending" not in repo.load("G", "vm1").facts
        _check_all(lab, "G")
        _only_named(lab, "G")
    assert len(kills) == 8 and all(k.startswith("synthesize") for k in kills), kills
    # after all the kills and reruns the chain is what the preview shows
    sim = simulate("G", spec.retention, spec.mode, START, days, Sizing(10, 1))
    assert shape(lab.chain("G")) == shape(sim.days[-1].points)
    print(f"GFS: {len(kills)} kills inside a synthesis: {kills}")


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
