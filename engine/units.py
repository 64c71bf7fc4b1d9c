"""Parsing and formatting of sizes, durations, times and calendar words (CLI and job files).

The calendar words (weekdays, months, weeks of a month) are declared here once: the job
file, the schedule, the GFS rules and the console's retention form all take them from here.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta

_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4, "p": 1000**5, "pb": 1000**5,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4, "pib": 1024**5,
}
# network people's units for rates: bits, decimal (1 Mbit/s = 125,000 bytes/s)
_BIT_UNITS = {"bit": 1, "kbit": 1000, "mbit": 1000**2, "gbit": 1000**3,
              "bps": 1, "kbps": 1000, "mbps": 1000**2, "gbps": 1000**3}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")
_DURATION_RE = re.compile(
    r"(\d+(?:\.\d+)?)\s*(ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h|days?|d|weeks?|w)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
MONTH_WEEKS = ("first", "second", "third", "fourth", "last")  # 7-day blocks from the 1st


def weekday_index(name: str) -> int:
    """`mon`/`Monday` -> 0 ... `sun` -> 6 (as `date.weekday()`). Raises ValueError naming
    the accepted forms."""
    key = name.strip().lower()
    if key in WEEKDAYS:
        return WEEKDAYS.index(key)
    if key in WEEKDAY_NAMES:
        return WEEKDAY_NAMES.index(key)
    raise ValueError(f"expected a weekday (monday..sunday or mon..sun), got {name!r}")


def days_in_month(year: int, month: int) -> int:
    """calendar.monthrange(year, month)[1], without importing calendar at start-up."""
    nxt = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return (nxt - timedelta(days=1)).day


def month_number(name: str) -> int:
    """`january`/`Jan` -> 1 ... `dec` -> 12. Raises ValueError naming the accepted forms."""
    key = name.strip().lower()
    for number, month in enumerate(MONTHS, 1):
        if key in (month, month[:3]):
            return number
    raise ValueError(f"expected a month (january..december or jan..dec), got {name!r}")


def _duration_unit(word: str) -> float:
    """`min`, `mins`, `minute(s)` -> 60; words are known by their first letter (ms aside)."""
    return _DURATION_UNITS["ms" if word == "ms" else word[0]]


def parse_size(text: str | int) -> int:
    """`1MiB` -> 1048576; plain numbers are bytes. Raises ValueError with the bad text."""
    if isinstance(text, int):
        return text
    m = _SIZE_RE.match(str(text))
    unit = m.group(2).lower() if m else None
    if not m or unit not in _SIZE_UNITS:
        raise ValueError(f"not a size: {text!r} (use e.g. 256KiB, 1MiB, 4MiB)")
    number = m.group(1)
    if "." not in number:  # whole numbers stay exact (no float for 8 PiB byte counts)
        return int(number) * _SIZE_UNITS[unit]
    return int(float(number) * _SIZE_UNITS[unit])


def parse_duration(text: str | int | float) -> float:
    """`1h30m`, `10m`, `45s`, `2d` -> seconds. A bare number is seconds."""
    if isinstance(text, (int, float)):
        return float(text)
    s = str(text).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", s):
        return float(s)
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(s):
        if m.start() != pos and s[pos:m.start()].strip():
            break
        total += float(m.group(1)) * _duration_unit(m.group(2))
        pos = m.end()
    if pos == 0 or s[pos:].strip():
        raise ValueError(f"not a duration: {text!r} (use e.g. 45s, 10min, 1h30m, 2d)")
    return total


def parse_rate(text: str | int) -> int:
    """`50MiB/s`, `100Mbit/s`, `0` -> bytes per second. Raises ValueError with the bad text."""
    if isinstance(text, int):
        return text
    s = str(text).strip()
    if s.lower().endswith("/s"):
        s = s[:-2]
    m = _SIZE_RE.match(s)
    if m and m.group(2).lower() in _BIT_UNITS:
        bits = float(m.group(1)) * _BIT_UNITS[m.group(2).lower()]
        return int(bits // 8)
    try:
        return parse_size(s)
    except ValueError:
        raise ValueError(f"not a rate: {text!r} (use e.g. 50MiB/s or 100Mbit/s)") from None


def parse_time(text: str) -> datetime:
    """ISO 8601; naive (local) when no offset is given, as CONTRACT says."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"not an ISO 8601 time: {text!r} (use e.g. 2026-11-25T22:00)") from None
    if when.tzinfo is not None:
        when = when.astimezone().replace(tzinfo=None)
    return when


def rfc3339(when: datetime | str | None) -> str | None:
    """A time for JSON output: RFC 3339 with its UTC offset (naive engine times are local).

    Engine times are naive local datetimes (and stored so); scripts reading `--json` get
    the offset so they never have to guess the server's zone.
    """
    if when is None:
        return None
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    return when.astimezone().isoformat(timespec="seconds")


def now() -> datetime:
    """The wall clock as the engine sees it: local, naive, whole seconds."""
    return datetime.now().replace(microsecond=0)


def fmt_size(n: float) -> str:
    """Human size with binary units: 1.5 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def fmt_duration(seconds: float) -> str:
    """`1h02m03s` style, for a task's or a session's length; short for short durations."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    td = timedelta(seconds=int(seconds))
    h, rem = divmod(td.seconds + td.days * 86400, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


_SPAN_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))


def fmt_span(seconds: float, parts: int = 0, sep: str = "") -> str:
    """A duration in the units `parse_duration` reads: 600 -> "10m", 5400 -> "1h30m",
    0 -> "0s" (exact to the millisecond: the job file's form). With `parts`, only that
    many of the largest non-zero units, of whole seconds: (93600, 2, " ") -> "1d 2h"
    (an age), (750, 1) -> "12m" (a time ago)."""
    ms = round(seconds * 1000) if not parts else max(0, int(seconds)) * 1000
    out: list[str] = []
    for unit, size in _SPAN_UNITS:
        count, ms = divmod(ms, size)
        if count:
            out.append(f"{count}{unit}")
    if parts:
        out = out[:parts]
    return sep.join(out) or "0s"


def int_between(low: int, high: int) -> Callable[[str], int]:
    """A parser of a whole number in [low, high], for command-line numbers: every number
    that arrives has a bound (a typo'd `--keep 1000000` is refused, not run)."""
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value
    parse.__name__ = "int"
    return parse


def duration_between(low: float, high: float, shown: str) -> Callable[[str], float]:
    """A parser of a duration in [low, high] seconds (`shown`: the range as words)."""
    def parse(text: str) -> float:
        seconds = parse_duration(text)
        if not low <= seconds <= high:  # also refuses NaN and inf
            raise ValueError(f"must be {shown}, got {text!r}")
        return seconds
    parse.__name__ = "duration"
    return parse


def parse_dates(text: str) -> frozenset[date]:
    """"2026-01-11,2026-01-17..2026-01-19" -> those days (a range includes both ends)."""
    out: set[date] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if ".." in part:
                a, b = (date.fromisoformat(x.strip()) for x in part.split("..", 1))
                if b < a or (b - a).days > MAX_RANGE_DAYS:
                    raise ValueError
                out.update(a + timedelta(days=i) for i in range((b - a).days + 1))
            else:
                out.add(date.fromisoformat(part))
        except ValueError:
            raise ValueError(f"expected dates like 2026-01-11 or 2026-01-11..2026-01-15, "
                             f"got {part!r}") from None
    return frozenset(out)


MAX_RANGE_DAYS = 36600  # a hundred years: bounds a typed range
