"""Background retention: the daily pass that applies GFS expiry without a copy run.

The reference product runs a retention pass every day at 00:30 that "removes
expired GFS flags and deletes the freed files" even when the job itself does not
run (disabled job, source gone, schedule paused); flags and files are otherwise
removed only while a job session runs (research notes section 6, "Flag expiry").
`ferry daemon` runs this pass for every job of its folder once a day (at 00:30, or
at its first poll after that), and `ferry retain JOBFILE` runs it by hand. Each
pass is a session of kind "retention" in the job's history.

What the pass does, per machine on the job's target (`rules.plan_background`, the
same rules a run uses): removes GFS flags whose expiry has come, deletes a full
whose last flag went (when it is outside short-term retention and nothing depends
on it) and deletes an older chain whose last point has left short-term retention.

What it does not do, and why:

* no merge and no compact: they rewrite the full (I/O heavy, and a merge is the
  forever-forward step of a run: without a new point the chain does not grow, so
  a points-unit chain never needs one; a days-unit chain merges at its next run);
* no GFS full (made only by a run that copies or re-reads a point), and an
  interrupted GFS full is left to the next run, which finishes it;
* no deleted-items marking or removal: whether a machine left the source is
  noticed by sessions that read the source, and a pass of a job whose source is
  gone must not mark every machine deleted;
* it does not read the source, transfer data, run the health check, or touch
  `last_run` (which GFS catch-up counts from); the copy window does not bind it,
  as transforms are not limited by the window.

A run of the same job holds the job lock: the pass then does nothing (exit 3 for
`ferry retain`), the run applies retention itself. A machine whose chain is busy
(a restore, a reader) is left for the next pass after `LOCK_WAIT` seconds.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import events as ev
from engine.copy import transport as t
from engine.copy.joblock import JobLock, RunError
from engine.copy.payloads import ActionDone, Hello, HelloReply, RetainAnswer
from engine.copy.retain import policy_to_dict
from engine.copy.runner import SessionResult, TaskResult, record_session
from engine.copy.target_stream import connect_target, disconnect
from engine.errors import one_line
from engine.history import History, history_path
from engine.logs import job_logger, run_log
from engine.model import Status
from engine.objstore.open import target_repository
from engine.repository.repository import Repository
from engine.units import now as wall_now

if TYPE_CHECKING:
    from engine.jobs.schema import JobSpec
    from engine.objstore.repo import S3Repository

KIND = "retention"
DAILY_AT = clock_time(0, 30)  # the reference product's background retention time
LOCK_WAIT = 10.0  # seconds to wait for a busy chain before leaving it for the next pass
LOG = job_logger("retain")


def machines_on_target(spec: JobSpec, dst: Repository | S3Repository) -> list[str]:
    """The machines whose chains the pass looks at: the job's folder on the target, or,
    behind a remote mover (which cannot list), every machine the job's history has
    had a task for plus the source's current machines."""
    if spec.target.mover:
        names = set(History(history_path(spec)).machines(spec.name))
        src = Repository(spec.source.repository)
        if src.exists():
            for job in spec.source.jobs:
                names.update(m for _, m in src.machines(job))
        return sorted(names)
    return [m for _, m in dst.machines(spec.name)]


def retain_job(spec: JobSpec, *, at: datetime | None = None, sink: ev.Sink = ev.discard) -> SessionResult:
    """One background retention pass of a job (blocking); see the module docstring.

    A job with no chain on its target yet gets nothing (no session recorded, no
    folder created). Raises RunError (exit 3) while a run of the job holds its lock.
    """
    now = at or wall_now()
    t0 = time.monotonic()
    dst = target_repository(spec)
    session = uuid.uuid4().hex[:12]
    machines = machines_on_target(spec, dst)
    if not machines:
        return SessionResult(spec.name, session, Status.SUCCESS, now, now, [], [],
                             kind=KIND, message="no chains on the target")
    retention: list[dict[str, Any]] = []
    tasks: list[TaskResult] = []
    lock_root = Path(spec.target.repository)
    with JobLock(lock_root, spec.name), run_log(lock_root, spec.name):
        LOG.info("%s: background retention %s started, %d machine(s)", spec.name, session,
                 len(machines), extra={"job": spec.name})
        for machine in machines:
            tasks.append(_one(spec, dst, machine, now, retention, sink))
        for a in retention:
            LOG.info("%s/%s: retention %s %s %s", spec.name, a["machine"], a["action"],
                     a.get("point", ""), a.get("detail", ""), extra={"job": spec.name})
        for tr in tasks:
            if tr.status != Status.SUCCESS:
                LOG.warning("%s/%s: %s: %s", spec.name, tr.machine, tr.status, tr.message,
                            extra={"job": spec.name})
        status = Status.worst([tr.status for tr in tasks])
        finished = now + timedelta(seconds=time.monotonic() - t0) if at else wall_now()
        changed = len({a["machine"] for a in retention})
        res = SessionResult(spec.name, session, status, now, finished, tasks, retention,
                            time.monotonic() - t0, kind=KIND,
                            message=f"background retention: {len(retention)} action(s) on "
                                    f"{changed} of {len(tasks)} machine(s)")
        LOG.log(logging.INFO if status == Status.SUCCESS else logging.WARNING,
                "%s: background retention %s ended %s: %s", spec.name, session, status,
                res.message, extra={"job": spec.name})
    error = record_session(spec, dst, res)
    if error:
        _emit(sink, ev.LogLine(spec.name, "warning", f"history not recorded: {error}", ""))
    return res


def _one(spec: JobSpec, dst: Repository | S3Repository, machine: str, now: datetime, retention: list[dict[str, Any]],
         sink: ev.Sink) -> TaskResult:
    """One machine's pass over its own mover stream (in-process, or `[target] mover`)."""
    res = TaskResult(machine, kind=KIND)
    t0 = time.monotonic()
    end = th = None
    actions: list[ActionDone] = []
    try:
        end, th = connect_target(spec, dst)
        from engine.copy.links import token_of

        end.send_json(t.HELLO, Hello(spec.name, machine, token_of(spec)).to_json())
        HelloReply.parse(end.expect(t.HELLO, timeout=60).json())
        end.send_json(t.SWEEP, {"now": now.isoformat(), "policy": policy_to_dict(spec.retention),
                                "lock_wait": LOCK_WAIT})
        answer = RetainAnswer.parse(end.expect(t.SWEEP).json(), "SWEEP")
        actions = answer.actions
        if answer.refused:  # the target decides (engine.copy.guard)
            res.status = Status.WARNING
            res.message = f"retention refused by the target: {answer.refused[:300]}"
    except Exception as exc:  # noqa: BLE001 - one machine must not stop the pass
        res.status = Status.FAILED
        res.message = one_line(exc)
        if "chain lock" in res.message:  # busy, not broken: the next pass retries
            res.status = Status.WARNING
            res.message = f"chain busy, left for the next pass ({res.message})"
        _emit(sink, ev.LogLine(spec.name, "warning" if res.status == Status.WARNING else "error",
                               f"{machine}: {res.message}", machine))
    finally:
        if end is not None:
            disconnect(end, th)
    for a in actions:
        retention.append({"machine": machine, "action": a.action, "point": a.point,
                          "detail": a.detail})
        _emit(sink, ev.RetentionAction(spec.name, machine, a.action, a.point, a.detail))
    if res.status == Status.SUCCESS:
        res.message = "; ".join(f"{a.action} {a.detail}".strip()
                                for a in actions) or "nothing to do"
    res.duration_s = time.monotonic() - t0
    return res


def _emit(sink: ev.Sink, event: ev.Event) -> None:
    try:
        sink(event)
    except Exception:  # noqa: BLE001 - a broken UI must not break retention
        pass


def last_pass(spec: JobSpec) -> datetime | None:
    """When the job's newest background retention pass started (None: never)."""
    rows = History(history_path(spec)).sessions(spec.name, limit=1, kind=KIND)
    return datetime.fromisoformat(rows[0]["started"]) if rows else None


def pass_due(now: datetime, last: datetime | None) -> bool:
    """True when today's 00:30 has come and no pass started since it."""
    slot = datetime.combine(now.date(), DAILY_AT, tzinfo=now.tzinfo)
    if now < slot:
        return False
    if last is None:
        return True
    if (last.tzinfo is None) != (slot.tzinfo is None):
        last = last.replace(tzinfo=slot.tzinfo)
    return last < slot


__all__ = ["DAILY_AT", "KIND", "RunError", "last_pass", "machines_on_target", "pass_due",
           "retain_job"]
