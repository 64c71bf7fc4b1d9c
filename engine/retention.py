"""Retention rules of a backup copy target chain: short-term, forever-forward merge, GFS.

Pure functions over `RetentionPoint` lists (no file I/O). The copy runner executes the
`Action`s on real backup files; `engine.simulate` replays the very same functions
for `ferry preview`, so the preview and the engine cannot disagree.

Decisions (research notes sections 5 and 6; where the notes say [inferred], this is ours):

* **Short-term set.** `points` unit: the newest N points. `days` unit: the points
  whose date is on or after `today - N days`. The day of the run is day 0 and is not
  counted, so N+1 calendar days are kept; days without backups count; and at least
  `min_points_days_mode` newest points are always kept (`[retention] min_points`,
  default 3). The newest point is
  always kept. The short-term set is always a suffix of the chain (oldest first).
* **Without GFS** (forever-forward): while the active chain (the newest full and its
  increments) has points older than the short-term set, the oldest increment is merged
  into the full, which takes that increment's id and time. All the merges a shrunken
  policy needs are planned in one run.
* **With GFS** (forward incremental): no merges. "Short-term counts only the active
  chain": an older chain is needed only while the active chain alone holds fewer
  points than the short-term set, which is the same as "an older chain goes when its
  last point leaves the short-term set" (the forward-incremental rule). When it goes,
  its increments are deleted; its full too unless it still carries a flag. A flagged
  full stays alone until its last flag expires, then goes at the next run.
* **Flags** expire at the first run (or background retention pass) on or after their
  expiry, counted from the day the flag was *assigned* (the run that made the full,
  later than the GFS day for a caught-up full) with the current policy's keep, so
  changing the keep recalculates expiry. A flag whose cycle was switched off (or GFS
  off) keeps the expiry it was given when assigned (`RetentionPoint.until`): unticking a
  cycle for a moment must not discard months of fulls, and nothing in the reference
  product's documentation says it does. A flag without a recorded expiry (metadata
  written before Ferry recorded it) whose cycle is off expires at the next run.
* **Immutability** (`[storage] immutable_days = N`, `RetentionPolicy.immutable_days`;
  `engine.immutability`): a point dated after `now - N days` is never deleted or merged
  away (its reason says "immutable until <date>"); the immutable points are a suffix of
  the chain and simply widen the kept suffix. Without GFS the chain is then forward
  incremental, not forever-forward: no merge (a merge rewrites the full every locked
  increment reads), a periodic synthetic full instead (`periodic_full_due`), and an old
  chain goes as a whole once its last point left short-term retention and its
  immutability. The targets lock the objects (S3 Object Lock, file attributes) against
  the wall clock; the rule here is the plan's, against the run's clock, so `ferry
  preview` and a run agree.
* **GFS fulls** are planned by `plan_gfs` *before* the run writes its point: the new
  point is made a full carrying those flags (synthetic or active, the executor's
  choice). See `plan_gfs_dates` for the catch-up rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

from engine.gfs import (
    FLAG_NAMES,
    FLAGS,
    expiry_for,
    flag_expiry,
    gfs_flags_for,
    in_catch_up_period,
    last_scheduled,
)
from engine.immutability import immutable_from
from engine.model import GfsPolicy, Kind, RestorePoint, RetentionPolicy

__all__ = [
    "Action",
    "RetentionPoint",
    "apply",
    "flag_expiry",
    "gfs_action",
    "gfs_flags_for",
    "plan_gfs",
    "plan_background",
    "plan_gfs_dates",
    "plan_retention",
    "immutable_from",
    "points_from_chain",
    "short_term_count",
]

MODES = ("periodic", "immediate")


class _FlagState(NamedTuple):
    """One point's flags worked out under one policy (memoised by `_flag_state`)."""
    keeps: tuple[int | None, ...]  # the policy's keep counts it was worked out for
    gfs: dict[str, date]  # copy of the point's flags, to notice a caller's edit
    expiries: dict[str, date | None]  # flag -> expiry (None: none recorded)
    known: dict[str, date]  # the flags of `expiries` that have one
    first: date  # earliest expiry (date.min when one is unknown)
    text: str  # the reason while every flag is live
    off: frozenset[str]  # flags whose cycle is off


@dataclass(slots=True)
class RetentionPoint:
    """What the rules see of one restore point of a target chain (lists are oldest first)."""

    id: str
    time: datetime
    kind: Kind  # full | incremental
    gfs: dict[str, date] = field(default_factory=dict)  # flag -> the GFS day it stands for
    size: int = 0
    # flag -> day it was assigned (absent: its GFS day); expiry counts from it
    assigned: dict[str, date] = field(default_factory=dict)
    # flag -> expiry given when assigned; it holds once the flag's cycle is off
    until: dict[str, date] = field(default_factory=dict)
    # Expiry dates worked out for this point's flags under one policy (see `_flag_state`).
    # The rules never change a RetentionPoint in place (`apply` makes new ones), so the
    # simulator's unchanged points keep it from run to run; it is checked against
    # `gfs` and the policy before use, so a caller that edits `gfs` is still safe.
    _memo: _FlagState | None = field(default=None, init=False, repr=False, compare=False)


@dataclass
class Action:
    """One retention step, in the order the executor must run them.

    * ``merge``: merge the increment `point` into the full right before it; the full
      then takes that increment's id and time and keeps its own size.
    * ``delete-chain``: delete exactly the points in `points` (an old forward chain:
      its increments, plus its full when the full carries no flag). No point left
      depends on them.
    * ``expire-flag``: remove `flag` from `point`.
    * ``gfs-full``: make `point` (the run's new point) a full carrying `flags`, each
      standing for `dates[flag]` (its GFS day; the point's date if absent), assigned on
      `assigned` (the run's day) and expiring on `until[flag]` under the policy then.
    * ``periodic-full``: make `point` (the run's new increment) a synthetic full, no
      flags (`engine.immutability.periodic_full_due`); it keeps its size here.
    """

    kind: str
    point: str = ""
    points: list[str] = field(default_factory=list)
    flag: str = ""
    flags: list[str] = field(default_factory=list)
    reason: str = ""
    dates: dict[str, date] = field(default_factory=dict)
    assigned: date | None = None
    until: dict[str, date] = field(default_factory=dict)


def points_from_chain(chain: list[RestorePoint]) -> list[RetentionPoint]:
    """Views of a machine's forward chain (metadata order); a flag without a stored
    GFS day is taken as standing for the point's own date, one without an assignment
    date as assigned on its GFS day."""
    out = []
    for p in chain:
        if p.kind not in (Kind.FULL, Kind.INCREMENTAL):
            raise ValueError(f"retention handles forward chains only; point {p.id} is {p.kind}")
        if not p.gfs:
            out.append(RetentionPoint(p.id, p.time, Kind(p.kind), {}, p.size))
            continue
        dates = {f: date.fromisoformat(p.gfs_dates[f]) if p.gfs_dates.get(f) else p.time.date()
                 for f in p.gfs}
        assigned = {f: date.fromisoformat(p.gfs_assigned[f]) for f in p.gfs
                    if p.gfs_assigned.get(f)}
        until = {f: date.fromisoformat(p.gfs_until[f]) for f in p.gfs if p.gfs_until.get(f)}
        out.append(RetentionPoint(p.id, p.time, Kind(p.kind), dates, p.size,
                             assigned, until))
    return out


def _gfs_on(policy: RetentionPolicy) -> GfsPolicy | None:
    gfs = policy.gfs
    return gfs if gfs is not None and gfs.enabled else None


# --------------------------------------------------------------------------- GFS fulls


def plan_gfs_dates(points: list[RetentionPoint], policy: RetentionPolicy, now: datetime,
                   mode: str, last_run: datetime | None = None) -> dict[str, date]:
    """Flags the point this run produces must carry, each with the GFS day it stands for.

    For each cycle, take its newest scheduled day `s` on or before today; the run makes
    that full when no point already carries the flag assigned on `s` (a GFS day is
    counted once, however many runs a day has) and:

    * immediate mode: `s` is today. A GFS day without a run gets no GFS full.
    * periodic mode: `s` is today, or no run happened since `s` (`last_run` before `s`:
      a missed GFS day is made up at the next run; only the newest missed one), or
      today is still inside the chosen week (M) / month (Y) of `s` (the notes'
      "inside the chosen week or month" rule, which also covers a job or GFS
      enabled mid-week). When GFS is enabled *after* the chosen week or month has
      passed, none of these hold, so the first one comes next month or year.

    `last_run` is the time of the last run that produced a point; when None the newest
    point's time is used (None for a new job: then only today and the period rule count).
    The returned date is the GFS day `s` the full stands for; the flag is *assigned* on
    the day of the run (`gfs_action`), and its expiry counts from that day, as the
    reference product counts from the date the flag was assigned.
    """
    gfs = _gfs_on(policy)
    if mode not in MODES:
        raise ValueError(f"not a job mode: {mode!r} (periodic or immediate)")
    if gfs is None:
        return {}
    today = now.date()
    if last_run is None and points:
        last_run = points[-1].time
    last_day = last_run.date() if last_run is not None else None
    out: dict[str, date] = {}
    for flag in FLAGS:
        s = last_scheduled(gfs, flag, today)
        if s is None:
            continue
        if mode == "immediate":
            due = s == today
        else:
            due = (s == today or (last_day is not None and s > last_day)
                   or in_catch_up_period(gfs, flag, s, today))
        if due and not any(p.gfs.get(flag) == s for p in points):
            out[flag] = s
    return out


def plan_gfs(points: list[RetentionPoint], policy: RetentionPolicy, now: datetime, mode: str,
             last_run: datetime | None = None) -> list[str]:
    """Flags (W, M, Y order) the point this run produces must carry as a GFS full; [] = none."""
    return list(plan_gfs_dates(points, policy, now, mode, last_run))


def gfs_action(point: str, dates: dict[str, date], policy: RetentionPolicy, today: date,
               method: str = "synthetic") -> Action:
    """The `gfs-full` action for a new point that `plan_gfs_dates` flagged, assigned
    `today` (the run's day), each flag's expiry computed under `policy`."""
    names = "+".join(FLAG_NAMES[f] for f in dates)
    return Action("gfs-full", point=point, flags=list(dates), dates=dict(dates),
                  reason=f"{names} full ({method})", assigned=today,
                  until=expiries_at_assignment(list(dates), policy, today))


def expiries_at_assignment(flags: list[str], policy: RetentionPolicy, today: date
                           ) -> dict[str, date]:
    """flag -> expiry of a flag assigned `today` under `policy` (its configured cycles)."""
    gfs = _gfs_on(policy)
    keeps = _keeps(gfs)
    return {f: expiry_for(f, today, keeps[FLAGS.index(f)])
            for f in flags if keeps[FLAGS.index(f)] is not None}


# --------------------------------------------------------------------------- short-term


def short_term_count(points: list[RetentionPoint], policy: RetentionPolicy, now: datetime) -> int:
    """How many of the newest points the short-term rule keeps (see module docstring)."""
    n = len(points)
    if n == 0:
        return 0
    if policy.unit == "days":
        cutoff = datetime.combine(now.date() - timedelta(days=policy.keep), time.min,
                                  tzinfo=now.tzinfo)
        inside = 0
        for p in reversed(points):
            if p.time < cutoff:
                break
            inside += 1
        return min(n, max(inside, policy.min_points_days_mode, 1))
    if policy.unit != "points":
        raise ValueError(f"not a retention unit: {policy.unit!r} (points or days)")
    return min(n, max(policy.keep, 1))


def _chain_starts(points: list[RetentionPoint]) -> list[int]:
    return [i for i, p in enumerate(points) if i == 0 or p.kind == Kind.FULL]


_NO_FLAGS: dict[str, date] = {}  # shared, never written: most points carry no flag


def _keeps(gfs: GfsPolicy | None) -> tuple[int | None, int | None, int | None]:
    """Keep counts (W, M, Y) of the configured cycles, None for a cycle that is off."""
    if gfs is None:
        return (None, None, None)
    w, m, y = gfs.weekly, gfs.monthly, gfs.yearly
    return (None if w is None else max(0, w.keep), None if m is None else max(0, m.keep),
            None if y is None else max(0, y.keep))


def _flag_state(p: RetentionPoint, keeps: tuple[int | None, ...]) -> _FlagState:
    """The point's flag expiries, earliest expiry, reason text and off flags.

    A configured cycle's flag expires `keep` after the day it was assigned; a flag whose
    cycle is off keeps the expiry it was given when assigned (None: none recorded, so it
    is due at once). `text` is the reason while every flag is live ("weekly until ...").
    Memoised on the point: the simulator asks for every point of every day.
    """
    m = p._memo
    if m is not None and m.keeps == keeps and m.gfs == p.gfs:
        return m
    expiries: dict[str, date | None] = {}
    off: set[str] = set()
    for flag, due in p.gfs.items():
        n = keeps[FLAGS.index(flag)] if flag in FLAGS else None
        if n is None:
            off.add(flag)
            expiries[flag] = p.until.get(flag)
        else:
            expiries[flag] = expiry_for(flag, p.assigned.get(flag, due), n)
    known = {f: d for f, d in expiries.items() if d is not None}
    first = date.min if len(known) < len(expiries) else min(known.values(), default=date.max)
    text = _until_text(expiries, off)
    m = _FlagState(keeps, dict(p.gfs), expiries, known, first, text, frozenset(off))
    p._memo = m
    return m


def _until_text(expiries: Mapping[str, date | None], off: set[str] | frozenset[str]) -> str:
    return ", ".join(f"{FLAG_NAMES[f]} until {until.isoformat()}"
                     + (" (cycle off)" if f in off else "")
                     for f in FLAGS if (until := expiries.get(f)) is not None)


def _live_flags(points: list[RetentionPoint], gfs: GfsPolicy | None, today: date
                ) -> tuple[list[dict[str, date]], list[tuple[int, str, str]], list[str]]:
    """Per point: its unexpired flags (flag -> expiry) and their reason text ("" when
    none); plus (index, flag, why) of the expired ones. One pass: the simulator asks
    for every point of every day."""
    keeps = _keeps(gfs)
    live: list[dict[str, date]] = []
    texts: list[str] = []
    expired: list[tuple[int, str, str]] = []
    for i, p in enumerate(points):
        if not p.gfs:
            live.append(_NO_FLAGS)
            texts.append("")
            continue
        m = p._memo
        if m is None or m.keeps != keeps or m.gfs != p.gfs:
            m = _flag_state(p, keeps)
        if m.first > today:  # nothing due yet: every flag is live
            live.append(m.known)  # first > today: every flag has a (future) expiry
            texts.append(m.text)
            continue
        kept: dict[str, date] = {}
        for flag, until in m.expiries.items():
            off = "GFS is off" if gfs is None else f"{FLAG_NAMES.get(flag, flag)} cycle off"
            if until is None:
                expired.append((i, flag, f"{off}, no expiry recorded"))
            elif until > today:
                kept[flag] = until
            elif flag in m.off:
                expired.append((i, flag, f"expired on {until.isoformat()} ({off}; the "
                                         "expiry it was given when assigned)"))
            else:
                expired.append((i, flag, f"expired on {until.isoformat()}"))
        live.append(kept)
        texts.append(_until_text(kept, m.off))
    return live, expired, texts


def _st_reason(policy: RetentionPolicy) -> str:
    imm = (f"; immutable for {policy.immutable_days} days"
           if policy.immutable_days > 0 else "")
    if policy.unit == "days":
        return f"short-term keeps {policy.keep} days + the day of the run{imm}"
    return f"short-term keeps {policy.keep} points{imm}"


def _delete_reason(points: list[RetentionPoint], a: int, b: int, whole: bool,
                   policy: RetentionPolicy) -> str:
    first, last = points[a].time.date(), points[b - 1].time.date()
    if b - a == 1:
        return f"the {first} full has no flag left and is older than short-term ({_st_reason(policy)})"
    if whole:
        return f"the {first}..{last} chain left short-term retention ({_st_reason(policy)})"
    return (f"the increments of the {first} full (to {last}) left short-term retention "
            f"({_st_reason(policy)}); the flagged full stays")


def plan_retention(points: list[RetentionPoint], policy: RetentionPolicy,
                   now: datetime, merges: bool = True) -> list[Action]:
    """Actions after a new point was added: expire flags, delete old chains, merge.

    Order: expire-flag, delete-chain (oldest first), merge (oldest first). Each step is
    valid on the chain the previous ones leave (see `apply`). `merges=False` is the
    background retention pass (`plan_background`).
    """
    n = len(points)
    if n == 0:
        return []
    today = now.date()
    gfs = _gfs_on(policy)
    live, expired, _ = _live_flags(points, gfs, today)
    actions = [Action("expire-flag", point=points[i].id, flag=f, reason=why)
               for i, f, why in expired]
    # index of the oldest kept point: short-term, widened by immutability
    locked = immutable_from(points, policy, now)
    boundary = min(n - short_term_count(points, policy, now), locked)
    starts = _chain_starts(points)
    ends = starts[1:] + [n]
    for a, b in zip(starts[:-1], ends[:-1], strict=True):
        if b - 1 >= boundary or (b - a == 1 and live[a]):
            continue  # its last point is still short-term, or it is a lone flagged full
        doomed = list(range(a + 1, b))
        if not live[a]:
            doomed.insert(0, a)
        if doomed:
            actions.append(Action("delete-chain", points=[points[j].id for j in doomed],
                                  reason=_delete_reason(points, a, b, doomed[0] == a, policy)))
    if gfs is None and merges and policy.immutable_days <= 0:
        a = starts[-1]
        if points[a].kind == Kind.FULL and not live[a]:
            actions.extend(Action("merge", point=points[j].id,
                                  reason=f"over short-term retention ({_st_reason(policy)})")
                           for j in range(a + 1, boundary + 1))
    return actions


def plan_background(points: list[RetentionPoint], policy: RetentionPolicy,
                    now: datetime) -> list[Action]:
    """The daily background retention pass of a chain that may have no runs (disabled
    job, source gone): expired flags go, and the files they alone kept (a lone full, an
    old chain past short-term retention). No merge: that is a transform of a run."""
    return plan_retention(points, policy, now, merges=False)


# --------------------------------------------------------------------------- apply


def apply(points: list[RetentionPoint], actions: list[Action]) -> list[RetentionPoint]:
    """The chain after `actions` (a new list; the input is not modified).

    Raises ValueError on an action the rules never plan: merging a flagged full or a
    point that is not an increment right after a full, deleting a flagged full or a
    point a remaining increment depends on, expiring a flag the point lacks.
    """
    pts = list(points)
    for act in actions:
        index = {p.id: i for i, p in enumerate(pts)}

        def at(pid: str, act: Action = act, index: dict[str, int] = index) -> int:
            try:
                return index[pid]
            except KeyError:
                raise ValueError(f"{act.kind}: no point {pid!r} in the chain") from None

        if act.kind == "merge":
            i = at(act.point)
            inc, full = pts[i], pts[i - 1] if i > 0 else None
            if inc.kind != Kind.INCREMENTAL or full is None or full.kind != Kind.FULL:
                raise ValueError(f"merge: {act.point!r} is not an increment right after a full")
            if full.gfs:
                raise ValueError(f"merge: the full {full.id!r} carries GFS flags {sorted(full.gfs)}")
            pts[i - 1:i + 1] = [RetentionPoint(inc.id, inc.time, Kind.FULL, {}, full.size)]
        elif act.kind == "delete-chain":
            doomed = {at(pid) for pid in act.points}
            for i in sorted(doomed):
                if pts[i].gfs:
                    raise ValueError(f"delete-chain: {pts[i].id!r} carries GFS flags")
                j = i + 1
                if j < len(pts) and j not in doomed and pts[j].kind == Kind.INCREMENTAL:
                    raise ValueError(f"delete-chain: {pts[j].id!r} depends on {pts[i].id!r}")
            pts = [p for i, p in enumerate(pts) if i not in doomed]
        elif act.kind == "expire-flag":
            i = at(act.point)
            if act.flag not in pts[i].gfs:
                raise ValueError(f"expire-flag: {act.point!r} has no {act.flag!r} flag")
            p = pts[i]
            pts[i] = RetentionPoint(p.id, p.time, p.kind, _without(p.gfs, act.flag), p.size,
                               _without(p.assigned, act.flag), _without(p.until, act.flag))
        elif act.kind == "periodic-full":
            i = at(act.point)
            p = pts[i]
            if p.kind != Kind.INCREMENTAL:
                raise ValueError(f"periodic-full: {act.point!r} is not an increment")
            pts[i] = RetentionPoint(p.id, p.time, Kind.FULL, p.gfs, p.size, p.assigned, p.until)
        elif act.kind == "gfs-full":
            i = at(act.point)
            p = pts[i]
            gfs, assigned, until = dict(p.gfs), dict(p.assigned), dict(p.until)
            for flag in act.flags:
                if flag not in FLAGS:
                    raise ValueError(f"gfs-full: not a GFS flag: {flag!r}")
                gfs[flag] = act.dates.get(flag, p.time.date())
                assigned[flag] = act.assigned or gfs[flag]
                if flag in act.until:
                    until[flag] = act.until[flag]
            pts[i] = RetentionPoint(p.id, p.time, Kind.FULL, gfs, p.size, assigned, until)
        else:
            raise ValueError(f"not a retention action: {act.kind!r}")
    return pts


def _without(d: dict[str, date], flag: str) -> dict[str, date]:
    return {f: v for f, v in d.items() if f != flag}
