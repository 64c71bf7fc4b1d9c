"""The target decides what is deleted: a remote mover's retention floor.

A RETAIN frame comes from a copy job on another host, which may be compromised.
Before the rules run, the mover checks the request against its own floor:

* short-term retention keeps at least `min_points` (>= 2) points, in days mode too;
* a GFS flag is kept until the expiry it was given when assigned (`gfs_until`): a
  request that lowers a cycle's keep below that, or switches a cycle off for a flag
  with no recorded expiry, is refused;
* the request's clock may not run ahead of the mover's (a "now" in 2099 would expire
  everything);
* an append-only credential never merges or deletes: its request is stored for the
  admin, who runs it on the mover host (`ferry mover retain`).

A refusal is a RETAIN answer `{"actions": [], "refused": reason}`; the copy job ends
with Warning "retention refused by the target: <reason>". Nothing is changed.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.copy import frames as fr
from engine.gfs import expiry_for
from engine.repository.repository import Repository
from engine.units import now as wall_now

if TYPE_CHECKING:
    from engine.copy.target import TargetMover

log = logging.getLogger("ferry.mover")
FLAGS = "WMY"
CLOCK_SKEW = timedelta(days=1)  # how far a request's "now" may be ahead of the mover's


@dataclass(frozen=True)
class Floor:
    """The mover's own retention floor (`ferry mover --min-points`)."""

    min_points: int = 2


def check_request(repo: Repository, job: str, machine: str, request: dict[str, Any], floor: Floor,
                  clock: datetime | None = None) -> str | None:
    """The reason `request` is below the floor, or None."""
    from engine.copy.retain import policy_from_dict

    try:
        now = datetime.fromisoformat(str(request.get("now")))
        policy = policy_from_dict(request["policy"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise fr.Refused("RETAIN: the request is not a retention policy") from None
    if request.get("point") is not None:
        fr.point_id(request["point"])
    flags = request.get("gfs_full") or {}
    if not isinstance(flags, dict) or any(f not in FLAGS for f in flags):
        raise fr.Refused("RETAIN: gfs_full must map W, M or Y to a date")
    mine = clock or wall_now()
    if now.tzinfo is not None:
        now = now.astimezone().replace(tzinfo=None)
    if now - mine > CLOCK_SKEW:
        return f"the request's clock ({now:%Y-%m-%d}) is ahead of the mover's"
    if policy.unit == "points" and policy.keep < floor.min_points:
        return f"keep {policy.keep} point(s) is below the mover's floor of {floor.min_points}"
    if policy.unit == "days" and (policy.keep < 1 or
                                  policy.min_points_days_mode < floor.min_points):
        return (f"days mode keeping at least {policy.min_points_days_mode} point(s) is below "
                f"the mover's floor of {floor.min_points}")
    if policy.unit not in ("points", "days"):
        raise fr.Refused("RETAIN: unit must be points or days")
    meta = repo.try_load(job, machine)
    gfs = policy.gfs if policy.gfs is not None and policy.gfs.enabled else None
    cycles = {"W": gfs.weekly if gfs else None, "M": gfs.monthly if gfs else None,
              "Y": gfs.yearly if gfs else None}
    for p in meta.points if meta else []:
        for f in p.gfs:
            until = p.gfs_until.get(f)
            cycle = cycles.get(f)
            if cycle is None:
                if not until:
                    return f"the request would drop the {f} GFS full of {p.time:%Y-%m-%d}"
                continue
            if until:
                assigned = p.gfs_assigned.get(f) or p.gfs_dates.get(f) or p.time.date().isoformat()
                if expiry_for(f, date.fromisoformat(assigned), max(0, cycle.keep)) < \
                        date.fromisoformat(until):
                    return (f"the request would expire the {f} GFS full of {p.time:%Y-%m-%d} "
                            f"before {until}")
    return None


def guarded_retain(mover: TargetMover, request: dict[str, Any], background: bool = False) -> dict[str, Any]:
    """Run a remote RETAIN (or background SWEEP) within the mover's rules (module doc)."""
    from engine.copy.retain import apply_retention

    repo, job, machine = mover.repo, mover.job, mover.machine
    floor = mover.policy or Floor()
    reason = check_request(repo, job, machine, request, floor)
    if reason is None and mover.grant.append_only:
        save_request(repo, job, machine, request)
        reason = "append-only"
    if reason is not None:
        log.warning("retention refused for %s/%s: %s", job, machine, reason)
        return {"actions": [], "refused": reason}
    actions = apply_retention(repo, job, machine, {**request, "background": background})
    for a in actions:
        log.info("retention %s/%s: %s %s %s", job, machine, a.get("action"), a.get("point", ""),
                 a.get("detail", ""))
    return {"actions": actions}


def request_path(repo: Repository, job: str, machine: str) -> Path:
    return repo.path / ".ferry" / "mover" / "retain" / fr.name(job, "job name") / \
        f"{fr.name(machine, 'machine name')}.json"


def save_request(repo: Repository, job: str, machine: str, request: dict[str, Any]) -> None:
    """Keep an append-only job's last retention request for `ferry mover retain`."""
    path = request_path(repo, job, machine)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(request))
    os.replace(tmp, path)


def retain_job(repo: Repository, job: str, floor: Floor, clock: datetime | None = None
               ) -> list[dict[str, Any]]:
    """`ferry mover retain`: run each machine's stored request at the mover's clock,
    within the floor (the admin on the mover host, not the append-only client)."""
    from engine.copy.retain import apply_retention

    folder = repo.path / ".ferry" / "mover" / "retain" / fr.name(job, "job name")
    done: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        machine = path.stem
        request = json.loads(path.read_text())
        request["now"] = (clock or wall_now()).isoformat()
        request["point"] = None
        request["gfs_full"] = {}
        reason = check_request(repo, job, machine, request, floor, clock)
        if reason is not None:
            log.warning("retention refused for %s/%s: %s", job, machine, reason)
            done.append({"machine": machine, "action": "refused", "detail": reason})
            continue
        for a in apply_retention(repo, job, machine, {**request, "background": False}):
            log.info("retention %s/%s: %s %s", job, machine, a.get("action"), a.get("point", ""))
            done.append({"machine": machine, **a})
    return done
