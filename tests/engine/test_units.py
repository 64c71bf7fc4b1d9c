"""engine/units.py: sizes, durations and times as written on the command line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.units import fmt_duration, fmt_size, parse_duration, parse_size, parse_time


@pytest.mark.parametrize(("text", "value"), [
    ("256KiB", 256 * 1024), ("1MiB", 1 << 20), ("4MiB", 4 << 20), ("8MiB", 8 << 20),
    ("1GiB", 1 << 30), ("2TiB", 2 << 40), ("1kib", 1024), ("4 MiB", 4 << 20),
    (" 1MiB ", 1 << 20), ("1.5MiB", 3 << 19), ("0.5KiB", 512),
    ("1000", 1000), ("0", 0), ("12B", 12), ("12b", 12),
    ("1KB", 1000), ("1MB", 10**6), ("1GB", 10**9), ("1TB", 10**12), ("3k", 3000),
    ("2M", 2 * 10**6), ("1G", 10**9),
])
def test_parse_size(text, value):
    assert parse_size(text) == value


def test_parse_size_passes_ints_through():
    assert parse_size(4096) == 4096


@pytest.mark.parametrize("text", ["", "garbage", "MiB", "1XiB", "-1MiB", "1 MiB extra",
                                  "1,5MiB", "1e3", "0x10", "1MiBs", "1..5MiB", "∞"])
def test_parse_size_rejects(text):
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


@given(st.integers(0, 10**6), st.sampled_from([("KiB", 1024), ("MiB", 1024**2),
                                              ("GiB", 1024**3), ("TiB", 1024**4),
                                              ("", 1), ("KB", 1000), ("GB", 1000**3)]))
def test_parse_size_whole_numbers_are_exact(n, unit):
    suffix, factor = unit
    assert parse_size(f"{n}{suffix}") == n * factor


def test_parse_size_big_byte_counts_are_exact():
    """Whole byte counts must not go through a float (2**53 + 1 bytes is 8 PiB)."""
    assert parse_size(str(2**53 + 1)) == 2**53 + 1
    assert parse_size("9007199254740993B") == 9007199254740993


@pytest.mark.parametrize(("text", "seconds"), [
    ("45s", 45), ("10m", 600), ("1h", 3600), ("2d", 172800), ("1w", 604800),
    ("1h30m", 5400), ("1h 30m", 5400), ("1d2h", 93600), ("500ms", 0.5), ("1.5h", 5400),
    ("90", 90), ("0", 0), ("2.5", 2.5), ("10M", 600), ("1H", 3600), (" 5m ", 300),
    ("1m30s", 90), ("1s500ms", 1.5),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


def test_parse_duration_passes_numbers_through():
    assert parse_duration(12) == 12.0 and parse_duration(1.5) == 1.5


@pytest.mark.parametrize("text", ["", "abc", "10x", "h", "1h x", "x1h", "-5s", "1h-30m",
                                  "5mss", "1.5.5s", "1 hourly", "10 minutesx", "1h,30m"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@given(st.integers(0, 10**4), st.integers(0, 59), st.integers(0, 59))
def test_parse_duration_compound(h, m, s):
    assert parse_duration(f"{h}h{m}m{s}s") == h * 3600 + m * 60 + s


@pytest.mark.parametrize(("text", "when"), [
    ("2026-11-25T22:00", datetime(2026, 11, 25, 22, 0)),
    ("2026-11-25 22:00", datetime(2026, 11, 25, 22, 0)),
    ("2026-11-25T22:00:05", datetime(2026, 11, 25, 22, 0, 5)),
    ("2026-11-25", datetime(2026, 11, 25)),
    (" 2026-11-25T22:00 ", datetime(2026, 11, 25, 22, 0)),
])
def test_parse_time_local(text, when):
    got = parse_time(text)
    assert got == when and got.tzinfo is None


@pytest.mark.parametrize("text", ["2026-11-25T22:00+05:00", "2026-11-25T22:00Z",
                                  "2026-11-25T22:00-03:30"])
def test_parse_time_with_offset_becomes_local_naive(text):
    aware = datetime.fromisoformat(text.replace("Z", "+00:00"))
    got = parse_time(text)
    assert got.tzinfo is None
    assert got == aware.astimezone().replace(tzinfo=None)
    # the same instant: as a local time it has the local offset of that moment
    assert got.astimezone(UTC) == aware.astimezone(UTC)


@pytest.mark.parametrize("text", ["", "yesterday", "2026-13-01", "2026-02-30T10:00",
                                  "25/11/2026", "22:00", "2026-11-25T24:01", "now"])
def test_parse_time_rejects(text):
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        parse_time(text)


@pytest.mark.parametrize(("n", "text"), [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
    (1 << 20, "1.0 MiB"), (5 << 30, "5.0 GiB"), (3 << 40, "3.0 TiB"), (2048 << 40, "2.0 PiB"), (1 << 60, "1024.0 PiB"),
])
def test_fmt_size(n, text):
    assert fmt_size(n) == text


@pytest.mark.parametrize(("s", "text"), [
    (0, "0.0s"), (12.34, "12.3s"), (-5, "0.0s"), (60, "1m00s"), (61, "1m01s"),
    (3600, "1h00m00s"), (3723, "1h02m03s"), (90000, "25h00m00s"),
])
def test_fmt_duration(s, text):
    assert fmt_duration(s) == text


@given(st.integers(0, 10**7))
def test_fmt_duration_reads_back(seconds):
    assert parse_duration(fmt_duration(seconds)) == seconds


def test_days_in_month_is_the_calendar_modules_answer():
    import calendar

    from engine.units import days_in_month

    assert all(days_in_month(y, m) == calendar.monthrange(y, m)[1]
               for y in range(1900, 2401) for m in range(1, 13))
    assert days_in_month(2024, 2) == 29 and days_in_month(2100, 2) == 28
