"""When periodic copy jobs run, when their copy window is open, and when health checks are due.

Pure functions over naive local datetimes (the engine's clock, see `engine.units.now`);
no I/O, so `--at` replays and the daemon share one implementation.

Rules (research notes section 4 and 9):

* A periodic job runs `daily_at` on the allowed `days`, or `every` N counted from 00:00
  of each allowed day (every 2h -> 00:00, 02:00, ...).
* The copy window only limits data transfer. A scheduled start that falls in a denied
  period is not dropped: the job starts as soon as the window opens, once, however many
  starts were missed, and then follows the grid again. So every 2h with the window
  09:00-17:00 runs at 9, 10, 12, 14 and 16.
* Windows are times of day and may cross midnight ("20:00-06:00"): the same every day,
  or per weekday ("mon 20:00-06:00" opens Monday 20:00 and closes Tuesday 06:00; the job
  file's `window = { mon = [...], sat = [...] }`, the reference product's weekday x hour
  grid). The end is exclusive: "09:00-17:00" allows 16:59:59 but not 17:00. No window =
  always.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache

from engine.units import MONTH_WEEKS, WEEKDAY_NAMES, WEEKDAYS, days_in_month, weekday_index

DEFAULT_DAILY_AT = "22:00"
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY

_HHMM_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")


@dataclass
class ScheduleSpec:
    """The `[schedule]` table of a periodic job.

    `daily_at` ("HH:MM") and `every` (seconds) are alternatives; when neither is set the
    job runs daily at 22:00 (the usual after-hours slot of the source backups), which is
    also the dataclass default. `days` holds 3-letter weekday names ("mon"); empty means
    every day. `window` holds "HH:MM-HH:MM" ranges when data may be transferred, each
    every day or, prefixed by a weekday ("sat 00:00-24:00"), on that day only. `rpo`
    (seconds, None = off) is the RPO monitor of both modes (`engine.rpo`).
    """

    daily_at: str | None = DEFAULT_DAILY_AT
    every: float | None = None
    days: list[str] = field(default_factory=list)
    window: list[str] = field(default_factory=list)
    rpo: float | None = None  # seconds: Warning when the newest copied point is older


# ---------------------------------------------------------------------------------------
# Parsing helpers (also used by the job file validation, so messages are user-facing).


def parse_hhmm(text: str, allow_24: bool = False) -> int:
    """"HH:MM" -> minutes after midnight; "24:00" only where it can end a window."""
    m = _HHMM_RE.match(text)
    if m:
        hours, minutes = int(m.group(1)), int(m.group(2))
        if minutes < 60 and (hours < 24 or (allow_24 and hours == 24 and minutes == 0)):
            return hours * 60 + minutes
    raise ValueError(f'expected a time of day like "22:00", got {text!r}')


def fmt_hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_window(text: str) -> tuple[int, int]:
    """"20:00-06:00" -> (1200, 360) in minutes; the end may be "24:00"."""
    parts = text.split("-")
    if len(parts) != 2:
        raise ValueError(f'expected a window like "20:00-06:00", got {text!r}')
    try:
        start = parse_hhmm(parts[0])
        end = parse_hhmm(parts[1], allow_24=True)
    except ValueError:
        raise ValueError(f'expected a window like "20:00-06:00", got {text!r}') from None
    if start == end:
        raise ValueError(f"window {text!r} starts and ends at the same time (use 00:00-24:00 for all day)")
    return start, end


def fmt_window(start: int, end: int) -> str:
    return f"{fmt_hhmm(start)}-{fmt_hhmm(end)}"


def parse_day_window(text: str) -> tuple[int | None, int, int]:
    """"mon 20:00-06:00" -> (0, 1200, 360); a window without a weekday -> (None, ...)."""
    day, _, rest = text.strip().rpartition(" ")
    start, end = parse_window(rest)
    return (weekday_index(day) if day.strip() else None), start, end


def fmt_day_window(day: int | None, start: int, end: int) -> str:
    return fmt_window(start, end) if day is None else f"{WEEKDAYS[day]} {fmt_window(start, end)}"


@dataclass(frozen=True)
class _Window:
    """Per minute of the week (Monday 00:00 = 0): allowed?, minutes to the next opening,
    minutes to the next closing (None: never closes) and minutes since the current denied
    period began. Precomputed once per window list so that every query is O(1)."""

    allowed: tuple[bool, ...]
    to_open: tuple[int, ...]
    to_close: tuple[int | None, ...]
    denied_for: tuple[int, ...]


@lru_cache(maxsize=256)
def _window(window: tuple[str, ...]) -> _Window | None:
    """None when there is no window (always allowed)."""
    if not window:
        return None
    n = MINUTES_PER_WEEK
    mask = [False] * n
    for text in window:
        day, start, end = parse_day_window(text)
        if end <= start:  # crosses midnight
            end += MINUTES_PER_DAY
        for d in range(7) if day is None else (day,):
            base = d * MINUTES_PER_DAY
            for m in range(base + start, base + end):
                mask[m % n] = True
    if not any(mask):  # unreachable: parse_window refuses empty windows
        raise ValueError("the copy window is never open")
    to_open: list[int] = [0] * n
    to_close: list[int | None] = [None] * n
    next_open: int | None = None
    next_close: int | None = None
    for m in range(2 * n - 1, -1, -1):  # twice round the clock, backwards
        if mask[m % n]:
            next_open = m
        else:
            next_close = m
        if m < n:
            to_open[m] = (next_open or 0) - m
            to_close[m] = None if next_close is None else next_close - m
    denied_for = [0] * n
    last_allowed = -n
    for m in range(2 * n):  # twice round the clock, forwards
        if mask[m % n]:
            last_allowed = m
        elif m >= n:
            denied_for[m - n] = m - last_allowed - 1
    return _Window(tuple(mask), tuple(to_open), tuple(to_close), tuple(denied_for))


def _minute(when: datetime) -> int:
    """Minute of the week, Monday 00:00 = 0."""
    return when.weekday() * MINUTES_PER_DAY + when.hour * 60 + when.minute


def _floor_minute(when: datetime) -> datetime:
    return when.replace(second=0, microsecond=0)


# ---------------------------------------------------------------------------------------
# Copy window.


def in_window(spec: ScheduleSpec, when: datetime) -> bool:
    """Whether data may be transferred at `when` (no window = always)."""
    w = _window(tuple(spec.window))
    return w is None or w.allowed[_minute(when)]


def window_end(spec: ScheduleSpec, when: datetime) -> datetime | None:
    """When the window that is open at `when` closes.

    None when there is no window, when the windows cover the whole day (it never closes),
    or when `when` is outside every window. Adjacent windows count as one.
    """
    w = _window(tuple(spec.window))
    if w is None or not w.allowed[_minute(when)]:
        return None
    minutes = w.to_close[_minute(when)]
    return None if minutes is None else _floor_minute(when) + timedelta(minutes=minutes)


def window_open(spec: ScheduleSpec, when: datetime) -> datetime:
    """The first moment at or after `when` at which the window is open."""
    w = _window(tuple(spec.window))
    if w is None or w.allowed[_minute(when)]:
        return when
    return _floor_minute(when) + timedelta(minutes=w.to_open[_minute(when)])


# ---------------------------------------------------------------------------------------
# Periodic schedule.


def _allowed_days(spec: ScheduleSpec) -> frozenset[int]:
    if not spec.days:
        return frozenset(range(7))
    return frozenset(weekday_index(d) for d in spec.days)


def _first_start(spec: ScheduleSpec, start: datetime, strict: bool) -> datetime:
    """The first scheduled start at (or, if `strict`, after) `start`, window ignored."""
    days = _allowed_days(spec)
    if not days:
        raise ValueError("the schedule allows no day of the week")
    day = datetime.combine(start.date(), time())
    one_us = timedelta(microseconds=1)
    if spec.every is not None:
        every_us = round(spec.every * 1_000_000)
        if every_us <= 0:
            raise ValueError("the schedule interval must be positive")
    else:
        at = timedelta(minutes=parse_hhmm(spec.daily_at or DEFAULT_DAILY_AT))
    for _ in range(8):
        if day.weekday() in days:
            if spec.every is not None:
                offset_us = max(0, (start - day) // one_us)
                k = -(-offset_us // every_us)  # ceil
                if strict and k * every_us == offset_us and start >= day:
                    k += 1
                if k * every_us < 86_400_000_000:
                    return day + timedelta(microseconds=k * every_us)
            else:
                t = day + at
                if t > start or (t == start and not strict):
                    return t
        day += timedelta(days=1)
    raise AssertionError("unreachable: some allowed day falls within 8 days")


def next_run(spec: ScheduleSpec, after: datetime) -> datetime:
    """The first run strictly after `after`.

    A start that falls in a denied period moves to the moment the window opens; all
    the starts of one denied period collapse into that one run.
    """
    w = _window(tuple(spec.window))
    if w is not None and not w.allowed[_minute(after)]:
        # Starts since this denied period began are all released when it ends.
        m = _minute(after)
        opens = _floor_minute(after) + timedelta(minutes=w.to_open[m])
        began = _floor_minute(after) - timedelta(minutes=w.denied_for[m])
        if _first_start(spec, began, strict=False) <= opens:
            return opens
        return window_open(spec, _first_start(spec, opens, strict=True))
    # Later starts cannot run before this one's (possibly deferred) time.
    return window_open(spec, _first_start(spec, after, strict=True))


def due_runs(spec: ScheduleSpec, since: datetime, until: datetime) -> list[datetime]:
    """Every run in (since, until], oldest first: what a replay with `--at` must do."""
    runs: list[datetime] = []
    t = next_run(spec, since)
    while t <= until:
        runs.append(t)
        t = next_run(spec, t)
    return runs


# ---------------------------------------------------------------------------------------
# Health check (and compact) schedules: "last sunday 05:00", "sunday 05:00", "daily 04:00".

DEFAULT_HEALTH = "last sunday 05:00"  # research notes section 9
_HEALTH_HELP = 'expected e.g. "last sunday 05:00", "sunday 05:00", "daily 04:00" or "off"'


@dataclass(frozen=True)
class HealthSchedule:
    """A recurring maintenance slot.

    kind "daily"; "weekly" on `weekday` (0 = Monday); or "monthly" on the `week`-th
    ("first".."fourth", "last") `weekday` of each month. `at` is minutes after midnight.
    """

    kind: str
    at: int
    weekday: int | None = None
    week: str | None = None

    def __str__(self) -> str:
        hhmm = fmt_hhmm(self.at)
        if self.kind == "daily":
            return f"daily {hhmm}"
        day = WEEKDAY_NAMES[self.weekday or 0]
        if self.kind == "weekly":
            return f"{day} {hhmm}"
        return f"{self.week} {day} {hhmm}"


def parse_health_check(text: str) -> HealthSchedule | None:
    """Parse a slot; "off" -> None, "on" -> the default (last Sunday of the month, 05:00).

    The time may be left out and then is 05:00. Raises ValueError with the accepted forms.
    """
    words = text.strip().lower().split()
    if words == ["off"]:
        return None
    if words == ["on"]:
        words = DEFAULT_HEALTH.split()
    try:
        at = 5 * 60
        if words and ":" in words[-1]:
            at = parse_hhmm(words.pop())
        if words == ["daily"]:
            return HealthSchedule("daily", at)
        if len(words) == 1:
            return HealthSchedule("weekly", at, weekday=weekday_index(words[0]))
        if len(words) == 2 and words[0] in MONTH_WEEKS:
            return HealthSchedule("monthly", at, weekday=weekday_index(words[1]), week=words[0])
    except ValueError:
        pass
    raise ValueError(f"{_HEALTH_HELP}, got {text!r}")


def _monthly_day(year: int, month: int, weekday: int, week: str) -> date:
    first = date(year, month, 1)
    if week == "last":
        last = date(year, month, days_in_month(year, month))
        return last - timedelta(days=(last.weekday() - weekday) % 7)
    first_match = first + timedelta(days=(weekday - first.weekday()) % 7)
    return first_match + timedelta(weeks=MONTH_WEEKS.index(week))


def _slot_days(h: HealthSchedule, around: date) -> Sequence[date]:
    """Candidate slot dates near `around` (covers at least the 40 days before/after)."""
    if h.kind == "monthly":
        out = []
        for delta in (-2, -1, 0, 1, 2):
            y, m = divmod(around.year * 12 + around.month - 1 + delta, 12)
            out.append(_monthly_day(y, m + 1, h.weekday or 0, h.week or "last"))
        return out
    days = [around + timedelta(days=d) for d in range(-8, 9)]
    if h.kind == "weekly":
        days = [d for d in days if d.weekday() == h.weekday]
    return days


def last_occurrence(h: HealthSchedule, now: datetime) -> datetime:
    """The latest slot at or before `now`."""
    slots = [datetime.combine(d, time()) + timedelta(minutes=h.at) for d in _slot_days(h, now.date())]
    return max(s for s in slots if s <= now)


def next_occurrence(h: HealthSchedule, after: datetime) -> datetime:
    """The first slot strictly after `after` (for "next health check" displays)."""
    slots = [datetime.combine(d, time()) + timedelta(minutes=h.at) for d in _slot_days(h, after.date())]
    return min(s for s in slots if s > after)


def run_due(spec: ScheduleSpec, last: datetime | None, now: datetime) -> bool:
    """Whether a periodic job should start at `now`: its window is open and a scheduled
    start came after its `last` run (None: it never ran, so it is due)."""
    if not in_window(spec, now):
        return False
    return last is None or next_run(spec, last) <= now


def check_due(h: HealthSchedule | None, last: datetime | None, now: datetime) -> bool:
    """Whether a check should run now: a slot passed since the `last` one ran.

    A slot missed while the daemon was down is made up at the next call (like the
    reference product, which runs it after the job that was busy). `last=None` means
    never checked and is due; pass the job's creation time to wait for the first slot.
    """
    if h is None:
        return False
    if last is None:
        return True
    return last < last_occurrence(h, now)


__all__ = [
    "DEFAULT_DAILY_AT", "DEFAULT_HEALTH", "MONTH_WEEKS", "WEEKDAYS", "WEEKDAY_NAMES",
    "HealthSchedule", "ScheduleSpec", "due_runs", "run_due", "fmt_hhmm", "fmt_window", "in_window",
    "check_due", "last_occurrence", "next_occurrence", "next_run", "parse_health_check",
    "parse_hhmm", "parse_window", "weekday_index", "window_end", "window_open",
]
