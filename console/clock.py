"""Clocks the console reads, injectable so tests and snapshots are deterministic.

The console never calls `time.monotonic()` or `datetime.now()` directly: it asks
the app's clock. `SystemClock` is the real one; `ManualClock` only moves when a
test tells it to.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What the console needs from a clock."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, for rates and elapsed times."""
        ...

    def now(self) -> datetime:
        """Local wall time (naive), for dates shown to the operator."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now().replace(microsecond=0)


class ManualClock:
    """A clock that only moves when `advance` is called (tests, snapshots, benches)."""

    def __init__(self, start: datetime | None = None, t: float = 0.0) -> None:
        self._start = start or datetime(2026, 11, 25, 22, 0, 0)
        self._t = t

    def advance(self, seconds: float) -> None:
        self._t += seconds

    def monotonic(self) -> float:
        return self._t

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self._t)
