"""Copy windows per weekday: the reference product's weekday x hour grid (issue 15)."""

from __future__ import annotations

from datetime import datetime

import pytest

from engine.jobs.load import JobFileError, load_job
from engine.jobs.save import save_job
from engine.schedule import ScheduleSpec, in_window, window_end, window_open

# 2026-01-05 is a Monday
MON, TUE, SAT, SUN = (datetime(2026, 1, d) for d in (5, 6, 10, 11))


def at(day: datetime, hhmm: str) -> datetime:
    h, m = hhmm.split(":")
    return day.replace(hour=int(h), minute=int(m))


WEEK = ScheduleSpec(window=["mon 20:00-06:00", "sat 00:00-24:00"])


@pytest.mark.parametrize(("day", "hhmm", "open_"), [
    (MON, "19:59", False), (MON, "20:00", True), (TUE, "05:59", True), (TUE, "06:00", False),
    (TUE, "20:00", False), (SAT, "00:00", True), (SAT, "23:59", True), (SUN, "00:00", False),
])
def test_weekday_windows(day, hhmm, open_):
    assert in_window(WEEK, at(day, hhmm)) is open_


def test_weekday_window_closes_and_opens_across_days():
    assert window_end(WEEK, at(MON, "22:00")) == at(TUE, "06:00")
    assert window_end(WEEK, at(SAT, "10:00")) == at(SUN, "00:00")
    assert window_open(WEEK, at(TUE, "06:00")) == at(SAT, "00:00")
    assert window_open(WEEK, at(SUN, "12:00")) == datetime(2026, 1, 12, 20, 0)  # next Monday


def test_every_day_and_weekday_windows_mix():
    spec = ScheduleSpec(window=["01:00-02:00", "sun 12:00-13:00"])
    assert in_window(spec, at(TUE, "01:30")) and in_window(spec, at(SUN, "12:30"))
    assert not in_window(spec, at(SAT, "12:30"))


def _job(tmp_path, schedule: str):
    (tmp_path / "src").mkdir(exist_ok=True)
    path = tmp_path / "job.toml"
    path.write_text('name = "j"\n[source]\nrepository = "src"\njobs = ["a"]\n'
                    '[target]\nrepository = "dst"\n[retention]\nkeep = 3\n' + schedule)
    return path


def test_job_file_weekday_table_round_trips(tmp_path):
    path = _job(tmp_path, '[schedule]\nwindow = { mon = ["20:00-06:00"], '
                          'saturday = ["00:00-24:00"] }\n')
    spec = load_job(path)
    assert spec.schedule.window == ["mon 20:00-06:00", "sat 00:00-24:00"]
    save_job(spec, path)
    assert load_job(path).schedule.window == spec.schedule.window
    assert "mon" in path.read_text() and "sat" in path.read_text()


@pytest.mark.parametrize(("window", "words"), [
    ('{ mon = ["20:00"] }', "window"), ('{ funday = ["20:00-06:00"] }', "weekday"),
    ('{ mon = "20:00-06:00" }', "list"), ("{}", "never open"), ('["xyz 20:00-06:00"]', "weekday"),
])
def test_job_file_bad_weekday_windows(tmp_path, window, words):
    path = _job(tmp_path, f"[schedule]\nwindow = {window}\n")
    with pytest.raises(JobFileError) as err:
        load_job(path)
    text = str(err.value)
    assert "window" in text and words in text and "job.toml:" in text
