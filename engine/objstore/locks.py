"""S3 Object Lock (COMPLIANCE) dates: the point's immutability and block generations.

A point made at time T with `immutable_days = N` must stay undeletable until
T + N days. Its manifest is locked exactly that long. A block is locked when
written until T + N + GENERATION; a later point reusing it needs it locked until
its own T' + N, and only when the block's lock falls short is it extended, again
by a whole generation. So a block unchanged for months costs one retention request
per generation (10 days), not one per run.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.model import MachineMeta
from engine.repository.metadata import MetadataError

GENERATION = timedelta(days=10)


def utc(t: datetime) -> datetime:
    """Aware UTC; naive times are local (restore point times are)."""
    return t.astimezone(UTC)


def point_lock(point_time: datetime, days: int) -> datetime | None:
    """Until when a point's objects must stay, or None when immutability is off."""
    return utc(point_time) + timedelta(days=days) if days > 0 else None


def wall_now() -> datetime:
    return datetime.now(UTC)


def effective(until: datetime | None) -> datetime | None:
    """A lock date worth setting: one already past (a replayed old point) is no lock."""
    if until is None or until <= wall_now() + timedelta(seconds=5):
        return None
    return until.replace(microsecond=0)


def block_lock(required: datetime | None) -> datetime | None:
    """The lock a block gets when written or extended for a point needing `required`."""
    return effective(required + GENERATION) if required is not None else None


def to_epoch(t: datetime | None) -> int:
    return int(t.timestamp()) if t is not None else 0


def from_epoch(s: int) -> datetime:
    return datetime.fromtimestamp(s, UTC)


def utc_from_iso(text: str) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text).astimezone(UTC)


def lock_facts(meta: MachineMeta) -> dict[str, object]:
    """`facts.immutable_until` (point id -> ISO end of its manifest's lock), created empty;
    a chain.json holding something else there is refused, not trusted."""
    imm = meta.facts.setdefault("immutable_until", {})
    if not isinstance(imm, dict):
        raise MetadataError(f"{meta.job}/{meta.machine}: facts.immutable_until is not a table")
    return imm
