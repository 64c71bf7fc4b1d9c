"""Plain dataclasses shared by every part of the engine (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """Kind of a restore point, named after the backup file that holds it."""

    FULL = "full"
    INCREMENTAL = "incremental"
    ROLLBACK = "rollback"

    @property
    def extension(self) -> str:
        return {Kind.FULL: ".fbk", Kind.INCREMENTAL: ".fib", Kind.ROLLBACK: ".frb"}[self]


class Method(StrEnum):
    """How a chain grows (research notes section 2)."""

    FORWARD = "forward"
    FOREVER_FORWARD = "forever-forward"
    REVERSE = "reverse"


class Status(StrEnum):
    """Task and session status; the worst task wins (see `worst`)."""

    SUCCESS = "Success"
    WARNING = "Warning"
    FAILED = "Failed"

    @property
    def level(self) -> str:
        """The log level a result with this status is reported at."""
        return {Status.SUCCESS: "info", Status.WARNING: "warning"}.get(self, "error")

    @staticmethod
    def worst(statuses: list[Status]) -> Status:
        order = [Status.SUCCESS, Status.WARNING, Status.FAILED]
        return max(statuses, key=order.index, default=Status.SUCCESS)


@dataclass
class DiskInfo:
    """One disk of a machine as of one restore point."""

    name: str
    size: int


@dataclass
class RestorePoint:
    """One restore point in a machine's chain (one entry of the .fbm metadata)."""

    id: str
    time: datetime
    kind: Kind
    file: str  # file name inside the machine folder
    disks: list[DiskInfo]
    size: int = 0  # bytes of the backup file that holds this point
    gfs: list[str] = field(default_factory=list)  # "W", "M", "Y"
    source_point: str = ""  # for copies: id of the source point copied
    complete: bool = True
    gfs_dates: dict[str, str] = field(default_factory=dict)  # flag -> GFS day it stands for (ISO)
    block_size: int = 0  # block size of the file holding this point
    key: str = ""  # id of the chain key its blocks are sealed with ("" = not encrypted)

    @property
    def encrypted(self) -> bool:
        return bool(self.key)
    # flag -> the day the flag was put on the point (ISO): expiry counts from it; it is
    # later than the GFS day for a late (caught-up) full. Absent in older metadata: the
    # GFS day is used.
    gfs_assigned: dict[str, str] = field(default_factory=dict)
    # flag -> its expiry as computed when it was assigned (ISO). It holds once the cycle
    # is switched off, so unticking a cycle never discards existing GFS fulls.
    gfs_until: dict[str, str] = field(default_factory=dict)

    def drop_flag(self, flag: str) -> None:
        """Remove one GFS flag and everything recorded with it."""
        self.gfs = [f for f in self.gfs if f != flag]
        for d in (self.gfs_dates, self.gfs_assigned, self.gfs_until):
            d.pop(flag, None)

    @property
    def logical_size(self) -> int:
        return sum(d.size for d in self.disks)


@dataclass
class MachineMeta:
    """What a machine's metadata file holds: its chain, oldest point first."""

    job: str
    machine: str
    block_size: int
    method: Method
    compression: str
    points: list[RestorePoint] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)  # inventory facts, ids
    gone_since: str = ""  # ISO time the machine was first seen missing from the source
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)  # key id -> wrapped chain key (keys.py)

    def point(self, ref: str) -> RestorePoint:
        """Find a point by id, by `latest`, or by time (the newest point at or before it)."""
        if not self.points:
            raise LookupError(f"machine {self.machine!r} has no restore points")
        if ref in ("", "latest"):
            return self.points[-1]
        for p in self.points:
            if p.id == ref:
                return p
        from engine.units import parse_time  # local: units is tiny but keeps model import-free

        try:
            when = parse_time(ref)
        except ValueError:
            raise LookupError(f"no restore point {ref!r} for machine {self.machine!r}") from None
        older = [p for p in self.points if p.time <= when]
        if not older:
            raise LookupError(f"no restore point at or before {ref} for {self.machine!r}")
        return older[-1]

    def chains(self) -> list[list[RestorePoint]]:
        """Split the points into chains, each starting at a full (forward) or ending at it."""
        if self.method == Method.REVERSE:
            return [list(self.points)] if self.points else []
        out: list[list[RestorePoint]] = []
        for p in self.points:
            if p.kind == Kind.FULL or not out:
                out.append([p])
            else:
                out[-1].append(p)
        return out


@dataclass
class Stats:
    """Counters of one task (CONTRACT: processed, read, transferred, written)."""

    processed: int = 0
    read: int = 0
    transferred: int = 0
    written: int = 0
    blocks: int = 0
    blocks_sent: int = 0

    def add(self, other: Stats) -> None:
        for name in ("processed", "read", "transferred", "written", "blocks", "blocks_sent"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class GfsCycle:
    """One GFS cycle: keep flagged fulls for `keep` weeks/months/years.

    `at` is the weekday for weekly ("sunday"), the week of the month for monthly
    ("first".."fourth", "last") and the month for yearly ("january"...).
    """

    keep: int
    at: str


@dataclass
class GfsPolicy:
    """The GFS cycles a chain keeps (None: that cycle is off)."""
    weekly: GfsCycle | None = None
    monthly: GfsCycle | None = None
    yearly: GfsCycle | None = None
    method: str = "synthetic"  # or "active"

    @property
    def enabled(self) -> bool:
        return any((self.weekly, self.monthly, self.yearly))


@dataclass
class RetentionPolicy:
    """Short-term retention plus optional GFS (CONTRACT `[retention]`)."""

    keep: int = 7
    unit: str = "points"  # or "days"
    gfs: GfsPolicy | None = None
    deleted_items_days: int = 30
    # `[retention] min_points`: days mode always keeps at least this many points (research
    # notes section 5: 3, changeable like the reference product's registry value)
    min_points_days_mode: int = 3
    # `[storage] immutable_days` (declared once there, copied here by the job loader so
    # the pure rules, the preview and every target see it): a point younger than this
    # is never deleted or merged away, whatever the short-term and GFS rules say
    immutable_days: int = 0
