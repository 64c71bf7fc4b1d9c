"""How each kind of job-file value is read and written (checks for `engine.jobs.schema`).

Each reader takes the TOML value and returns the normalized one (lower case, "HH:MM",
seconds, bytes) or raises ValueError with the text shown after "key: "; the writers
(`duration_text`, `rate_text`, `window_value`) give the form a file holds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import time
from pathlib import Path
from typing import Any

from engine import schedule as sched
from engine.jobs.fields import describe, text
from engine.repository.names import BadName, safe_name
from engine.units import (
    MONTHS,
    WEEKDAY_NAMES,
    WEEKDAYS,
    fmt_span,
    month_number,
    parse_duration,
    parse_rate,
    weekday_index,
)

MAX_RATE = 1024**4                   # 1 TiB/s: beyond any link; "0" means no limit
MAX_RPO = 366 * 86400.0
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")




def one_of(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        key = value.strip().lower()
        if key not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return key
    return check


def limited(low: int, high: int, what: str) -> Callable[[int], int]:
    """A number in [low, high], the side that was crossed in the message ("at most 100")."""
    def check(value: int) -> int:
        if value < low:
            raise ValueError(f"{what} must be at least {low}, got {value}")
        if value > high:
            raise ValueError(f"{what} must be at most {high}, got {value}")
        return value
    return check


def between(low: int, high: int, what: str) -> Callable[[int], int]:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"{what} must be between {low} and {high}, got {value}")
        return value
    return check


def non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def env_name(value: str) -> str:
    if not _ENV_NAME_RE.match(value):
        raise ValueError(f"expected an environment variable name like FERRY_PASSWORD, got {value!r}")
    return value


def weekday_full(value: str) -> str:
    return WEEKDAY_NAMES[weekday_index(value)]


def month_name(value: str) -> str:
    return MONTHS[month_number(value) - 1]


def time_of_day(value: Any) -> str:
    """"22:00"; an unquoted TOML time (22:00) is accepted too."""
    if isinstance(value, time) and not value.second and not value.microsecond:
        return sched.fmt_hhmm(value.hour * 60 + value.minute)
    if not isinstance(value, str):
        raise ValueError(f'expected a time of day like "22:00", got {describe(value)}')
    return sched.fmt_hhmm(sched.parse_hhmm(value))


def duration(value: Any) -> float:
    """"10m", "1h30m", or a number of seconds."""
    bad = f'expected a duration like "10m" or "4h", got {describe(value)}'
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(bad)
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise ValueError(bad) from None
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError(f"expected a finite duration, got {describe(value)}")
    if seconds < 0:
        raise ValueError(f"must not be negative, got {describe(value)}")
    return seconds


def duration_up_to(maximum: float, shown: str, *, positive: bool = False) -> Callable[[Any], float]:
    """A duration of at most `maximum` seconds (`shown` as the user would write it)."""
    def check(value: Any) -> float:
        seconds = duration(value)
        if positive and seconds <= 0:
            raise ValueError(f"must be more than 0, got {describe(value)}")
        if seconds > maximum:
            raise ValueError(f"must be at most {shown}, got {describe(value)}")
        return seconds
    return check


def every_duration(value: Any) -> float:
    seconds = duration(value)
    if not 60 <= seconds <= 86400:
        raise ValueError(f"every must be between 1m and 24h, got {describe(value)}")
    return seconds


def rpo_duration(value: Any) -> float | None:
    """"26h" (RPO monitor: Warning when the newest copied point is older), "off" or "0"."""
    if isinstance(value, str) and value.strip().lower() == "off":
        return None
    seconds = duration(value)
    if seconds == 0:
        return None
    if not 60 <= seconds <= MAX_RPO:
        raise ValueError(f'rpo must be between 1m and 366d (or "off"), got {describe(value)}')
    return seconds


def duration_text(seconds: float) -> str | float:
    """How a duration is written: "10m", "1h30m"; a value not whole milliseconds stays a number."""
    if abs(round(seconds * 1000) - seconds * 1000) > 1e-6:
        return float(seconds)
    return fmt_span(seconds)


def rate(value: Any) -> int:
    """"50MiB/s", "0" or a number of bytes per second -> bytes per second (<= 1 TiB/s)."""
    bad = (f'expected a rate like "50MiB/s" or "100Mbit/s" (or "0" for no limit), '
           f'got {describe(value)}')
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(bad)
    try:
        rate = value if isinstance(value, int) else parse_rate(value)
    except (ValueError, OverflowError):
        raise ValueError(bad) from None
    if rate < 0:
        raise ValueError(bad)
    if rate > MAX_RATE:
        raise ValueError(f'must be at most 1TiB/s (or "0" for no limit), got {describe(value)}')
    return rate


def rate_text(rate: int) -> str:
    """How a rate is written: "0", "50MiB/s", or bytes "1000/s"."""
    if rate == 0:
        return "0"
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if rate % size == 0:
            return f"{rate // size}{unit}/s"
    return f"{rate}/s"


def slot(value: str) -> str:
    """"off" or a slot such as "last sunday 05:00", normalized."""
    slot = sched.parse_health_check(value)
    return "off" if slot is None else str(slot)


def weekday_list(value: list[str]) -> list[str]:
    picked = {weekday_index(d) for d in value}
    return [WEEKDAYS[i] for i in sorted(picked)]


def window_list(value: Any) -> list[str]:
    """["20:00-06:00"] (every day) or {mon = ["20:00-06:00"], sat = [...]} -> normal form:
    a list of "HH:MM-HH:MM", each prefixed by its weekday when given per day."""
    if isinstance(value, dict):
        out = []
        for day, windows in value.items():
            index = weekday_index(str(day))
            if not isinstance(windows, list) or not all(isinstance(w, str) for w in windows):
                raise ValueError(f'{day}: expected a list of windows like ["20:00-06:00"]')
            out += [sched.fmt_day_window(index, *sched.parse_window(w)) for w in windows]
        if not out:
            raise ValueError("the copy window is never open (give at least one window)")
        return out
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise ValueError('expected a list like ["20:00-06:00"] or a table of weekdays '
                         '{ mon = ["20:00-06:00"] }')
    return [sched.fmt_day_window(*sched.parse_day_window(w)) for w in value]


def window_value(window: list[str]) -> list[str] | dict[str, list[str]]:
    """How a normalized window list is written: a list, or a table of weekdays."""
    if not any(" " in w for w in window):
        return list(window)
    table: dict[str, list[str]] = {}
    for w in window:  # a table is per weekday, so an every-day window goes on each day
        day, _, hours = w.rpartition(" ")
        for d in [day] if day else list(WEEKDAYS):
            table.setdefault(d, []).append(hours)
    return {d: table[d] for d in WEEKDAYS if d in table}


def names(what: str, *, required: bool) -> Callable[[list[str]], list[str]]:
    """Job or machine names: each a usable folder name (the repository's own rule,
    `safe_name`: no `..`, separator, control character, or more than 200 bytes), none
    listed twice."""
    def check(value: list[str]) -> list[str]:
        if required and not value:
            raise ValueError("must list at least one name")
        for i, item in enumerate(value, 1):
            if not item.strip():
                raise ValueError(f"item {i} is empty")
            try:
                safe_name(item, what)
            except BadName as exc:
                raise ValueError(f"item {i}: {exc}") from None
        if len(set(value)) != len(value):
            dup = next(x for x in value if value.count(x) > 1)
            raise ValueError(f"{dup!r} is listed twice")
        return value
    return check


def endpoint_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", value):
        raise ValueError(f"expected http(s)://host[:port], got {value!r}")
    return value


def mover_address(value: str) -> str:
    from engine.copy.links import parse_mover  # the transport code only for mover jobs

    parse_mover(value)
    return value


def fingerprint_text(value: str) -> str:
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", value):
        raise ValueError("expected sha256:<64 hex digits> (printed by ferry mover init)")
    return value


def path_value(value: Any) -> Path:
    """A path as written; `engine.jobs.load` resolves it against the job file's folder."""
    return Path(text(non_empty)(value))


nonblank = text(non_empty)
env_var = text(env_name)
