"""Hundreds of days of real copy runs compared, day by day, with `ferry preview`.

Each day the source takes a backup at 22:00 and the copy job runs at the same time
(`run_job(spec, at=...)`); the target chain is then compared with the chain
`engine.simulate` shows for that day: the same point times, kinds and GFS flags
(and the GFS day each flag stands for). At the end (and every few weeks) every
retained point is exported and compared byte for byte with the source point it
was copied from.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import pytest

from .replaykit import START, Lab, compare_with_preview, fast_dir, no_fsync, run_replay


@pytest.fixture
def work(tmp_path, monkeypatch):
    no_fsync(monkeypatch)
    yield from fast_dir(tmp_path)

GFS_WMY = """
[retention.gfs]
weekly = { keep_weeks = 4, day = "sunday" }
monthly = { keep_months = 3, week = "first" }
yearly = { keep_years = 1, month = "january" }
"""


def _actions(rep, kind: str) -> list[dict]:
    return [a for res in rep.sessions.values() for a in res.retention if a["action"] == kind]


def test_keep_points_without_gfs_merges_every_day(work):
    """keep = 7 points, no GFS: forever-forward; from day 8 on every run merges the oldest
    increment into the full, so the chain is always 1 full + 6 increments."""
    lab = Lab(work)
    rep = run_replay(lab, lab.job("Points", keep=7), 300, check_every=60)
    assert compare_with_preview(rep) == 300
    merges = _actions(rep, "merge")
    assert len(merges) == 300 - 7
    assert [k for _, k, _ in rep.real[-1]] == ["full"] + ["incremental"] * 6
    assert rep.real[-1][0][0] == START + timedelta(days=293)  # the full moved forward
    assert rep.exports_checked >= 7 * 6


def test_days_unit_with_missed_days_and_compact(work):
    """keep = 5 days: the day of the run is not counted (6 calendar days), days without
    runs count, at least 3 points stay (a 10-day outage leaves 3). A weekly compact of
    the full runs along and changes nothing the preview shows."""
    rng = random.Random(11)
    missed = {START.date() + timedelta(days=d) for d in range(2, 250) if rng.random() < 0.15}
    outage = {START.date() + timedelta(days=d) for d in range(120, 130)}
    skip_days = missed | outage

    def skip(t: datetime) -> bool:
        return t.date() in skip_days

    lab = Lab(work)
    job = lab.job("Days", keep=5, retention='unit = "days"', storage='compact = "sunday 04:00"')
    rep = run_replay(lab, job, 250, skip=skip, check_every=50)
    assert compare_with_preview(rep, skip) == 250
    back = 130 if (START.date() + timedelta(days=130)) not in skip_days else 131
    assert len(rep.real[back]) == 3  # the 3-point minimum after the outage
    for chain in rep.real[10:]:
        assert len(chain) >= 3
        newest = chain[-1][0].date()
        for t, _, _ in chain[:-3]:
            assert (newest - t.date()).days <= 5 + 10  # N days + the run's day (+ outage)
    compacts = _actions(rep, "compact")
    assert len(compacts) >= 25, "a weekly compact over 35 weeks"


def test_gfs_weekly_monthly_yearly_synthetic(work):
    """GFS W4/M3/Y1 with synthetic fulls, 430 days from a Sunday: a forward chain per
    weekly full, flags expiring on their dates, yearly flags on the first Sunday of
    January 2027 and 2028 (monthly rides on weekly, yearly on monthly)."""
    lab = Lab(work)
    job = lab.job("GFS", keep=7, retention=GFS_WMY)
    rep = run_replay(lab, job, 430, check_every=70)
    assert compare_with_preview(rep) == 430
    kinds = {d: res.tasks[0].kind for d, res in rep.sessions.items()}
    sundays = [d for d in kinds if d.weekday() == 6]
    assert all(kinds[d] == "incremental" for d in sundays[1:]), "synthetic: copy the increment"
    assert len(_actions(rep, "gfs-full")) == len(sundays)
    seen_y = {t.date() for chain in rep.real for t, _, f in chain if "Y" in f}
    assert seen_y == {date(2027, 1, 3), date(2028, 1, 2)}
    last = rep.real[-1]
    assert sum("W" in f for _, _, f in last) == 4
    assert sum("M" in f for _, _, f in last) == 3
    assert [t.date() for t, _, f in last if "Y" in f] == [date(2028, 1, 2)]
    assert _actions(rep, "expire-flag") and _actions(rep, "delete-chain")
    assert not _actions(rep, "merge")


def test_gfs_active_full(work):
    """GFS with method = "active": the GFS day's point is read whole from the source."""
    lab = Lab(work)
    job = lab.job("Active", keep=5, retention="""
[retention.gfs]
weekly = { keep_weeks = 3, day = "wednesday" }
monthly = { keep_months = 2, week = "last" }
method = "active"
""")
    rep = run_replay(lab, job, 150, check_every=50)
    assert compare_with_preview(rep) == 150
    for d, res in rep.sessions.items():
        expect = "full" if d.weekday() == 2 or d == START.date() else "incremental"
        assert res.tasks[0].kind == expect, d
    assert {a["detail"] for a in _actions(rep, "gfs-full")} >= {"W full (active)",
                                                                "W+M full (active)"}


GFS_WM = """
[retention.gfs]
weekly = { keep_weeks = 3, day = "sunday" }
monthly = { keep_months = 2, week = "first" }
"""


@pytest.mark.parametrize("mode", ["immediate", "periodic"])
def test_missed_gfs_days_immediate_skips_periodic_catches_up(work, mode):
    """No source backup and no run on some days, GFS Sundays among them. Immediate mode
    makes no GFS full for a day it did not run; periodic makes it at the next run,
    flagged with the GFS day it stands for. Both match the preview every day."""
    first = START.date()
    skipped = {first + timedelta(days=d) for d in (7, 8, 21, 34, 35, 36, 63, 90, 91, 140)}
    skipped |= {first + timedelta(days=d) for d in range(96, 106)}  # incl. a "first week"

    def skip(t: datetime) -> bool:
        return t.date() in skipped

    lab = Lab(work)
    job = lab.job(f"Miss-{mode}", keep=4, mode=mode, retention=GFS_WM)
    rep = run_replay(lab, job, 200, skip=skip, check_every=40)
    assert compare_with_preview(rep, skip) == 200
    missed_sundays = sorted(d for d in skipped if d.weekday() == 6)
    assert len(missed_sundays) >= 4
    flagged = {}  # GFS day -> day of the run that made the full
    for res_day, res in rep.sessions.items():
        for a in res.retention:
            if a["action"] == "gfs-full":
                flagged[res_day] = a
    made_for = set()
    for chain_dates in rep.real_dates:
        for t, dates, _assigned in chain_dates:
            for _, d in dates:
                made_for.add((date.fromisoformat(d), t.date()))
    for sunday in missed_sundays:
        late = [(d, t) for d, t in made_for if d == sunday]
        if mode == "immediate":
            assert not late, f"immediate mode made a W full for {sunday}, a day it did not run"
        else:
            assert late and all(t > sunday for _, t in late), sunday
            assert all(t == min(x for x in rep.sessions if x > sunday) for _, t in late)
