"""Why the retention rules keep each point, and what a switched-off GFS cycle keeps.

The explanations `ferry preview` and the console show next to each point; split
from `engine.retention` (the rules themselves), whose private helpers they read so
that a reason can never disagree with the plan.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import lru_cache

from engine.gfs import FLAG_NAMES, FLAGS
from engine.immutability import immutable_from, immutable_until
from engine.model import RetentionPolicy
from engine.retention import (
    RetentionPoint,
    _chain_starts,
    _gfs_on,
    _keeps,
    _live_flags,
    short_term_count,
)

__all__ = ["kept_after_switch_off", "reasons", "switched_off_notes", "switched_off_text"]


def kept_after_switch_off(points: list[RetentionPoint], policy: RetentionPolicy,
                          today: date) -> dict[str, tuple[int, date]]:
    """flag -> (how many fulls, latest expiry) for each GFS cycle that is off in `policy`
    while the chain still holds live fulls flagged by it (they keep their recorded expiry)."""
    keeps = _keeps(_gfs_on(policy))
    live, _, _ = _live_flags(points, _gfs_on(policy), today)
    out = {}
    for flag in FLAGS:
        ends = [flags[flag] for flags in live if flag in flags]
        if keeps[FLAGS.index(flag)] is None and ends:
            out[flag] = (len(ends), max(ends))
    return out


def switched_off_text(kept: dict[str, tuple[int, date]]) -> list[str]:
    """"3 weekly fulls stay until 2026-03-01", one line per cycle of `kept_after_switch_off`."""
    return [f"{n} {FLAG_NAMES[f]} full{'s' * (n != 1)} stay{'s' * (n == 1)} until "
            f"{until.isoformat()} ({FLAG_NAMES[f]} cycle off: they keep the expiry they "
            f"were given)" for f, (n, until) in kept.items()]


def switched_off_notes(points: list[RetentionPoint], policy: RetentionPolicy,
                       today: date) -> list[str]:
    """`switched_off_text` of one chain."""
    return switched_off_text(kept_after_switch_off(points, policy, today))


# --------------------------------------------------------------------------- reasons


def reasons(points: list[RetentionPoint], policy: RetentionPolicy, now: datetime) -> dict[str, str]:
    """Point id -> why the rules keep it, several reasons joined with ", ".

    "short-term 1/7" (points unit, 1 = newest), "short-term day 0/6" (days unit: age in
    days / N; day 0 is the day of the run), "short-term minimum 2/3" (kept by the
    3-point minimum), "weekly until 2027-01-03" (the flag's expiry date), "needed by a
    later point" (an older point of a chain whose later point is kept). A point the
    next retention run would remove says so ("not kept: ...").
    """
    n = len(points)
    today = now.date()
    gfs = _gfs_on(policy)
    live, _, own = _live_flags(points, gfs, today)
    boundary = n - short_term_count(points, policy, now)
    label = _days_label if policy.unit == "days" else _points_label
    for i in range(max(boundary, 0), n):
        text = label(points[i], n - i, policy, today)
        own[i] = f"{text}, {own[i]}" if own[i] else text
    locked = immutable_from(points, policy, now)
    for i in range(locked, n):
        text = f"immutable until {immutable_until(points[i], policy).date().isoformat()}"
        own[i] = f"{own[i]}, {text}" if own[i] else text
    out = dict(zip([p.id for p in points], own, strict=True))
    if all(own):
        return out
    starts = _chain_starts(points)
    ends = starts[1:] + [n]
    for a, b in zip(starts, ends, strict=True):
        # forever-forward active chain (immutable chains are forward incremental)
        merging = gfs is None and b == n and not live[a] and policy.immutable_days <= 0
        last_kept = b - 1
        while last_kept >= a and not own[last_kept]:
            last_kept -= 1
        for j in range(a, b):
            if own[j]:
                continue
            if merging and j == a:
                out[points[j].id] = "not kept: the next retention run moves this full forward"
            elif merging:
                out[points[j].id] = "not kept: the next retention run merges it into the full"
            elif j < last_kept:
                out[points[j].id] = "needed by a later point"
            else:
                out[points[j].id] = "not kept: the next retention run deletes it"
    return out


@lru_cache(maxsize=4096)
def _label(kind: str, a: int, b: int) -> str:
    return {"points": "short-term {a}/{b}", "day": "short-term day {a}/{b}",
            "min": "short-term minimum {a}/{b}"}[kind].format(a=a, b=b)


def _points_label(p: RetentionPoint, rank: int, policy: RetentionPolicy, today: date) -> str:
    return _label("points", rank, policy.keep)


def _days_label(p: RetentionPoint, rank: int, policy: RetentionPolicy, today: date) -> str:
    age = (today - p.time.date()).days
    if age <= policy.keep:
        return _label("day", max(age, 0), policy.keep)
    return _label("min", rank, policy.min_points_days_mode)
