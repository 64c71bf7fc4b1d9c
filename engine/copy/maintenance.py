"""Transforms of a whole job after its tasks: removal of machines gone from the source.

Deleted-items retention (research notes section 5, "Remove deleted items data after
N days"; `[retention] deleted_items_days`, default 30):

* A machine with a chain in the job's target folder that this session did not find
  in the source jobs (`machines_seen`) is marked gone: `meta.gone_since = now`, the
  first session that misses it. A machine seen again has the mark cleared. As in the
  reference product, *why* it was missing is not asked (deleted, renamed, moved to
  another job, dropped from `machines`): a short N can remove data still needed.
* Once it has been gone for `deleted_items_days` days (`now - gone_since`), its data
  goes: the whole machine folder when no point carries a GFS flag ("remove-machine").
* "It never touches W/M/Y backups" [doc]: while flagged fulls remain, only the points
  without a flag are deleted ("delete-chain"; a flagged point is always a full, so
  nothing left depends on them) and the flagged fulls stay. Their flags still expire
  by the job's GFS policy (this is the background GFS retention of a machine that no
  longer has sessions of its own: `engine.retention` decides expiry, as for a live
  machine); when the last one has expired the folder is removed.
* Before N days nothing but the mark changes, so a machine that comes back resumes
  its chain where it was.

Every change is made under the machine's exclusive chain lock and committed by the
metadata file. The folder is first renamed to `.removed-<id>` inside the job folder
and then deleted, so a kill in the middle never leaves a half-deleted chain that
looks like a machine; such a leftover is deleted by the next session.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from engine import retention as rules
from engine.repository.locks import LockBusy
from engine.repository.repository import Repository, safe_name
from engine.repository.transforms import delete_points

if TYPE_CHECKING:
    from engine.model import MachineMeta, RetentionPolicy

class CleanupJob(Protocol):
    """What the cleanup reads of a job: a `JobSpec`, or the mover's view of a remote one."""

    @property
    def name(self) -> str: ...

    @property
    def retention(self) -> RetentionPolicy: ...


TRASH_PREFIX = ".removed-"
LOCK_WAIT = 10.0  # seconds to wait for a machine's chain lock before leaving it for next time


def after_session(spec: CleanupJob, machines_seen: list[str], target: Repository,
                  now: datetime) -> list[dict[str, Any]]:
    """Actions done (dicts with machine, action, point, detail); see the module docstring."""
    job = spec.name
    _sweep_trash(target, job)
    seen = set(machines_seen)
    policy = spec.retention
    keep_days = int(policy.deleted_items_days)
    done: list[dict[str, Any]] = []
    for _, machine in target.machines(job):
        lock = target.lock(job, machine, exclusive=True)
        try:
            lock.acquire(timeout=LOCK_WAIT)
        except LockBusy:
            continue  # in use (a restore, another job's reader): the next session retries
        try:
            meta = target.try_load(job, machine)
            if meta is None:
                continue
            if machine in seen:
                if meta.gone_since:
                    meta.gone_since = ""
                    target.save(meta)
                continue
            if not meta.gone_since:
                meta.gone_since = now.isoformat()
                target.save(meta)
            gone = datetime.fromisoformat(meta.gone_since)
            if now - gone < timedelta(days=keep_days):
                continue
            why = (f"not in the source since {gone:%Y-%m-%d %H:%M} "
                   f"(deleted items are kept {keep_days} days)")
            done.extend(_expire_flags(target, meta, policy, now, machine))
            flagged = [p for p in meta.points if p.gfs]
            if not flagged:
                _remove_folder(target, job, machine)
                done.append({"machine": machine, "action": "remove-machine", "point": "",
                             "detail": f"removed: {why}"})
                continue
            doomed = [p.id for p in meta.points if not p.gfs]
            if doomed:
                delete_points(target, meta, set(doomed))
                done.append({"machine": machine, "action": "delete-chain",
                             "point": ",".join(doomed),
                             "detail": f"{why}; its {len(flagged)} GFS full(s) stay "
                                       "until their flags expire"})
        finally:
            lock.release()
    return done


def _expire_flags(target: Repository, meta: MachineMeta, policy: RetentionPolicy, now: datetime,
                  machine: str) -> list[dict[str, Any]]:
    """Drop the flags the job's GFS policy says have expired (same rule as a run)."""
    views = rules.points_from_chain(meta.points)
    out = []
    for act in rules.plan_retention(views, policy, now):
        if act.kind != "expire-flag":
            continue
        next(p for p in meta.points if p.id == act.point).drop_flag(act.flag)
        out.append({"machine": machine, "action": "expire-flag", "point": act.point,
                    "detail": f"{act.flag}: {act.reason}"})
    if out:
        target.save(meta)
    return out


def _remove_folder(target: Repository, job: str, machine: str) -> None:
    """Delete a machine's folder: rename it out of the way first (one atomic step that
    makes the machine disappear), then delete the renamed folder. Exclusive lock held."""
    folder = target.machine_dir(job, machine)
    trash = f"{TRASH_PREFIX}{os.urandom(6).hex()}"
    target.drop_meta_copy(job, machine)  # it lives in the job folder
    folder.rename(folder.parent / trash)
    target.delete_machine(job, trash)


def _sweep_trash(target: Repository, job: str) -> None:
    """Finish removals a killed session began."""
    jdir = target.path / safe_name(job, "job name")
    if not jdir.is_dir():
        return
    for d in jdir.iterdir():
        if d.name.startswith(TRASH_PREFIX) and d.is_dir():
            import shutil  # only with a trash to empty (its import: ~1.5 ms a run)

            shutil.rmtree(d, ignore_errors=True)
