"""Formatting helpers for the console: sizes, rates, durations, bars, bottlenecks.

Plain functions, no Textual; shared by widgets and screens so every number on
screen reads the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from engine.jobs.schema import JobSpec, Storage, Transport
from engine.model import RetentionPolicy
from engine.rpo import human_age
from engine.units import fmt_span

STAGE_ORDER = ("Source", "Read", "Compress", "Stream", "Network", "Target", "Write")
BAR_FULL = "█"
BAR_PARTIAL = " ▏▎▍▌▋▊▉"
BAR_EMPTY = "░"


def size(n: float | None) -> str:
    """`1.5 GiB`; `-` for unknown."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"  # pragma: no cover - unreachable


def rate(bytes_per_s: float | None) -> str:
    """`123.4 MiB/s`; `-` when idle or unknown."""
    if not bytes_per_s or bytes_per_s <= 0:
        return "-"
    return f"{size(bytes_per_s)}/s"


def duration(seconds: float | None) -> str:
    """`45s`, `12m03s`, `2h05m`, `3d04h`; `-` for unknown."""
    if seconds is None or seconds < 0:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def when(value: datetime | str | None) -> str:
    """`2026-11-25 22:00` from a datetime or an ISO string; `-` when missing."""
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M")
        except ValueError:
            return value
    return value.strftime("%Y-%m-%d %H:%M")


def bar(fraction: float, width: int = 10) -> str:
    """A text progress bar with eighth-block resolution (works in 16 colours and mono)."""
    fraction = min(1.0, max(0.0, fraction))
    eighths = int(round(fraction * width * 8))
    full, part = divmod(eighths, 8)
    text = BAR_FULL * full
    if full < width:
        text += (BAR_PARTIAL[part] if part else BAR_EMPTY) + BAR_EMPTY * (width - full - 1)
    return text


def percent(fraction: float) -> str:
    return f"{min(1.0, max(0.0, fraction)) * 100:3.0f}%"


def ordered_stages(shares: Mapping[str, float]) -> list[tuple[str, float]]:
    """Stages in pipeline order (known stages first, then the rest alphabetically)."""
    known = [(s, shares[s]) for s in STAGE_ORDER if s in shares]
    rest = sorted((k, v) for k, v in shares.items() if k not in STAGE_ORDER)
    return known + rest


def bottleneck_line(shares: Mapping[str, float]) -> str:
    """`Source 45% > Compress 20% > Stream 10% > Target 80%`, or `-` with no data."""
    stages = ordered_stages(shares)
    if not stages:
        return "-"
    return " > ".join(f"{name} {share * 100:.0f}%" for name, share in stages)


def bottleneck_of(shares: Mapping[str, float]) -> str:
    """The busiest stage's name, or '' with no data."""
    if not shares:
        return ""
    return max(ordered_stages(shares), key=lambda kv: kv[1])[0]


def plural(n: int, word: str) -> str:
    """`1 point`, `3 points`."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def ago(then: datetime | None, now: datetime) -> str:
    """`5m ago`, `21h ago`, `3d ago`; `in 2h` for the future; `-` when unknown."""
    if then is None:
        return "-"
    seconds = (now - then).total_seconds()
    text = short_duration(abs(seconds))
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def short_duration(seconds: float) -> str:
    """The largest unit only: `45s`, `12m`, `5h`, `3d`."""
    return fmt_span(seconds, 1)


def schedule_text(spec: JobSpec) -> str:
    """`daily at 22:00 on mon, tue · window 20:00-06:00` / `immediate` / `every 4h`."""
    sched = spec.schedule
    if spec.mode != "periodic":
        text = "immediate (after each source backup)"
    elif sched.every:
        text = f"every {duration(sched.every)}"
    else:
        text = f"daily at {sched.daily_at}"
    if spec.mode == "periodic" and sched.days:
        text += f" on {', '.join(sched.days)}"
    if sched.window:
        text += f" · window {', '.join(sched.window)}"
    if sched.rpo is not None:
        text += f" · RPO {human_age(sched.rpo)}"
    if not spec.enabled:
        text += " · disabled"
    return text


def transport_text(t: Transport) -> str:
    """`4 parallel tasks · rate limit 1.0 MiB/s · 3 retries, 10m apart · WAN accel.`"""
    parts = [plural(t.parallel_tasks, "parallel task")]
    parts.append(f"rate limit {rate(t.rate_limit)}" if t.rate_limit else "no rate limit")
    parts.append(f"{plural(t.retries, 'retry').replace('retrys', 'retries')}, "
                 f"{duration(t.retry_wait)} apart" if t.retries else "no retries")
    if t.wan_acceleration:
        parts.append("WAN acceleration")
    return " · ".join(parts)


def storage_text(s: Storage) -> str:
    """`compression auto · health check off · compact last sunday 05:00`."""
    return (f"compression {s.compression} · health check {s.health_check} · "
            f"compact {s.compact}")


def retention_summary(policy: RetentionPolicy | None) -> str:
    """`keep 7 points; GFS W4 M12 Y3 (synthetic)`."""
    if policy is None:
        return "-"
    unit = policy.unit[:-1] if policy.keep == 1 and policy.unit.endswith("s") else policy.unit
    text = f"keep {policy.keep} {unit}"
    gfs = policy.gfs
    if gfs is not None and any((gfs.weekly, gfs.monthly, gfs.yearly)):
        parts = []
        for letter, cycle in (("W", gfs.weekly), ("M", gfs.monthly), ("Y", gfs.yearly)):
            if cycle is not None:
                parts.append(f"{letter}{cycle.keep}")
        text += f"; GFS {' '.join(parts)} ({gfs.method})"
    return text
