"""What-if retention (`ferry preview`): replay runs day by day through the real rules.

Pure: a policy, a calendar and a sizing model in, chain states out. Each run does what
the copy runner does, with the same functions: `plan_gfs_dates` decides whether the new
point is a GFS full, the point is added (the first run makes a full), then
`plan_retention` + `apply`. There is no second implementation of the rules here.

Presentation follows the community Restore Point Simulator (research notes section 10):
a day-by-day file list with a reason per point, the total size, the work space kept
apart (RPS buckets over the full size) and the worst day. Sizes: a full is
`sizing.full`, an increment `sizing.incremental`; a GFS full is a full; a merge keeps
the full's size (the merged blocks replace blocks of the full in place, as a
forever-forward merge reuses the full's freed space).

Cost: one run touches only the current chain (tens of points), so a run is O(chain)
and ten years of daily runs stay well under half a second (`bench/preview_bench.py`).
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from engine.gfs import FLAG_NAMES, gfs_flags_for
from engine.model import RetentionPolicy
from engine.retention import (
    FULL,
    INCREMENTAL,
    MODES,
    Action,
    PointView,
    apply,
    gfs_action,
    plan_gfs_dates,
    plan_retention,
    reasons,
)
from engine.units import fmt_size

TIB = 1024**4
# RPS work-space buckets over the full size: (upper bound of the bucket, share kept free)
WORK_SPACE_BUCKETS: tuple[tuple[float, float], ...] = (
    (10 * TIB, 1.05), (20 * TIB, 0.66), (100 * TIB, 0.40), (500 * TIB, 0.25),
    (float("inf"), 0.10),
)


@dataclass
class Sizing:
    """Bytes of one full and one increment on the target."""

    full: int
    incremental: int


def sizing_from_model(used: int, change_pct: float, reduction_pct: float) -> Sizing:
    """The RPS model: full = used x reduction, increment = used x change x reduction.

    Percentages as the user types them (50 -> 0.5); `reduction` is the data left
    after compression and dedup (RPS default 50%), `change` the change per run (10%).
    """
    if used < 0 or not 0 <= change_pct <= 100 or not 0 < reduction_pct <= 100:
        raise ValueError("sizing needs used >= 0, 0 <= change <= 100 and 0 < reduction <= 100")
    return Sizing(full=round(used * reduction_pct / 100),
                  incremental=round(used * change_pct / 100 * reduction_pct / 100))


def work_space(full_size: int) -> int:
    """Free space to keep for merges and synthetic fulls (RPS buckets over the full size)."""
    total, low = 0.0, 0.0
    for high, share in WORK_SPACE_BUCKETS:
        if full_size <= low:
            break
        total += (min(full_size, high) - low) * share
        low = high
    return round(total)


@dataclass(slots=True)
class PreviewPoint:
    """One point of the chain at the end of a simulated day."""

    time: datetime
    kind: str
    gfs: list[str]
    reason: str
    size: int


@dataclass
class PreviewDay:
    """The chain at the end of one calendar day, and what the runs of that day did."""

    date: date
    points: list[PreviewPoint]
    total_size: int
    work_space: int
    actions: list[str] = field(default_factory=list)  # "merged 2026-11-18 into the full"


@dataclass
class PreviewResult:
    job: str
    days: list[PreviewDay]
    worst_day: PreviewDay
    notes: list[str]


@dataclass
class RunResult:
    """One simulated run: the chain after it and the actions, for tests and renderers."""

    time: datetime
    point: str  # id of the point the run produced
    chain: list[PointView]
    actions: list[Action]


def run_once(chain: list[PointView], policy: RetentionPolicy, mode: str, now: datetime,
             last_run: datetime | None, sizing: Sizing, point_id: str) -> RunResult:
    """What one copy run does to the target chain, through the engine's own rules."""
    dates = plan_gfs_dates(chain, policy, now, mode, last_run)
    if not chain:
        new = PointView(point_id, now, FULL, {}, sizing.full)
    else:
        new = PointView(point_id, now, INCREMENTAL, {},
                        sizing.full if dates else sizing.incremental)
    made = [gfs_action(point_id, dates, _method(policy))] if dates else []
    chain = apply([*chain, new], made)
    planned = plan_retention(chain, policy, now)
    return RunResult(now, point_id, apply(chain, planned), made + planned)


def run_times(start: datetime, days: int, interval: timedelta) -> Iterator[datetime]:
    """Run times from `start`, one per `interval`, for `days` calendar days."""
    if interval <= timedelta(0):
        raise ValueError("the interval must be positive")
    end = datetime.combine(start.date() + timedelta(days=days), time.min)
    t = start
    while t < end:
        yield t
        t += interval


def replay(policy: RetentionPolicy, mode: str, start: datetime, days: int, sizing: Sizing,
           interval: timedelta = timedelta(days=1),
           skip: Callable[[datetime], bool] | None = None) -> Iterator[RunResult | datetime]:
    """Every run in order: a RunResult, or the bare time of a skipped run."""
    chain: list[PointView] = []
    last_run: datetime | None = None
    seq = 0
    for t in run_times(start, days, interval):
        if skip is not None and skip(t):
            yield t
            continue
        seq += 1
        result = run_once(chain, policy, mode, t, last_run, sizing, f"p{seq}")
        chain, last_run = result.chain, t
        yield result


def simulate(job_name: str, policy: RetentionPolicy, mode: str, start: datetime, days: int,
             sizing: Sizing, interval: timedelta = timedelta(days=1),
             skip: Callable[[datetime], bool] | None = None) -> PreviewResult:
    """Replay one run per `interval` from `start` for `days` days; one PreviewDay per day.

    `skip(t)` True models a missed run at `t` (job off, source down). Each day shows the
    chain after that day's last run (unchanged on a day without a run).
    """
    if mode not in MODES:
        raise ValueError(f"not a job mode: {mode!r} (periodic or immediate)")
    if days < 1:
        raise ValueError("simulate at least one day")
    with _gc_paused():
        return _simulate(job_name, policy, mode, start, days, sizing, interval, skip)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a preview is built.

    A ten-year preview allocates a few hundred thousand small objects that all stay alive
    (the day list) and makes no reference cycles; the collector's repeated passes over
    them cost about as much as the simulation itself (measured: 0.47 s -> 0.26 s for
    3650 runs of a 30-point chain). Reference counting still frees the temporaries.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _simulate(job_name: str, policy: RetentionPolicy, mode: str, start: datetime, days: int,
              sizing: Sizing, interval: timedelta,
              skip: Callable[[datetime], bool] | None) -> PreviewResult:
    fmt_when = (lambda t: t.date().isoformat()) if interval >= timedelta(days=1) else (
        lambda t: t.strftime("%Y-%m-%d %H:%M"))
    out: list[PreviewDay] = []
    chain: list[PointView] = []
    cache: dict[str, tuple[PointView, str, PreviewPoint]] = {}
    day = start.date()
    lines: list[str] = []
    last_time = start
    gfs = policy.gfs if policy.gfs is not None and policy.gfs.enabled else None

    def close_day(until: date) -> None:
        """Emit PreviewDays up to (excluding) `until` with the current chain."""
        nonlocal day, lines
        while day < until:
            now = last_time if last_time.date() == day else datetime.combine(day, start.time())
            due = gfs_flags_for(gfs, day) if gfs is not None else []
            missed = [f for f in due if not any(p.gfs.get(f) == day for p in chain)]
            if missed and mode == "immediate":
                lines.append(f"no {_names(missed)} full for this day: no run on it "
                             "(immediate mode)")
            elif missed:
                lines.append(f"{_names(missed)} full due; made at the next run (periodic mode)")
            out.append(_snapshot(day, chain, policy, now, lines, cache))
            day += timedelta(days=1)
            lines = []

    for item in replay(policy, mode, start, days, sizing, interval, skip):
        t = item if isinstance(item, datetime) else item.time
        close_day(t.date())
        if isinstance(item, datetime):
            lines.append(f"no run at {fmt_when(t)}")
            continue
        lines.extend(_describe(item, chain, fmt_when))
        chain, last_time = item.chain, t
    close_day(start.date() + timedelta(days=days))
    worst = max(out, key=lambda d: d.total_size + d.work_space)  # first of equals
    return PreviewResult(job_name, out, worst, _notes(policy, mode, sizing))


def _snapshot(day: date, chain: list[PointView], policy: RetentionPolicy, now: datetime,
              lines: list[str], cache: dict) -> PreviewDay:
    why = reasons(chain, policy, now)
    points = []
    get = cache.get
    total = biggest = 0
    for p in chain:
        # The rules hand unchanged points on as the same objects, so the same object with
        # the same reason reuses yesterday's PreviewPoint (a merged full keeps its id but
        # is a new object, so it misses).
        reason = why[p.id]
        hit = get(p.id)
        if hit is None or hit[0] is not p or hit[1] != reason:
            hit = cache[p.id] = (p, reason, PreviewPoint(p.time, p.kind, list(p.gfs),
                                                         reason, p.size))
        points.append(hit[2])
        total += p.size
        if p.kind == FULL and p.size > biggest:
            biggest = p.size
    return PreviewDay(day, points, total, work_space(biggest), lines)


def _names(flags: list[str] | dict) -> str:
    return "+".join(FLAG_NAMES[f] for f in flags)


def _describe(run: RunResult, prev: list[PointView],
              fmt_when: Callable[[datetime], str]) -> list[str]:
    """Human lines for one run, RPS style ("merged 2026-11-18 into the full")."""
    lines = []
    before = {p.id: p for p in prev} if len(run.actions) > 1 or (
        run.actions and run.actions[0].kind != "gfs-full") else {}
    made = next((a for a in run.actions if a.kind == "gfs-full"), None)
    if made is not None:
        late = sorted({d for d in made.dates.values() if d != run.time.date()})
        text = f"{_names(made.flags)} full made"
        if late:
            text += f" (catch-up for {', '.join(d.isoformat() for d in late)})"
        lines.append(text)
    elif not prev:
        lines.append("full made")
    else:
        lines.append("increment made")
    for a in run.actions:
        if a.kind == "merge":
            lines.append(f"merged {fmt_when(before[a.point].time)} into the full")
        elif a.kind == "delete-chain":
            lines.append(f"deleted {len(a.points)} point{'s' * (len(a.points) != 1)}: {a.reason}")
        elif a.kind == "expire-flag":
            p = before.get(a.point)
            when = fmt_when(p.time) if p is not None else a.point
            lines.append(f"{FLAG_NAMES.get(a.flag, a.flag)} flag of {when} removed ({a.reason})")
    return lines


def _method(policy: RetentionPolicy) -> str:
    return policy.gfs.method if policy.gfs is not None else "synthetic"


def _notes(policy: RetentionPolicy, mode: str, sizing: Sizing) -> list[str]:
    gfs = policy.gfs if policy.gfs is not None and policy.gfs.enabled else None
    notes = []
    if policy.unit == "days":
        notes.append(f"short-term: {policy.keep} days; the day of the run is not counted "
                     f"({policy.keep + 1} days kept), days without runs count, and at least "
                     f"{policy.min_points_days_mode} points stay")
    else:
        notes.append(f"short-term: the newest {policy.keep} points")
    if gfs is None:
        notes.append("no GFS: forever-forward chain; the oldest increment is merged into "
                     "the full when short-term retention is exceeded")
    else:
        notes.append(f"GFS on: forward incremental chain, no merges; GFS fulls are "
                     f"{gfs.method} fulls made on their day; an old chain is deleted when its "
                     "last point leaves short-term retention, its flagged full when its last "
                     "flag expires")
        if gfs.weekly is None:
            notes.append("no weekly cycle: the active chain grows until the next GFS full "
                         "(up to a month or a year of increments); weekly is recommended")
        if mode == "immediate":
            notes.append("immediate mode: no GFS full for a day without a run")
        else:
            notes.append("periodic mode: a GFS day without a run is made up at the next run")
    notes.append(f"sizes: full {fmt_size(sizing.full)}, increment "
                 f"{fmt_size(sizing.incremental)}; a merge keeps the full's size")
    notes.append("work space (kept free for merges and synthetic fulls): 105% of the first "
                 "10 TiB of the largest full, 66% to 20 TiB, 40% to 100 TiB, 25% to "
                 "500 TiB, 10% beyond")
    return notes
