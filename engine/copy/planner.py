"""What one run must copy for one machine (research notes section 3).

No target chain: a full of the newest complete source point. Otherwise the
newest point (periodic; the ones in between are skipped) or every newer point
oldest first (immediate), each as one increment. Points already copied,
incomplete points and points of another block size are never copied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.errors import FerryError
from engine.model import Kind, MachineMeta, RestorePoint


class PlanError(FerryError):
    """The machine cannot be copied as things stand (one line for the task result)."""


@dataclass
class PlanItem:
    """One source point to copy and how (full or incremental)."""
    source: RestorePoint
    kind: Kind  # full | incremental
    # id of the target's latest point this one replaces: an active GFS full of the
    # point already copied (read whole from the source again, same id and time)
    replaces: str = ""


def plan_machine(src: MachineMeta, target: dict[str, Any] | None, mode: str,
                 encrypted: bool = False, active_full: bool = False) -> list[PlanItem]:
    """The points to copy, oldest first; empty when the target is up to date.

    Turning `encrypted` on or off starts a new chain: the first point copied after
    the switch is a full (the old chain ages out by retention). So does an operator's
    `active_full` request ("active full now"), which is also how a chain changes its
    block size; with no new point it plans nothing (the caller re-reads the latest).
    """
    points = [p for p in src.points if p.complete]
    if not points:
        return []
    last = target["points"][-1] if target and target["points"] else None
    if not target or last is None:
        return [PlanItem(points[-1], Kind.FULL)]
    copied_at = datetime.fromisoformat(last["time"])
    copied = {p["source_point"] for p in target["points"]}
    new = [p for p in points if p.time > copied_at and p.id not in copied]
    if not new:
        return []
    if mode == "periodic":
        new = new[-1:]
    want = None if active_full else target.get("block_size")
    for p in new:
        size = p.block_size or src.block_size
        if want and size != want:
            raise PlanError(f"Restore point is located in backup file with different block size "
                            f"({size} bytes, the copy uses {want}); run an active full of the "
                            f"copy job to change it")
    items = [PlanItem(p, Kind.INCREMENTAL) for p in new]
    if bool(last.get("key")) != encrypted or active_full:
        items[0].kind = Kind.FULL
    return items
