"""Issue 11: late GFS fulls, active fulls without new data, cycles switched off, and a
preview that follows the job's own calendar. Each case runs the real engine day by day
(`run_job(spec, at=...)` at the job's scheduled times) and compares every day's target
chain with `ferry preview`'s (`engine.simulate` with the same schedule, missed runs,
runs without a new source point and policy changes): 0 differing days.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from engine.gfs import expiry_for

from .replaykit import Lab, compare_with_preview, fast_dir, no_fsync, run_replay

JAN4 = datetime(2026, 1, 4, 22, 0)  # a Sunday


@pytest.fixture
def work(tmp_path, monkeypatch):
    no_fsync(monkeypatch)
    yield from fast_dir(tmp_path)


def _flagged(chain, flag: str) -> list:
    return [p for p in chain if flag in p.gfs]


def test_late_weekly_full_expires_from_the_day_it_was_assigned(work):
    """Keep 2 points, weekly on Sunday kept 1 week, no run on Sunday 2026-01-11: the
    Monday run makes the weekly full; it stands for 01-11 but was assigned 01-12, so its
    flag goes on 01-19 (01-12 + 7), not 01-18."""
    lab = Lab(work)
    job = lab.job("Late", keep=2, retention="""
[retention.gfs]
weekly = { keep_weeks = 1, day = "sunday" }
""")
    missed = date(2026, 1, 11)
    seen: dict[date, list] = {}
    rep = run_replay(lab, job, 20, start=JAN4, skip=lambda t: t.date() == missed,
                     on_day=lambda d, t, res: seen.__setitem__(t.date(), lab.chain("Late")))
    assert compare_with_preview(rep) == 20
    late = [p for p in seen[date(2026, 1, 12)] if p.gfs_dates.get("W") == "2026-01-11"]
    assert len(late) == 1 and late[0].time.date() == date(2026, 1, 12)
    assert late[0].gfs_assigned == {"W": "2026-01-12"}
    assert late[0].gfs_until == {"W": "2026-01-19"}
    ids = lambda day: {p.id for p in _flagged(seen[day], "W")}  # noqa: E731
    assert late[0].id in ids(date(2026, 1, 18)), "expired a day early (counted from 01-11)"
    assert late[0].id not in ids(date(2026, 1, 19))


def test_gfs_switched_on_mid_period_counts_from_the_day_it_was_made(work):
    """GFS (weekly Sunday, monthly first week kept 2 months) switched on Tuesday
    2026-01-06: the monthly full made that day stands for 01-04 and expires 03-07
    (01-06 + 2 months + 1 day), not 03-05."""
    lab = Lab(work)
    plain = lab.job("Mid", keep=3)
    gfs = lab.job("Mid", keep=3, file="Mid-gfs", retention="""
[retention.gfs]
weekly = { keep_weeks = 2, day = "sunday" }
monthly = { keep_months = 2, week = "first" }
""")
    start = datetime(2026, 1, 1, 22, 0)
    seen: dict[date, list] = {}
    rep = run_replay(lab, plain, 67, start=start, policy_from=((date(2026, 1, 6), gfs),),
                     on_day=lambda d, t, res: seen.__setitem__(t.date(), lab.chain("Mid")))
    assert compare_with_preview(rep) == 67
    monthly = [p for p in seen[date(2026, 1, 6)] if "M" in p.gfs]
    assert len(monthly) == 1
    m = monthly[0]
    assert (m.time.date(), m.gfs_dates["M"], m.gfs_assigned["M"], m.gfs_until["M"]) == \
        (date(2026, 1, 6), "2026-01-04", "2026-01-06", "2026-03-07")
    assert expiry_for("M", date(2026, 1, 6), 2) == date(2026, 3, 7)
    assert m.id in {p.id for p in _flagged(seen[date(2026, 3, 6)], "M")}
    assert m.id not in {p.id for p in _flagged(seen[date(2026, 3, 7)], "M")}


def test_active_gfs_full_without_a_new_source_point_reads_the_source(work):
    """method = active, source points Mon-Sat, the copy runs Sunday 2026-01-18 with no
    new point: the weekly full is read whole from the source (kind full, bytes read) and
    takes the place of Saturday's increment, as the preview shows."""
    lab = Lab(work)
    job = lab.job("Act", keep=3, retention="""
[retention.gfs]
weekly = { keep_weeks = 2, day = "sunday" }
method = "active"
""")
    start = datetime(2026, 1, 5, 22, 0)  # Monday
    rep = run_replay(lab, job, 14, start=start, no_new_point=lambda t: t.weekday() == 6)
    assert compare_with_preview(rep) == 14
    sunday = rep.sessions[date(2026, 1, 18)]
    task = sunday.tasks[0]
    assert task.kind == "full" and task.stats.read > 0, task.to_json()
    made = [a for a in sunday.retention if a["action"] == "gfs-full"]
    assert [a["detail"] for a in made] == ["W full (active)"]
    chain = lab.chain("Act")
    weekly = [p for p in chain if p.gfs_dates.get("W") == "2026-01-18"]
    assert len(weekly) == 1 and weekly[0].kind.value == "full"
    assert weekly[0].time == datetime(2026, 1, 17, 22, 0)  # Saturday's state, read again
    assert weekly[0].gfs_assigned == {"W": "2026-01-18"}
    lab.check_exports("Act")


def test_weekly_cycle_switched_off_keeps_its_fulls_until_their_expiry(work):
    """Weekly fulls of 01-11 and 01-18; GFS switched off on 01-20: both keep their flag
    until the expiry they were given (01-11 + 4 weeks, 01-18 + 4 weeks), then go; the
    preview says so on the day of the change."""
    lab = Lab(work)
    gfs = lab.job("Off", keep=3, retention="""
[retention.gfs]
weekly = { keep_weeks = 4, day = "sunday" }
""")
    plain = lab.job("Off", keep=3, file="Off-plain")
    start = datetime(2026, 1, 9, 22, 0)
    seen: dict[date, list] = {}
    rep = run_replay(lab, gfs, 45, start=start, policy_from=((date(2026, 1, 20), plain),),
                     on_day=lambda d, t, res: seen.__setitem__(t.date(), lab.chain("Off")))
    assert compare_with_preview(rep) == 45
    kept = {p.gfs_dates["W"]: p for p in _flagged(seen[date(2026, 1, 21)], "W")}
    assert set(kept) == {"2026-01-11", "2026-01-18"}
    assert {d: p.gfs_until["W"] for d, p in kept.items()} == \
        {"2026-01-11": "2026-02-08", "2026-01-18": "2026-02-15"}
    assert [p.gfs_dates["W"] for p in _flagged(seen[date(2026, 2, 7)], "W")] == \
        ["2026-01-11", "2026-01-18"]
    assert [p.gfs_dates["W"] for p in _flagged(seen[date(2026, 2, 8)], "W")] == ["2026-01-18"]
    assert not _flagged(seen[date(2026, 2, 15)], "W")
    # the preview says it on the day of the change
    from engine.simulate import Sizing, simulate

    sim = simulate("Off", rep.spec.retention, "periodic", start, 45, Sizing(10, 1),
                   schedule=rep.spec.schedule, changes=rep.changes)
    day = next(d for d in sim.days if d.date == date(2026, 1, 20))
    assert any(line.startswith("2 weekly fulls stay until 2026-02-15") for line in day.actions), \
        day.actions


def test_weekdays_only_schedule_matches_the_preview(work):
    """days = mon..fri with a Sunday weekly cycle: the weekly full is made on Monday
    (the missed GFS day caught up) and the preview, replaying the schedule, agrees on
    every day (it used to step daily: 5 of 14 days differed)."""
    lab = Lab(work)
    job = lab.job("Weekdays", keep=4, schedule='days = ["mon", "tue", "wed", "thu", "fri"]',
                  retention="""
[retention.gfs]
weekly = { keep_weeks = 2, day = "sunday" }
""")
    rep = run_replay(lab, job, 28, start=JAN4)
    assert compare_with_preview(rep) == 28
    assert not any(d.weekday() >= 5 for d in rep.sessions)
    made = sorted(d for d, res in rep.sessions.items()
                  if any(a["action"] == "gfs-full" for a in res.retention))
    assert made and all(d.weekday() == 0 for d in made), made


def test_every_12h_schedule_matches_the_preview(work):
    """every = "12h": runs at 00:00 and 12:00; the source backs up at the same times
    except at noon on weekends (runs without a new source point). 0 differing days."""
    lab = Lab(work)
    job = lab.job("Twice", keep=5, schedule='every = "12h"', retention="""
[retention.gfs]
weekly = { keep_weeks = 2, day = "wednesday" }
""")
    start = datetime(2026, 1, 5, 0, 0)
    rep = run_replay(lab, job, 21, start=start,
                     no_new_point=lambda t: t.weekday() >= 5 and t.hour == 12)
    assert compare_with_preview(rep) == 21
    assert len(rep.runs) == 42
    assert {r.started.hour for r in rep.runs} == {0, 12}


@pytest.mark.parametrize("minimum", [1, 5])
def test_days_mode_minimum_is_the_jobs_min_points(work, minimum):
    """keep = 2 days with `min_points`: after a 10-day outage the chain keeps exactly
    `min_points` points (the newest always), as the preview shows."""
    lab = Lab(work)
    job = lab.job(f"Min{minimum}", keep=2, retention=f'unit = "days"\nmin_points = {minimum}')
    outage = {date(2026, 1, 12) + timedelta(days=d) for d in range(10)}
    rep = run_replay(lab, job, 24, start=JAN4, skip=lambda t: t.date() in outage)
    assert compare_with_preview(rep) == 24
    assert len(rep.real[18]) == minimum  # 01-22, the first run after the outage
