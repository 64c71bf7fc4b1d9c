"""An immutable job (`[storage] immutable_days > 0`) is forward incremental with periodic
synthetic fulls: real copy runs compared day by day with `ferry preview`'s chain (the
same `periodic_full_due` rule in `apply_retention` and `simulate.run_once`), every
retained point exported byte for byte after synthetic fulls and chain deletions."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pytest

from engine.repository import immutable
from engine.repository.repository import Repository
from engine.simulate import simulate
from engine.sizing import Sizing

from .replaykit import Lab, compare_with_preview, fast_dir, no_fsync, run_replay

PAST = datetime(2026, 6, 7, 22, 0)  # a Sunday, months before the wall clock


@pytest.fixture
def work(tmp_path, monkeypatch):
    no_fsync(monkeypatch)
    yield from fast_dir(tmp_path)


def _actions(rep, kind: str) -> list[dict]:
    return [a for res in rep.runs for a in res.retention if a["action"] == kind]


def _chains(shape: list[tuple]) -> list[list[tuple]]:
    out: list[list[tuple]] = []
    for p in shape:
        if p[1] == "full" or not out:
            out.append([])
        out[-1].append(p)
    return out


def test_immutable_job_makes_a_synthetic_full_a_week_and_deletes_whole_chains(work):
    """keep = 2, immutable_days = 3: never a merge; the run's increment becomes a
    synthetic full when the newest full is 7 days old (max(3, 7)); an older chain goes
    as a whole once its newest point is past its 3 days, never a full a kept increment
    reads. The chain never holds more than two chains."""
    lab = Lab(work)
    job = lab.job("Imm", keep=2, storage="immutable_days = 3")
    rep = run_replay(lab, job, 45, start=PAST, check_every=4)
    assert compare_with_preview(rep) == 45
    made = _actions(rep, "synthetic-full")
    assert [r.tasks[0].kind for r in rep.runs].count("full") == 1  # only the first is copied whole
    assert len(made) == 6  # days 7, 14, ..., 42
    assert all("the newest full is 7 days old" in a["detail"] for a in made)
    assert not _actions(rep, "merge")
    deleted = _actions(rep, "delete-chain")
    assert len(deleted) == 6 and all(len(a["point"].split(",")) == 7 for a in deleted)
    for day, shape in enumerate(rep.real):
        chains = _chains(shape)
        assert shape[0][1] == "full" and len(chains) <= 2, (day, shape)
        newest = shape[-1][0]
        if len(chains) == 2:  # the older chain stays only while its last point is locked
            assert chains[0][-1][0] + timedelta(days=3) >= newest - timedelta(days=1), day
    assert rep.exports_checked >= 45


def test_immutable_with_monthly_gfs_skips_and_no_new_points_match_the_preview(work):
    """immutable_days = 5 with a monthly GFS cycle, missed runs and runs without a new
    source point: the weekly periodic full and the GFS fulls share one chain rule (the
    newest full counts, whichever made it), a run without a new point makes no periodic
    full (its latest point was retained already), the background pass never makes one."""
    first = PAST.date()
    skipped = {first + timedelta(days=d) for d in (3, 9, 10, 30)}
    nothing_new = {first + timedelta(days=d) for d in (6, 7, 8, 20, 21, 40)}
    lab = Lab(work)
    job = lab.job("ImmGfs", keep=3, storage="immutable_days = 5", retention="""
[retention.gfs]
monthly = { keep_months = 2, week = "first" }
""")
    rep = run_replay(lab, job, 70, start=PAST, check_every=7, background=True,
                     skip=lambda t: t.date() in skipped,
                     no_new_point=lambda t: t.date() in nothing_new)
    assert compare_with_preview(rep) == 70
    made = _actions(rep, "synthetic-full")
    gfs = _actions(rep, "gfs-full")
    assert made and gfs and not _actions(rep, "merge")
    for res in rep.runs:
        if res.tasks[0].kind == "none":  # nothing new: no periodic full of an old point
            assert not [a for a in res.retention if a["action"] == "synthetic-full"]
    for res in rep.passes.values():
        assert not [a for a in res.retention if a["action"] == "synthetic-full"]
    assert rep.exports_checked >= 70


def test_periodic_fulls_up_to_the_wall_clock_hold_the_immutable_attribute(work):
    """Runs dated up to today, so the last points are still immutable by the wall clock
    (as root on a file system with the attribute, their files carry it while a synthetic
    full replaces the new increment and old chains go): the chain still matches the
    preview, and the files of the still-locked points are immutable."""
    start = datetime.combine(date.today() - timedelta(days=17), time(1, 0))
    lab = Lab(work)
    job = lab.job("ImmNow", keep=2, storage="immutable_days = 3")
    try:
        rep = run_replay(lab, job, 17, start=start, check_every=5)
        assert compare_with_preview(rep) == 17
        assert len(_actions(rep, "synthetic-full")) == 2
        assert len(_actions(rep, "delete-chain")) == 2  # the second by the last run
        meta = Repository(lab.dst).load("ImmNow", "vm1")
        folder = Repository(lab.dst).machine_dir("ImmNow", "vm1")
        probe = folder / "probe"
        probe.write_bytes(b"x")
        if immutable.set_immutable(probe, True):
            immutable.set_immutable(probe, False)
            locked = [p for p in meta.points if immutable.immutable_now(meta, p.id)]
            assert locked and all(immutable.is_immutable(folder / p.file) for p in locked)
        probe.unlink()
    finally:
        for f in lab.dst.rglob("*"):
            if f.is_file():
                immutable.set_immutable(f, False)


@pytest.mark.parametrize("method", ["synthetic", "active"])
def test_a_gfs_day_without_a_new_point_leaves_the_locked_point_and_waits(work, method):
    """A weekly GFS Sunday whose run finds no new source point, in an immutable job: the
    latest point was retained (its files may be locked), so the run neither synthesizes
    over it nor reads it again (active) to replace it; the weekly full is made from the
    next new point, standing for that Sunday, and `ferry preview` says and does the
    same."""
    first = PAST.date()
    nothing_new = {first + timedelta(days=d) for d in (7, 21)}
    lab = Lab(work)
    job = lab.job(f"ImmW{method}", keep=3, storage="immutable_days = 3", retention=f"""
[retention.gfs]
weekly = {{ keep_weeks = 3, day = "sunday" }}
method = "{method}"
""")
    seen: dict[int, tuple] = {}

    def latest(d, when, res):
        p = lab.chain(f"ImmW{method}")[-1]
        path = Repository(lab.dst).machine_dir(f"ImmW{method}", "vm1") / p.file
        seen[d] = (p.id, p.file, p.kind.value, path.stat().st_ino, path.read_bytes())

    rep = run_replay(lab, job, 28, start=PAST, check_every=7,
                     no_new_point=lambda t: t.date() in nothing_new, on_day=latest)
    assert compare_with_preview(rep) == 28
    for sunday in (7, 21):
        assert seen[sunday] == seen[sunday - 1]  # same point, same untouched file
        res = rep.sessions[first + timedelta(days=sunday)]
        assert res.tasks[0].kind == "none"  # nothing read again from the source
        waits = [a for a in res.retention if a["action"] == "gfs-waits"]
        assert [a["detail"] for a in waits] == [
            "weekly full waits for the next new point: the latest point was retained and "
            "is immutable (immutable_days = 3)"]
        assert not [a for a in res.retention if a["action"] == "gfs-full"]
        after = rep.sessions[first + timedelta(days=sunday + 1)]
        made = [a for a in after.retention if a["action"] == "gfs-full"]
        assert len(made) == 1 and made[0]["point"] == after.tasks[0].point
        sunday_date = first + timedelta(days=sunday)
        assert rep.real[sunday + 1][-1][1:] == ("full", "W")
        monday = sunday_date + timedelta(days=1)
        assert rep.real_dates[sunday + 1][-1][1:] == ((("W", sunday_date.isoformat()),),
                                                       (("W", monday.isoformat()),))
    spec = rep.spec
    sim = simulate(spec.name, spec.retention, spec.mode, rep.start, rep.days, Sizing(10, 1),
                   schedule=spec.schedule, no_new_point=rep.no_new_point)
    for sunday in (7, 21):
        day = sim.days[sunday]
        assert "weekly full waits for the next new point: the latest point was retained " \
            "and is immutable (immutable_days = 3)" in day.actions, day.actions
    assert rep.exports_checked >= 28
