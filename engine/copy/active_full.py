""""Active full now": an operator's request that a machine's next copy be a full.

The request is a small file per machine next to the job's history
(`<history folder>/active-full/<job>/<machine>`), not in the chain's metadata: the
console or a shell may ask while a run holds the chain, and the metadata is the
chain's commit point, written only under its lock by the run. The planner
(`plan_machine(active_full=True)`) honours it at the machine's next copy, which
clears it once the full is committed. Names go through `safe_name`, so a request
can never name a path outside its folder.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from engine.history import history_path
from engine.repository.repository import safe_name

if TYPE_CHECKING:
    from engine.jobs.load import JobSpec


def _folder(spec: JobSpec) -> Path:
    return history_path(spec).parent / "active-full" / safe_name(spec.name, "job name")


def _file(spec: JobSpec, machine: str) -> Path:
    return _folder(spec) / safe_name(machine, "machine name")


def request(spec: JobSpec, machine: str, when: datetime | None = None) -> Path:
    """Ask for a full at `machine`'s next copy (idempotent); returns the request file."""
    path = _file(spec, machine)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text((when or datetime.now()).isoformat(timespec="seconds") + "\n",
                   encoding="utf-8")
    os.replace(tmp, path)
    return path


def requested(spec: JobSpec, machine: str) -> bool:
    try:
        return _file(spec, machine).is_file()
    except ValueError:  # a name that can't be a file name can't have a request
        return False


def pending(spec: JobSpec) -> list[str]:
    """Machines with an active full requested, sorted."""
    folder = _folder(spec)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.endswith(".tmp"))


def clear(spec: JobSpec, machine: str) -> None:
    """The full was committed (or the operator withdrew the request)."""
    try:
        _file(spec, machine).unlink(missing_ok=True)
    except ValueError:
        pass


__all__ = ["clear", "pending", "request", "requested"]
