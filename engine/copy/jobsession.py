"""The job-level stream of a remote run: job lock, history and cleanup on the mover side.

With `[target] mover`, the repository is on the mover's host, so what guards and
records the job must be there too, not in the copy job's local folder:

* a run opens one extra stream whose HELLO says `"session": true`; the mover takes
  the job's lock (`<repo>/<job>/.job.lock`, the same `JobLock` a local run takes)
  and holds it while the stream lives; a second run of the job is refused
  ("job 'X' is already running", exit 3), from whichever host it comes;
* at the end the run sends HISTORY (its session row and task results): the mover
  records them in `<repo>/.ferry/history.sqlite` (the local history keeps its copy,
  which the daemon's schedule and `ferry history` read);
* MAINTAIN (machines this session saw, its start, the job's retention policy) runs
  the deleted-items cleanup (`engine.copy.maintenance.after_session`) on the
  mover's repository, within the target's rules: an append-only grant is refused,
  and the deleted-items age cannot go below the mover's floor of MIN_DELETED_DAYS.
"""

from __future__ import annotations

import logging
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from engine.copy import frames as fr
from engine.copy import transport as t
from engine.copy.payloads import Hello, HelloReply, RetainAnswer
from engine.errors import ExitCode, FerryError

if TYPE_CHECKING:
    from engine.copy.target import TargetMover
    from engine.jobs.schema import JobSpec

log = logging.getLogger("ferry.mover")
SESSION_TIMEOUT = 7 * 86400.0  # the job stream is quiet while the tasks copy
MIN_DELETED_DAYS = 1
MAX_TASKS = 10000


class JobBusy(FerryError):
    """The mover already runs a session of this job."""

    exit_code = ExitCode.BUSY


# ----------------------------------------------------------------------- mover side
def serve_session(mover: TargetMover) -> None:
    """Serve a job stream after its HELLO was accepted (the grant is checked)."""
    from engine.copy.runner import JobLock, RunError

    end, repo, job = mover.end, mover.repo, mover.job
    end.timeout = SESSION_TIMEOUT
    try:
        lock = JobLock(repo.path, job).__enter__()
    except RunError:
        raise fr.Refused(f"job {job!r} is already running") from None
    try:
        log.info("job session: %s (%s)", job, mover.grant.who)
        end.send_json(t.HELLO, HelloReply(t.PROTOCOL_VERSION, mover.grant.append_only).to_json())
        while True:
            f = end.recv()
            if f.type == t.BYE:
                return
            if f.type == t.HISTORY:
                _history(mover, fr.json_payload(f.payload, "HISTORY"))
            elif f.type == t.MAINTAIN:
                _maintain(mover, fr.json_payload(f.payload, "MAINTAIN"))
            else:
                raise fr.Refused(f"unexpected frame {t.NAMES.get(f.type, f.type)}")
    finally:
        lock.__exit__(None, None, None)
        log.info("job session of %s ended", job)


def _history(mover: TargetMover, obj: dict[str, Any]) -> None:
    from engine.history import History

    session, tasks = obj.get("session"), obj.get("tasks")
    if not isinstance(session, dict) or not isinstance(tasks, list) or len(tasks) > MAX_TASKS:
        raise fr.Refused("HISTORY: a session row and its task list are needed")
    if session.get("job") != mover.job:
        raise fr.Refused("HISTORY: a session of another job")
    path = mover.repo.path / ".ferry" / "history.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    History(path).record(session, [x for x in tasks if isinstance(x, dict)])
    log.info("history: %s session %s %s", mover.job, session.get("id"), session.get("status"))
    mover.end.send_json(t.HISTORY, {"ok": True})


def _maintain(mover: TargetMover, obj: dict[str, Any]) -> None:
    from engine.copy.maintenance import after_session
    from engine.copy.retain import policy_from_dict

    seen = obj.get("seen")
    try:
        started = datetime.fromisoformat(str(obj.get("started")))
        policy = policy_from_dict(obj["policy"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise fr.Refused("MAINTAIN: the request is not a retention policy") from None
    if not isinstance(seen, list) or len(seen) > MAX_TASKS:
        raise fr.Refused("MAINTAIN: seen must be a list of machine names")
    seen = [fr.name(m, "machine name") for m in seen]
    if mover.grant.append_only:
        reason = "append-only"
    elif policy.deleted_items_days < MIN_DELETED_DAYS:
        reason = f"deleted items kept {policy.deleted_items_days} day(s), below the floor"
    else:
        reason = ""
    if reason:
        log.warning("cleanup refused for %s: %s", mover.job, reason)
        mover.end.send_json(t.MAINTAIN, {"actions": [], "refused": reason})
        return
    spec = SimpleNamespace(name=mover.job, retention=policy)
    actions = after_session(spec, seen, mover.repo, started)
    for a in actions:
        log.info("cleanup %s/%s: %s %s", mover.job, a.get("machine"), a.get("action"),
                 a.get("point", ""))
    mover.end.send_json(t.MAINTAIN, {"actions": actions})


# ---------------------------------------------------------------------- client side
class RemoteJob:
    """The copy job's end of the job stream (opened before the tasks, closed after)."""

    def __init__(self, spec: JobSpec) -> None:
        from engine.copy.links import connect, drop_spares, token_of, warm

        self.spec = spec
        warm(spec)  # the first task's stream (ssh://) starts alongside this one
        try:
            self.end = connect(spec, spare=False)
        except BaseException:
            drop_spares(spec)
            raise
        try:
            self.end.send_json(t.HELLO, Hello(spec.name, token=token_of(spec),
                                              session=True).to_json())
            HelloReply.parse(self.end.expect(t.HELLO, timeout=60).json())
        except t.StreamError as exc:
            drop_spares(spec)
            self.end.close()
            if "already running" in str(exc):
                raise JobBusy(str(exc)) from None
            raise
        self.end.timeout = SESSION_TIMEOUT

    def maintain(self, seen: list[str], started: datetime) -> RetainAnswer:
        from engine.copy.retain import policy_to_dict

        self.end.send_json(t.MAINTAIN, {"seen": seen, "started": started.isoformat(),
                                        "policy": policy_to_dict(self.spec.retention)})
        return RetainAnswer.parse(self.end.expect(t.MAINTAIN, timeout=3600).json(), "MAINTAIN")

    def history(self, session: dict[str, Any], tasks: list[dict[str, Any]]) -> None:
        self.end.send_json(t.HISTORY, {"session": session, "tasks": tasks})
        self.end.expect(t.HISTORY, timeout=300)

    def close(self) -> None:
        from engine.copy.links import drop_spares

        drop_spares(self.spec)
        try:
            self.end.send_json(t.BYE, {})
        except t.StreamError:
            pass
        self.end.close()
