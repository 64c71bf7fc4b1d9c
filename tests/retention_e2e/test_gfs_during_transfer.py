"""Issue 11 item 7: a GFS full falls due while a periodic run is still transferring.

The reference product finishes the transfer, warns, then makes the GFS full (notes
section 6: synthetic: copy the increment, then synthesize; active: copy the full).
A replay's clock is `--at` plus the run's elapsed time, so a run started one
microsecond before Sunday 00:00 ends on Sunday, the weekly GFS day, on every machine.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from engine.copy.runner import run_job
from engine.jobs.load import load_job

from .replaykit import Lab, fast_dir, no_fsync

MON = datetime(2026, 1, 5, 22, 0)
SAT_LATE = datetime(2026, 1, 10, 23, 59, 59, 999999)  # the run ends on Sunday 01-11
SUN = date(2026, 1, 11)


@pytest.fixture
def work(tmp_path, monkeypatch):
    no_fsync(monkeypatch)
    yield from fast_dir(tmp_path)


def _job(lab: Lab, method: str):
    return load_job(lab.job("T", keep=3, retention=f"""
[retention.gfs]
weekly = {{ keep_weeks = 2, day = "sunday" }}
method = "{method}"
"""))


def _week_of_runs(lab: Lab, spec) -> None:
    for d in range(5):  # Mon..Fri at 22:00: a full, then increments; no GFS day yet
        t = MON + timedelta(days=d)
        lab.backup(t)
        assert run_job(spec, at=t).status == "Success"
    assert not any(p.gfs for p in lab.chain("T"))
    lab.backup(datetime(2026, 1, 10, 23, 0))  # Saturday's source point


@pytest.mark.parametrize("method", ["synthetic", "active"])
def test_gfs_full_due_during_a_transfer_is_made_after_it_with_a_warning(work, method):
    lab = Lab(work)
    spec = _job(lab, method)
    _week_of_runs(lab, spec)
    res = run_job(spec, at=SAT_LATE)
    assert res.finished.date() == SUN, res.to_json()
    task = res.tasks[0]
    assert (res.status, task.status) == ("Warning", "Warning"), res.to_json()
    assert "weekly GFS full fell due at 00:00 while the run" in task.message
    assert "it is made after the transfer" in task.message
    made = [a for a in res.retention if a["action"] == "gfs-full"]
    assert [a["detail"] for a in made] == [f"W full ({method})"]
    chain = lab.chain("T")
    weekly = [p for p in chain if "W" in p.gfs]
    assert len(weekly) == 1
    w = weekly[0]
    # the copied point (Saturday 23:00's state) is the full; its flag counts from Sunday
    assert (w.kind.value, w.time, w.id) == ("full", datetime(2026, 1, 10, 23, 0), chain[-1].id)
    assert (w.gfs_dates, w.gfs_assigned, w.gfs_until) == (
        {"W": "2026-01-11"}, {"W": "2026-01-11"}, {"W": "2026-01-25"})
    if method == "active":  # read whole from the source after the increment
        assert task.kind == "full"
        assert task.stats.read >= w.size
    lab.check_exports("T")
    # Sunday's own run does not make a second weekly full: the GFS day counts once
    lab.backup(datetime(2026, 1, 11, 22, 0))
    sunday = run_job(spec, at=datetime(2026, 1, 11, 22, 0))
    assert sunday.status == "Success", sunday.to_json()
    assert not [a for a in sunday.retention if a["action"] == "gfs-full"]
    assert [p.id for p in lab.chain("T") if "W" in p.gfs] == [w.id]


def test_a_transfer_that_ends_on_the_same_day_says_nothing(work):
    """The same run started a second earlier on Saturday 22:00 ends on Saturday: no
    warning, no weekly full (it comes with Sunday's run)."""
    lab = Lab(work)
    spec = _job(lab, "synthetic")
    _week_of_runs(lab, spec)
    res = run_job(spec, at=datetime(2026, 1, 10, 23, 30))
    assert res.status == "Success" and not res.tasks[0].message.startswith("the weekly")
    assert not [a for a in res.retention if a["action"] == "gfs-full"]
    assert not any(p.gfs for p in lab.chain("T"))
