"""GFS calendar and flag expiry (pure date arithmetic, no I/O).

Split from `engine.retention` so the calendar rules can be read and tested on
their own. Everything here follows the research notes, section 6 (v13 rules):

* **Weekly (W)**: the full made on the chosen weekday.
* **Monthly (M)**: the month is cut into 7-day "weeks" that start on the 1st,
  8th, 15th and 22nd; the **last** week is the month's last seven days (it starts
  on the 25th, 24th, 23rd or 22nd of a 31-, 30-, 29- or 28-day month).
  With the weekly cycle on, M rides on the weekly full that falls inside the
  chosen week: exactly one weekly day falls in any 7-day span, so "first" is the
  month's first occurrence of the weekly weekday and "last" the month's *last*
  occurrence of it (it can be the same day as "fourth"). With weekly off, M is
  made on the first day of the chosen week.
* **Yearly (Y)**: rides on the monthly full of the chosen month; with monthly off
  it is made on the 1st of the chosen month.
* **Expiry** (`gfs_flags_removal`): W = assigned + 7N days; M = assigned + N months
  + 1 day, clamping a missing day to the month's last day (Jan 31 + 1 month = Feb 28,
  + 1 day = Mar 1); Y = assigned + N years + 1 day (Feb 29 + 1 year = Feb 28 + 1 day).
  A flag is removed by the first retention run on or after its expiry date.
"""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

from engine.model import GfsCycle, GfsPolicy
from engine.units import MONTH_WEEKS, days_in_month, weekday_index
from engine.units import month_number as _month_number

FLAGS = ("W", "M", "Y")
FLAG_NAMES = {"W": "weekly", "M": "monthly", "Y": "yearly"}

weekday_number = lru_cache(maxsize=64)(weekday_index)  # "sunday"/"Sun" -> 6 (hot in previews)
month_number = lru_cache(maxsize=64)(_month_number)  # "january"/"Jan" -> 1


@lru_cache(maxsize=1024)
def week_block_start(year: int, month: int, week: str) -> date:
    """First day of the chosen 7-day week of a month (1st/8th/15th/22nd, last = len - 6)."""
    key = week.strip().lower()
    if key == "last":
        return date(year, month, days_in_month(year, month) - 6)
    try:
        return date(year, month, 1 + 7 * MONTH_WEEKS.index(key))
    except ValueError:
        raise ValueError(f"not a week of the month: {week!r} (use {', '.join(MONTH_WEEKS)})") from None


def add_months(day: date, months: int) -> date:
    """Same day `months` later; a day the target month lacks becomes its last day."""
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    return date(year, month, min(day.day, days_in_month(year, month)))


def _cycle(policy: GfsPolicy, flag: str) -> GfsCycle | None:
    return {"W": policy.weekly, "M": policy.monthly, "Y": policy.yearly}[flag]


@lru_cache(maxsize=8192)
def expiry_for(flag: str, assigned: date, keep: int) -> date:
    """`flag_expiry` for a known keep count N (cached: the simulator asks daily)."""
    if flag == "W":
        return assigned + timedelta(days=7 * keep)
    if flag == "M":
        return add_months(assigned, keep) + timedelta(days=1)
    if flag == "Y":
        return add_months(assigned, 12 * keep) + timedelta(days=1)
    raise ValueError(f"not a GFS flag: {flag!r} (W, M or Y)")


def flag_expiry(flag: str, assigned: date, policy: GfsPolicy) -> date:
    """The date from which `flag` (assigned on `assigned`) may be removed.

    Computed from the *current* policy, so a changed policy recalculates the expiry
    of existing points, as the reference product does. A cycle that is no longer
    configured keeps nothing: its flags are due at once (expiry = assigned date).
    """
    cycle = _cycle(policy, flag)
    if cycle is None:
        if flag not in FLAGS:
            raise ValueError(f"not a GFS flag: {flag!r} (W, M or Y)")
        return assigned
    return expiry_for(flag, assigned, max(0, cycle.keep))


def monthly_day(policy: GfsPolicy, year: int, month: int) -> date | None:
    """The day the monthly flag is given in that month (None when monthly is off)."""
    if policy.monthly is None:
        return None
    start = week_block_start(year, month, policy.monthly.at)
    if policy.weekly is None:
        return start
    return start + timedelta(days=(weekday_number(policy.weekly.at) - start.weekday()) % 7)


def yearly_day(policy: GfsPolicy, year: int) -> date | None:
    """The day the yearly flag is given in that year (None when yearly is off)."""
    if policy.yearly is None:
        return None
    month = month_number(policy.yearly.at)
    if policy.monthly is not None:
        return monthly_day(policy, year, month)
    return date(year, month, 1)


def gfs_flags_for(policy: GfsPolicy, day: date) -> list[str]:
    """Flags a GFS full made for `day` (its scheduled day) carries, in W, M, Y order.

    Several cycles on the same day give one full with several flags.
    """
    flags = []
    if policy.weekly is not None and day.weekday() == weekday_number(policy.weekly.at):
        flags.append("W")
    if policy.monthly is not None and monthly_day(policy, day.year, day.month) == day:
        flags.append("M")
    if policy.yearly is not None and yearly_day(policy, day.year) == day:
        flags.append("Y")
    return flags


def last_scheduled(policy: GfsPolicy, flag: str, today: date) -> date | None:
    """The newest day on or before `today` on which `flag` is given (None: cycle off).

    Direct arithmetic, not a day-by-day search, so the simulator stays fast.
    """
    if flag == "W":
        if policy.weekly is None:
            return None
        return today - timedelta(days=(today.weekday() - weekday_number(policy.weekly.at)) % 7)
    if flag == "M":
        day = monthly_day(policy, today.year, today.month)
        if day is None or day <= today:
            return day
        prev = add_months(today.replace(day=1), -1)
        return monthly_day(policy, prev.year, prev.month)
    if flag == "Y":
        day = yearly_day(policy, today.year)
        if day is None or day <= today:
            return day
        return yearly_day(policy, today.year - 1)
    raise ValueError(f"not a GFS flag: {flag!r} (W, M or Y)")


def in_catch_up_period(policy: GfsPolicy, flag: str, scheduled: date, today: date) -> bool:
    """True while `today` is still inside the chosen week (M) or month (Y) of `scheduled`.

    This is the notes' rule "if today is inside the chosen week or month but past its
    first day, the monthly or yearly full is still created now". Weekly has no such
    period: its period is the day itself.
    """
    if flag == "M" and policy.monthly is not None:
        start = week_block_start(scheduled.year, scheduled.month, policy.monthly.at)
        return start <= today <= start + timedelta(days=6)
    if flag == "Y" and policy.yearly is not None:
        return (today.year, today.month) == (scheduled.year, scheduled.month)
    return False


def validate(policy: GfsPolicy) -> None:
    """Raise ValueError naming the first bad GFS setting (weekday, week, month, keep)."""
    for flag in FLAGS:
        cycle = _cycle(policy, flag)
        if cycle is None:
            continue
        if cycle.keep < 1:
            raise ValueError(f"{FLAG_NAMES[flag]} keep must be at least 1, not {cycle.keep}")
    if policy.weekly is not None:
        weekday_number(policy.weekly.at)
    if policy.monthly is not None:
        week_block_start(2000, 1, policy.monthly.at)
    if policy.yearly is not None:
        month_number(policy.yearly.at)
