"""A run on a GFS day that has no new source point to copy.

Research notes section 6, edge cases [doc]: "If nothing new arrived since the last run
on a GFS day, the GFS full is built from the latest available chain (no new source data
needed)." Such a run records `last_run`, so if it made no GFS full the periodic catch-up
of the next run would not make it either and that week would have no weekly full.
The same path covers a run whose retention step failed after its point was copied
(the retry or rerun has nothing new to copy).
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from copyjob.conftest import write_job

import engine.copy.retain as retain
from engine.copy.runner import run_job
from engine.jobs.load import load_job

from .replaykit import SOURCE_JOB, START, Lab, fast_dir, no_fsync

GFS_W = """
[retention.gfs]
weekly = { keep_weeks = 2, day = "sunday" }

[transport]
retries = 0
"""
SUNDAY = START + timedelta(days=7)  # 2026-11-08

BUG = ("engine bug: engine/copy/session.py plans GFS only when the run copies a point "
       "(`gfs_flags = self._gfs_plan(state, now) if items else []` and "
       "`self._retain(now, gfs_flags if items else {}, base)`)")


@pytest.fixture
def work(tmp_path, monkeypatch):
    no_fsync(monkeypatch)
    yield from fast_dir(tmp_path)


def _job(lab: Lab, name: str):
    return load_job(write_job(lab.root / f"{name}.toml", name, lab.src, [SOURCE_JOB], lab.dst,
                              extra=GFS_W, keep=3))


def _week_before(lab: Lab, spec) -> None:
    for d in range(7):
        t = START + timedelta(days=d)
        lab.backup(t)
        assert run_job(spec, at=t).status == "Success"


def test_gfs_day_without_new_source_point_builds_the_full_from_the_latest_chain(work):
    lab = Lab(work)
    spec = _job(lab, "NoNew")
    _week_before(lab, spec)
    # Sunday: the source job did not run; the copy job runs at its time
    res = run_job(spec, at=SUNDAY)
    assert res.status == "Success" and res.tasks[0].kind == "none"
    lab.backup(SUNDAY + timedelta(days=1))
    assert run_job(spec, at=SUNDAY + timedelta(days=1)).status == "Success"
    weekly = {date.fromisoformat(p.gfs_dates["W"]) for p in lab.chain("NoNew") if "W" in p.gfs}
    assert SUNDAY.date() in weekly, f"no weekly full stands for {SUNDAY.date()}: {weekly}"
    lab.check_exports("NoNew")


def test_gfs_day_whose_retention_failed_gets_its_full_at_the_rerun(work, monkeypatch):
    lab = Lab(work)
    spec = _job(lab, "Fail")
    _week_before(lab, spec)
    lab.backup(SUNDAY)
    real = retain.apply_retention
    calls = []

    def once_broken(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk full")  # e.g. no room for the synthetic full
        return real(*args, **kwargs)

    monkeypatch.setattr(retain, "apply_retention", once_broken)
    assert run_job(spec, at=SUNDAY).status == "Failed"
    assert lab.chain("Fail")[-1].time == SUNDAY  # the point was copied
    assert run_job(spec, at=SUNDAY).status == "Success"  # the rerun: nothing new to copy
    new = lab.chain("Fail")[-1]
    assert (new.kind.value, new.gfs) == ("full", ["W"])
