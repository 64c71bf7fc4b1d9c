"""Transforms of a whole job after its tasks: removal of machines gone from the source."""

from __future__ import annotations

from datetime import datetime

from engine.repository.repository import Repository


def after_session(spec, machines_seen: list[str], target: Repository,
                  now: datetime) -> list[dict]:
    """Actions done (dicts with machine, action, point, detail); see docs/ARCHITECTURE.md."""
    return []
