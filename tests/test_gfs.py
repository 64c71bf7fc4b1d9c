"""GFS calendar (which day gets which flag) and flag expiry.

Expected days are worked out here in a different way from the code (by scanning the
month for weekdays), or copied from the research notes (section 6).
"""

from __future__ import annotations

import calendar
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.gfs import (
    add_months,
    flag_expiry,
    gfs_flags_for,
    in_catch_up_period,
    last_scheduled,
    validate,
)
from engine.model import GfsCycle, GfsPolicy

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKS = ["first", "second", "third", "fourth", "last"]
MONTHS = [m.lower() for m in calendar.month_name[1:]]


def days_of(year: int, month: int) -> list[date]:
    return [date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)]


def flagged(policy: GfsPolicy, flag: str, days: list[date]) -> list[date]:
    return [d for d in days if flag in gfs_flags_for(policy, d)]


# ---------------------------------------------------------------- weekly


def test_weekly_on_the_chosen_weekday_only() -> None:
    policy = GfsPolicy(weekly=GfsCycle(4, "wednesday"))
    year = [date(2027, 1, 1) + timedelta(days=i) for i in range(365)]
    got = flagged(policy, "W", year)
    assert got == [d for d in year if d.strftime("%A") == "Wednesday"]
    assert len(got) == 52


def test_weekday_names_are_forgiving() -> None:
    assert gfs_flags_for(GfsPolicy(weekly=GfsCycle(1, "Sun")), date(2026, 11, 1)) == ["W"]
    assert gfs_flags_for(GfsPolicy(weekly=GfsCycle(1, "SUNDAY")), date(2026, 11, 1)) == ["W"]


# ---------------------------------------------------------------- monthly


@pytest.mark.parametrize("year,month", [(2026, 1), (2026, 4), (2028, 2), (2026, 2), (2027, 2)])
@pytest.mark.parametrize("weekday", WEEKDAYS)
def test_monthly_rides_on_the_weekly_of_the_chosen_week(year: int, month: int, weekday: str) -> None:
    """First..fourth = the Nth occurrence of the weekly weekday, last = its last occurrence."""
    occurrences = [d for d in days_of(year, month) if WEEKDAYS[d.weekday()] == weekday]
    expected = dict(zip(WEEKS[:4], occurrences[:4], strict=True))
    expected["last"] = occurrences[-1]
    for week in WEEKS:
        policy = GfsPolicy(weekly=GfsCycle(4, weekday), monthly=GfsCycle(12, week))
        got = flagged(policy, "M", days_of(year, month))
        assert got == [expected[week]], (week, got)
        assert gfs_flags_for(policy, expected[week]) == ["W", "M"]


@pytest.mark.parametrize("year,month,last", [
    (2026, 1, 25),  # 31 days
    (2026, 4, 24),  # 30 days
    (2028, 2, 23),  # 29 days
    (2026, 2, 22),  # 28 days
])
def test_monthly_without_weekly_first_day_of_the_chosen_week(year: int, month: int, last: int) -> None:
    """Research notes: First = 1st, 8th, 15th, 22nd; Last = 25th/24th/23rd/22nd."""
    expected = {"first": 1, "second": 8, "third": 15, "fourth": 22, "last": last}
    for week, day in expected.items():
        policy = GfsPolicy(monthly=GfsCycle(3, week))
        assert flagged(policy, "M", days_of(year, month)) == [date(year, month, day)]


def test_last_week_in_february_of_a_common_year_is_the_fourth() -> None:
    """28-day month: the last seven days are the fourth week, so both give the same day."""
    for weekday in WEEKDAYS:
        a = GfsPolicy(weekly=GfsCycle(1, weekday), monthly=GfsCycle(1, "fourth"))
        b = GfsPolicy(weekly=GfsCycle(1, weekday), monthly=GfsCycle(1, "last"))
        assert flagged(a, "M", days_of(2026, 2)) == flagged(b, "M", days_of(2026, 2))


# ---------------------------------------------------------------- yearly


def test_yearly_rides_on_the_monthly_of_the_chosen_month() -> None:
    policy = GfsPolicy(weekly=GfsCycle(4, "sunday"), monthly=GfsCycle(12, "last"),
                       yearly=GfsCycle(3, "december"))
    year = [date(2026, 1, 1) + timedelta(days=i) for i in range(365)]
    assert flagged(policy, "Y", year) == [date(2026, 12, 27)]  # last Sunday of Dec 2026
    assert gfs_flags_for(policy, date(2026, 12, 27)) == ["W", "M", "Y"]


def test_yearly_without_monthly_on_the_first_of_the_month() -> None:
    policy = GfsPolicy(weekly=GfsCycle(4, "sunday"), yearly=GfsCycle(3, "march"))
    year = [date(2027, 1, 1) + timedelta(days=i) for i in range(365)]
    assert flagged(policy, "Y", year) == [date(2027, 3, 1)]  # a Monday: no weekly that day
    assert gfs_flags_for(policy, date(2027, 3, 1)) == ["Y"]


def test_one_day_gets_all_three_flags() -> None:
    policy = GfsPolicy(weekly=GfsCycle(4, "sunday"), monthly=GfsCycle(12, "first"),
                       yearly=GfsCycle(3, "january"))
    assert gfs_flags_for(policy, date(2026, 1, 4)) == ["W", "M", "Y"]
    assert gfs_flags_for(policy, date(2026, 2, 1)) == ["W", "M"]
    assert gfs_flags_for(policy, date(2026, 1, 11)) == ["W"]
    assert gfs_flags_for(policy, date(2026, 1, 5)) == []


# ---------------------------------------------------------------- expiry


def test_weekly_expiry_is_seven_n_days() -> None:
    policy = GfsPolicy(weekly=GfsCycle(4, "wednesday"))
    assert flag_expiry("W", date(2026, 11, 25), policy) == date(2026, 12, 23)  # CONTRACT example


@pytest.mark.parametrize("assigned,keep,expected", [
    (date(2026, 1, 31), 1, date(2026, 3, 1)),    # Jan 31 + 1 month = Feb 28, + 1 day
    (date(2028, 1, 31), 1, date(2028, 3, 1)),    # leap year: Feb 29 + 1 day
    (date(2028, 1, 28), 1, date(2028, 2, 29)),   # Feb 28 + 1 day in a leap year
    (date(2026, 1, 28), 1, date(2026, 3, 1)),    # Feb 28 + 1 day in a common year
    (date(2025, 12, 31), 2, date(2026, 3, 1)),   # across a year end
    (date(2026, 3, 31), 1, date(2026, 5, 1)),    # Apr 30 + 1 day
    (date(2026, 5, 15), 12, date(2027, 5, 16)),
])
def test_monthly_expiry_clamps_to_month_end(assigned: date, keep: int, expected: date) -> None:
    assert flag_expiry("M", assigned, GfsPolicy(monthly=GfsCycle(keep, "first"))) == expected


@pytest.mark.parametrize("assigned,keep,expected", [
    (date(2028, 2, 29), 1, date(2029, 3, 1)),    # Feb 29 + 1 year = Feb 28, + 1 day
    (date(2028, 2, 29), 4, date(2032, 3, 1)),    # to another leap year: Feb 29 + 1 day
    (date(2026, 1, 4), 3, date(2029, 1, 5)),
])
def test_yearly_expiry(assigned: date, keep: int, expected: date) -> None:
    assert flag_expiry("Y", assigned, GfsPolicy(yearly=GfsCycle(keep, "january"))) == expected


def test_expiry_of_a_cycle_no_longer_configured_is_immediate() -> None:
    assert flag_expiry("M", date(2026, 5, 3), GfsPolicy(weekly=GfsCycle(4, "sunday"))) == date(2026, 5, 3)


def test_add_months_keeps_the_day_when_it_exists() -> None:
    assert add_months(date(2026, 1, 15), 13) == date(2027, 2, 15)
    assert add_months(date(2026, 3, 31), -1) == date(2026, 2, 28)


# ---------------------------------------------------------------- scheduling helpers

policies = st.builds(
    GfsPolicy,
    weekly=st.none() | st.builds(GfsCycle, st.integers(1, 6), st.sampled_from(WEEKDAYS)),
    monthly=st.none() | st.builds(GfsCycle, st.integers(1, 12), st.sampled_from(WEEKS)),
    yearly=st.none() | st.builds(GfsCycle, st.integers(1, 5), st.sampled_from(MONTHS)),
)


@settings(max_examples=150, deadline=None)
@given(policy=policies, day=st.dates(date(2020, 1, 1), date(2035, 12, 31)))
def test_last_scheduled_agrees_with_a_day_by_day_scan(policy: GfsPolicy, day: date) -> None:
    for flag in ("W", "M", "Y"):
        got = last_scheduled(policy, flag, day)
        scan = next((day - timedelta(days=i) for i in range(800)
                     if flag in gfs_flags_for(policy, day - timedelta(days=i))), None)
        assert got == scan, flag


def test_catch_up_period_is_the_chosen_week_or_month() -> None:
    policy = GfsPolicy(monthly=GfsCycle(12, "second"), yearly=GfsCycle(2, "june"))
    s = date(2026, 6, 8)
    assert in_catch_up_period(policy, "M", s, date(2026, 6, 14))
    assert not in_catch_up_period(policy, "M", s, date(2026, 6, 15))
    assert in_catch_up_period(policy, "Y", date(2026, 6, 1), date(2026, 6, 30))
    assert not in_catch_up_period(policy, "Y", date(2026, 6, 1), date(2026, 7, 1))
    assert not in_catch_up_period(GfsPolicy(weekly=GfsCycle(1, "monday")), "W", s, s)


@pytest.mark.parametrize("policy,word", [
    (GfsPolicy(weekly=GfsCycle(4, "someday")), "someday"),
    (GfsPolicy(monthly=GfsCycle(4, "fifth")), "fifth"),
    (GfsPolicy(yearly=GfsCycle(4, "smarch")), "smarch"),
    (GfsPolicy(weekly=GfsCycle(0, "sunday")), "at least 1"),
])
def test_validate_names_the_bad_setting(policy: GfsPolicy, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        validate(policy)
