"""Immutability in the retention rules: which points are locked, and the periodic full.

Pure functions over `engine.retention.RetentionPoint` lists, shared by the copy
runner (`engine.copy.retain`) and `ferry preview` (`engine.simulate`), so both agree.

* **Locked points.** With `[storage] immutable_days = N`, a point dated after
  `now - N days` is never deleted or merged away; points are in time order, so the
  locked points are a suffix of the chain (`immutable_from`).
* **No forever-forward merge.** A merge rewrites the full's file, the base every
  locked increment reads: an immutable job's chain is forward incremental instead
  (`engine.retention.plan_retention` plans no merge while N > 0).
* **Periodic synthetic full** (`periodic_full_due`, our rule): the run's new point is
  made a synthetic full (on the target, from the chain; nothing extra is read from the
  source) when the chain's newest full is at least `full_period_days` old, by calendar
  day of the points' times: P = max(N, 7). An older chain can go only once its newest
  point passed its immutability, so an immutable job holds about P + N days (plus
  short-term) of points. A period shorter than N would keep N / P locked fulls at once
  (a full's worth of space each); at least 7 keeps a short N from making a full every
  day or two. Only a point not retained yet is made a full (its files are not locked
  yet; `facts["retained_point"]` on a real chain, the run's own new point in the
  preview); a run without a new point makes none.
* **A GFS full waits for a new point** (`gfs_full_waits`, `with_waiting`): a GFS day
  whose run brings no new point would make the latest point a full, replacing the
  files of a point already retained, so maybe locked. An immutable job makes that
  full from the next new point instead, standing for the GFS day it waited for
  (`facts["gfs_waiting"]` on a real chain, carried from run to run in the preview).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from engine.model import Kind, RetentionPolicy

if TYPE_CHECKING:
    from engine.retention import RetentionPoint

FULL_PERIOD_MIN_DAYS = 7


def immutable_from(points: list[RetentionPoint], policy: RetentionPolicy, now: datetime) -> int:
    """Index of the oldest point still immutable at `now` (len(points) when none is)."""
    if policy.immutable_days <= 0:
        return len(points)
    cutoff = now - timedelta(days=policy.immutable_days)
    for i, p in enumerate(points):
        if p.time > cutoff:
            return i
    return len(points)


def immutable_until(p: RetentionPoint, policy: RetentionPolicy) -> datetime:
    """When a point stops being immutable (it may be deleted at the first run after)."""
    return p.time + timedelta(days=policy.immutable_days)


def full_period_days(policy: RetentionPolicy) -> int:
    """Days between the periodic synthetic fulls of an immutable job (module doc)."""
    return max(policy.immutable_days, FULL_PERIOD_MIN_DAYS)


def periodic_full_due(chain: list[RetentionPoint], policy: RetentionPolicy) -> bool:
    """The chain's newest point (the run's new increment) must become a synthetic full:
    immutability is on and the newest full is `full_period_days` or more calendar days
    older than it."""
    if policy.immutable_days <= 0 or not chain or chain[-1].kind != Kind.INCREMENTAL:
        return False
    full = next((p for p in reversed(chain) if p.kind == Kind.FULL), None)
    if full is None:
        return True  # not a forward chain's shape; a full puts it right
    return (chain[-1].time.date() - full.time.date()).days >= full_period_days(policy)


def periodic_full_reason(chain: list[RetentionPoint], policy: RetentionPolicy) -> str:
    """Why `periodic_full_due` said yes, in words (the run's action detail, the preview)."""
    full = next((p for p in reversed(chain[:-1]) if p.kind == Kind.FULL), None)
    age = f"the newest full is {(chain[-1].time.date() - full.time.date()).days} days old" \
        if full is not None else "the chain has no full"
    return (f"periodic synthetic full ({age}; immutable_days = {policy.immutable_days}: "
            f"a full every {full_period_days(policy)} days, no merges)")


def gfs_full_waits(policy: RetentionPolicy, new_point: bool) -> bool:
    """A GFS full due on this run waits for the next new point (module doc)."""
    return policy.immutable_days > 0 and not new_point


def retained_immutable(facts: Mapping[str, Any] | None, point_id: str, immutable_days: int
                       ) -> bool:
    """The point passed its first retention pass (`facts["retained_point"]`) in an
    immutable job (`immutable_days`, or an `immutable_until` the target recorded for it:
    a mover's floor): its files may be locked, so nothing replaces them."""
    if not facts or facts.get("retained_point") != point_id:
        return False
    locks = facts.get("immutable_until")
    return immutable_days > 0 or (isinstance(locks, dict) and point_id in locks)


def with_waiting(dates: Mapping[str, date], waiting: Mapping[str, date],
                 points: list[RetentionPoint]) -> dict[str, date]:
    """The GFS fulls a run must make: those `plan_gfs_dates` planned, and those that
    waited for a new point and no point carries yet; one full stands for a flag's newest
    GFS day when both name it."""
    out = {f: d for f, d in waiting.items() if not any(p.gfs.get(f) == d for p in points)}
    out.update(dates)
    return out


def waiting_line(flags: Mapping[str, date], policy: RetentionPolicy) -> str:
    """What a run said of the GFS fulls it left for the next new point."""
    from engine.gfs import FLAG_NAMES

    names = "+".join(FLAG_NAMES.get(f, f) for f in flags)
    return (f"{names} full waits for the next new point: the latest point was retained "
            f"and is immutable (immutable_days = {policy.immutable_days})")


__all__ = ["FULL_PERIOD_MIN_DAYS", "full_period_days", "gfs_full_waits", "immutable_from",
           "immutable_until", "periodic_full_due", "periodic_full_reason", "retained_immutable",
           "waiting_line", "with_waiting"]
