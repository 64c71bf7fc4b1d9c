"""Periodic schedule, copy window and health-check slots (research notes sections 4 and 9)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.schedule import (
    HealthSchedule,
    ScheduleSpec,
    check_due,
    due_runs,
    in_window,
    last_occurrence,
    next_occurrence,
    next_run,
    parse_health_check,
    parse_window,
    run_due,
    window_end,
    window_open,
)

D = datetime  # 2026-11-24 is a Tuesday; 2026-11-29 and 2026-12-27 are Sundays


def hours(runs: list[datetime]) -> list[str]:
    return [r.strftime("%a %H:%M") for r in runs]


# --------------------------------------------------------------------------------------
# Periodic runs.


def test_default_is_daily_at_2200() -> None:
    spec = ScheduleSpec()
    assert next_run(spec, D(2026, 11, 24, 9, 0)) == D(2026, 11, 24, 22, 0)
    assert next_run(spec, D(2026, 11, 24, 22, 0)) == D(2026, 11, 25, 22, 0)  # strictly after
    assert next_run(ScheduleSpec(daily_at=None), D(2026, 11, 24)) == D(2026, 11, 24, 22, 0)


def test_daily_with_days_filter() -> None:
    spec = ScheduleSpec(daily_at="06:15", days=["mon", "thu"])
    runs = due_runs(spec, D(2026, 11, 24), D(2026, 12, 8))
    assert hours(runs) == ["Thu 06:15", "Mon 06:15", "Thu 06:15", "Mon 06:15"]
    assert runs[0] == D(2026, 11, 26, 6, 15)


def test_daily_for_a_year_is_365_runs() -> None:
    runs = due_runs(ScheduleSpec(daily_at="22:00"), D(2026, 1, 1), D(2027, 1, 1))
    assert len(runs) == 365 and runs[-1] == D(2026, 12, 31, 22, 0)


def test_every_2h_with_window_9_to_17_runs_at_9_10_12_14_16() -> None:
    """The worked example of the research notes (section 4)."""
    spec = ScheduleSpec(daily_at=None, every=7200, window=["09:00-17:00"])
    runs = due_runs(spec, D(2026, 11, 24), D(2026, 11, 25, 23, 59))
    assert hours(runs) == ["Tue 09:00", "Tue 10:00", "Tue 12:00", "Tue 14:00", "Tue 16:00",
                           "Wed 09:00", "Wed 10:00", "Wed 12:00", "Wed 14:00", "Wed 16:00"]


def test_every_counts_from_midnight_and_no_window_means_the_whole_grid() -> None:
    spec = ScheduleSpec(daily_at=None, every=5 * 3600)
    runs = due_runs(spec, D(2026, 11, 24, 1, 0), D(2026, 11, 25, 6, 0))
    assert [r.hour for r in runs] == [5, 10, 15, 20, 0, 5]  # the grid restarts at 00:00


def test_a_grid_point_at_the_window_opening_is_one_run() -> None:
    spec = ScheduleSpec(daily_at=None, every=7200, window=["10:00-13:00"])
    runs = due_runs(spec, D(2026, 11, 24), D(2026, 11, 24, 23, 0))
    assert [r.hour for r in runs] == [10, 12]


def test_every_with_a_window_across_midnight() -> None:
    spec = ScheduleSpec(daily_at=None, every=4 * 3600, window=["20:00-06:00"])
    runs = due_runs(spec, D(2026, 11, 24, 6, 0), D(2026, 11, 25, 6, 0))
    # 08, 12, 16 are denied and start once when the window opens at 20:00
    assert runs == [D(2026, 11, 24, 20, 0), D(2026, 11, 25, 0, 0), D(2026, 11, 25, 4, 0)]


def test_daily_start_in_a_denied_period_waits_for_the_window() -> None:
    spec = ScheduleSpec(daily_at="22:00", window=["01:00-05:00"])
    assert next_run(spec, D(2026, 11, 24, 12, 0)) == D(2026, 11, 25, 1, 0)
    assert next_run(spec, D(2026, 11, 25, 1, 0)) == D(2026, 11, 26, 1, 0)


def test_next_run_after_a_missed_denied_start_is_the_window_opening() -> None:
    spec = ScheduleSpec(daily_at=None, every=7200, window=["09:00-17:00"])
    assert next_run(spec, D(2026, 11, 24, 8, 30)) == D(2026, 11, 24, 9, 0)
    assert next_run(spec, D(2026, 11, 24, 9, 0)) == D(2026, 11, 24, 10, 0)
    assert next_run(spec, D(2026, 11, 24, 16, 0)) == D(2026, 11, 25, 9, 0)


def test_days_filter_applies_to_every() -> None:
    spec = ScheduleSpec(daily_at=None, every=12 * 3600, days=["sat", "sun"])
    runs = due_runs(spec, D(2026, 11, 24), D(2026, 12, 1))
    assert hours(runs) == ["Sat 00:00", "Sat 12:00", "Sun 00:00", "Sun 12:00"]


_specs = st.builds(
    ScheduleSpec,
    daily_at=st.sampled_from(["00:00", "06:30", "22:00", "23:59"]),
    every=st.sampled_from([None, 60.0, 1800.0, 7200.0, 5 * 3600.0, 86400.0]),
    days=st.lists(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]), max_size=3),
    window=st.lists(st.sampled_from(["09:00-17:00", "20:00-06:00", "00:00-24:00", "12:30-12:31"]),
                    max_size=2),
)


@settings(max_examples=200, deadline=None)
@given(spec=_specs, after=st.datetimes(min_value=D(2026, 1, 1), max_value=D(2027, 1, 1)))
def test_next_run_is_later_and_inside_the_window(spec: ScheduleSpec, after: datetime) -> None:
    t = next_run(spec, after)
    assert after < t <= after + timedelta(days=8)
    assert in_window(spec, t)
    runs = due_runs(spec, after, t + timedelta(hours=6))
    assert runs[0] == t and runs == sorted(set(runs))


# --------------------------------------------------------------------------------------
# Copy window.


def test_no_window_is_always_open() -> None:
    spec = ScheduleSpec()
    assert in_window(spec, D(2026, 11, 24, 3, 0))
    assert window_end(spec, D(2026, 11, 24, 3, 0)) is None
    assert window_open(spec, D(2026, 11, 24, 3, 0)) == D(2026, 11, 24, 3, 0)


def test_window_across_midnight() -> None:
    spec = ScheduleSpec(window=["20:00-06:00"])
    assert in_window(spec, D(2026, 11, 24, 20, 0))
    assert in_window(spec, D(2026, 11, 24, 23, 59, 59))
    assert in_window(spec, D(2026, 11, 25, 5, 59, 59))
    assert not in_window(spec, D(2026, 11, 25, 6, 0))  # the end is exclusive
    assert not in_window(spec, D(2026, 11, 24, 12, 0))
    assert window_end(spec, D(2026, 11, 24, 22, 30)) == D(2026, 11, 25, 6, 0)
    assert window_end(spec, D(2026, 11, 25, 1, 0)) == D(2026, 11, 25, 6, 0)
    assert window_end(spec, D(2026, 11, 24, 12, 0)) is None
    assert window_open(spec, D(2026, 11, 24, 12, 0)) == D(2026, 11, 24, 20, 0)


def test_adjacent_windows_are_one_period_and_a_full_day_never_ends() -> None:
    spec = ScheduleSpec(window=["18:00-24:00", "00:00-02:00", "12:00-13:00"])
    assert window_end(spec, D(2026, 11, 24, 19, 0)) == D(2026, 11, 25, 2, 0)
    assert window_end(spec, D(2026, 11, 24, 12, 10, 30)) == D(2026, 11, 24, 13, 0)
    assert window_end(ScheduleSpec(window=["00:00-24:00"]), D(2026, 11, 24, 5, 0)) is None


@pytest.mark.parametrize("text", ["9-17", "09:00", "09:00-09:00", "25:00-01:00", "10:00-24:30", ""])
def test_bad_windows(text: str) -> None:
    with pytest.raises(ValueError):
        parse_window(text)


# --------------------------------------------------------------------------------------
# Health check slots.


@pytest.mark.parametrize(("text", "expected"), [
    ("last sunday 05:00", HealthSchedule("monthly", 300, weekday=6, week="last")),
    ("Last Sun 5:00", HealthSchedule("monthly", 300, weekday=6, week="last")),
    ("first monday 03:00", HealthSchedule("monthly", 180, weekday=0, week="first")),
    ("sunday 05:00", HealthSchedule("weekly", 300, weekday=6)),
    ("daily 04:00", HealthSchedule("daily", 240)),
    ("saturday", HealthSchedule("weekly", 300, weekday=5)),
    ("on", HealthSchedule("monthly", 300, weekday=6, week="last")),
    ("off", None),
    (" OFF ", None),
])
def test_parse_health_check(text: str, expected: HealthSchedule | None) -> None:
    assert parse_health_check(text) == expected


@pytest.mark.parametrize("text", ["", "sometimes", "fifth sunday 05:00", "last funday", "daily 25:00",
                                  "last sunday 05:00 extra", "05:00"])
def test_parse_health_check_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="last sunday 05:00"):
        parse_health_check(text)


def test_health_check_text_is_canonical() -> None:
    for text in ("last sunday 05:00", "first monday 03:00", "sunday 05:00", "daily 04:00"):
        slot = parse_health_check(text)
        assert slot is not None and str(slot) == text


def test_last_sunday_across_months() -> None:
    h = parse_health_check("last sunday 05:00")
    assert h is not None
    assert last_occurrence(h, D(2026, 12, 1)) == D(2026, 11, 29, 5, 0)
    assert last_occurrence(h, D(2026, 11, 29, 4, 59)) == D(2026, 10, 25, 5, 0)
    assert next_occurrence(h, D(2026, 11, 29, 5, 0)) == D(2026, 12, 27, 5, 0)
    assert next_occurrence(h, D(2026, 12, 27, 6, 0)) == D(2027, 1, 31, 5, 0)
    assert next_occurrence(h, D(2027, 2, 1)) == D(2027, 2, 28, 5, 0)
    # checked on Nov 29: not due again until Dec 27, 05:00
    last = D(2026, 11, 29, 5, 10)
    assert not check_due(h, last, D(2026, 12, 15))
    assert not check_due(h, last, D(2026, 12, 27, 4, 59))
    assert check_due(h, last, D(2026, 12, 27, 5, 0))
    assert check_due(h, last, D(2027, 1, 3))  # missed while down: made up at the next call


def test_first_monday_and_weekly_and_daily() -> None:
    first = parse_health_check("first monday 03:00")
    weekly = parse_health_check("sunday 05:00")
    daily = parse_health_check("daily 04:00")
    assert first is not None and weekly is not None and daily is not None
    assert next_occurrence(first, D(2026, 11, 24)) == D(2026, 12, 7, 3, 0)
    assert last_occurrence(first, D(2026, 11, 24)) == D(2026, 11, 2, 3, 0)
    assert next_occurrence(weekly, D(2026, 11, 24)) == D(2026, 11, 29, 5, 0)
    assert check_due(daily, D(2026, 11, 24, 4, 0), D(2026, 11, 25, 4, 0))
    assert not check_due(daily, D(2026, 11, 24, 4, 0), D(2026, 11, 25, 3, 59))


def test_check_due_without_a_schedule_or_a_last_check() -> None:
    h = parse_health_check("sunday 05:00")
    assert not check_due(None, None, D(2026, 11, 24))
    assert check_due(h, None, D(2026, 11, 24))  # never checked


def test_run_due_after_the_next_start_inside_the_window() -> None:
    spec = ScheduleSpec(daily_at="22:00", window=["20:00-06:00"])
    last = D(2026, 11, 24, 22, 0)
    assert run_due(spec, None, D(2026, 11, 24, 21, 0))  # never ran
    assert not run_due(spec, None, D(2026, 11, 24, 12, 0))  # never ran, but window shut
    assert not run_due(spec, last, D(2026, 11, 25, 21, 59))
    assert run_due(spec, last, D(2026, 11, 25, 22, 0))
    assert run_due(spec, last, D(2026, 11, 26, 1, 0))  # missed at 22:00: still due inside
    assert not run_due(spec, last, D(2026, 11, 26, 12, 0))  # ... not outside the window


def _brute_force_runs(spec: ScheduleSpec, since: datetime, until: datetime) -> list[datetime]:
    """Minute-by-minute reference: a start sets 'pending'; pending runs once the window is open."""
    days = {["mon", "tue", "wed", "thu", "fri", "sat", "sun"].index(d) for d in spec.days} or set(range(7))
    starts = set()
    day = datetime.combine((since - timedelta(days=2)).date(), datetime.min.time())
    while day <= until:
        if day.weekday() in days:
            if spec.every is None:
                h, m = map(int, (spec.daily_at or "22:00").split(":"))
                starts.add(day.replace(hour=h, minute=m))
            else:
                k = 0
                while k * spec.every < 86400:
                    starts.add(day + timedelta(seconds=k * spec.every))
                    k += 1
        day += timedelta(days=1)
    runs, pending = [], False
    t = datetime.combine((since - timedelta(days=2)).date(), datetime.min.time())
    while t <= until:
        pending = pending or t in starts
        if pending and in_window(spec, t):
            if t > since:
                runs.append(t)
            pending = False
        t += timedelta(minutes=1)
    return runs


@settings(max_examples=60, deadline=None)
@given(spec=_specs, since=st.datetimes(min_value=D(2026, 1, 1), max_value=D(2027, 1, 1)))
def test_due_runs_match_a_minute_by_minute_simulation(spec: ScheduleSpec, since: datetime) -> None:
    since = since.replace(second=0, microsecond=0)
    until = since + timedelta(days=2)
    assert due_runs(spec, since, until) == _brute_force_runs(spec, since, until)
