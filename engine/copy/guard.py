"""The target decides what is deleted: a remote mover's retention floor.

A RETAIN frame comes from a copy job on another host, which may be compromised.
Before the rules run, the mover checks the request against its own floor:

* short-term retention keeps at least `min_points` (>= 2) points, in days mode too;
* a GFS flag is kept until the expiry it was given when assigned (`gfs_until`): a
  request that lowers a cycle's keep below that, or switches a cycle off for a flag
  with no recorded expiry, is refused;
* the request's clock may not run ahead of the mover's (a "now" in 2099 would expire
  everything);
* immutability (`ferry mover --immutable-days N`): the request's `immutable_days` is
  raised to the floor before the rules run (`within_floor`), as the BEGIN of each point
  raises its `immutable_until` to point time + N days (`floor_until`); and a request
  whose plan would delete or merge away a point still immutable by the mover's clock
  (its recorded `immutable_until`, whoever set it) is refused: a request's clock may
  run up to a day ahead, and a floor lowered by a restart must not free the points
  committed under it;
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
from engine.model import MachineMeta
from engine.repository.repository import Repository
from engine.units import now as wall_now

if TYPE_CHECKING:
    from engine.copy.target import TargetMover

log = logging.getLogger("ferry.mover")
FLAGS = "WMY"
CLOCK_SKEW = timedelta(days=1)  # how far a request's "now" may be ahead of the mover's


@dataclass(frozen=True)
class Floor:
    """The mover's own retention floor (`ferry mover --min-points`, `--immutable-days`)."""

    min_points: int = 2
    immutable_days: int = 0


def within_floor(request: dict[str, Any], floor: Floor) -> dict[str, Any]:
    """The request with its policy's `immutable_days` raised to the floor's (a copy)."""
    policy = request.get("policy")
    if floor.immutable_days <= 0 or not isinstance(policy, dict):
        return request
    try:
        asked = int(policy.get("immutable_days") or 0)
    except (TypeError, ValueError):
        raise fr.Refused("RETAIN: immutable_days must be a number of days") from None
    return {**request, "policy": {**policy, "immutable_days": max(asked, floor.immutable_days)}}


def floor_until(asked: object, when: datetime, floor: Floor | None) -> str | None:
    """A point's `immutable_until` as BEGIN asked for it (None: none), raised to point
    time + the floor's days; an unreadable date is refused like any bad frame."""
    mine = when + timedelta(days=floor.immutable_days) if floor and floor.immutable_days > 0 \
        else None
    theirs = None
    if isinstance(asked, str) and len(asked) <= 40:  # anything else was never a date
        try:
            theirs = datetime.fromisoformat(asked)
        except ValueError:
            raise fr.Refused("BEGIN: immutable_until must be an ISO date") from None
    if theirs is not None and (mine is None or _local(theirs) >= _local(mine)):
        return str(asked)
    return mine.isoformat() if mine is not None else None


def _local(t: datetime) -> datetime:
    """Naive local time (the mover's clock and point times are)."""
    return t.astimezone().replace(tzinfo=None) if t.tzinfo is not None else t


def _locked_victim(meta: MachineMeta | None, request: dict[str, Any], background: bool,
                   mine: datetime, now: datetime) -> str | None:
    """The reason the request's plan would delete or merge away a point whose recorded
    `immutable_until` is still ahead of the mover's clock `mine`, or None."""
    from engine import retention as rules
    from engine.copy.retain import policy_from_dict

    locks = meta.facts.get("immutable_until") if meta else None
    if meta is None or not meta.points or not isinstance(locks, dict):
        return None
    until: dict[str, datetime] = {}
    for pid, text in locks.items():
        try:
            until[str(pid)] = _local(datetime.fromisoformat(str(text)))
        except ValueError:
            continue
    views = rules.points_from_chain(meta.points)
    actions = rules.plan_retention(views, policy_from_dict(request["policy"]), now,
                                   merges=not background)
    ids = [p.id for p in meta.points]
    gone: list[str] = []
    for act in actions:
        if act.kind == "delete-chain":
            gone.extend(act.points)
        elif act.kind == "merge" and act.point in ids:  # the full it merges into goes too
            gone.extend([ids[ids.index(act.point) - 1], act.point])
    for pid in gone:
        if pid in until and until[pid] > mine:
            p = next(p for p in meta.points if p.id == pid)
            return (f"the request would delete the point of {p.time:%Y-%m-%d %H:%M}, "
                    f"immutable until {until[pid]:%Y-%m-%d %H:%M} on this mover")
    return None


def check_request(repo: Repository, job: str, machine: str, request: dict[str, Any], floor: Floor,
                  clock: datetime | None = None, background: bool = False) -> str | None:
    """The reason `request` (already `within_floor`) is below the floor, or None."""
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
    return _locked_victim(meta, request, background, mine, now)


def guarded_retain(mover: TargetMover, request: dict[str, Any], background: bool = False) -> dict[str, Any]:
    """Run a remote RETAIN (or background SWEEP) within the mover's rules (module doc)."""
    from engine.copy.retain import apply_retention

    repo, job, machine = mover.repo, mover.job, mover.machine
    floor = mover.policy or Floor()
    raised = within_floor(request, floor)
    if raised is not request and raised["policy"] != request["policy"]:
        log.info("retention %s/%s: immutable_days raised to the mover's floor of %d",
                 job, machine, floor.immutable_days)
    request = raised
    reason = check_request(repo, job, machine, request, floor, background=background)
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
        request = within_floor(request, floor)
        reason = check_request(repo, job, machine, request, floor, clock)
        if reason is not None:
            log.warning("retention refused for %s/%s: %s", job, machine, reason)
            done.append({"machine": machine, "action": "refused", "detail": reason})
            continue
        for a in apply_retention(repo, job, machine, {**request, "background": False}):
            log.info("retention %s/%s: %s %s", job, machine, a.get("action"), a.get("point", ""))
            done.append({"machine": machine, **a})
    return done
