"""One run of a backup copy job: a task per machine, bounded parallelism, hold/resume.

A task takes a shared lock on its source chain; when the source job holds it
exclusively the task goes on hold (an event says so) and the other tasks go
on. Each task talks to the target only through a target data mover (in this
process, or `ferry mover` over TCP when the job names one).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import events as ev
from engine.blockio import make_pool
from engine.copy import transport as t
from engine.copy.control import RunControl, Stopped
from engine.copy.joblock import JobLock, RunError
from engine.copy.planner import PlanError
from engine.copy.results import SessionResult, TaskResult, record_session, session_row
from engine.copy.source import RateLimit
from engine.copy.target_stream import connect_target, disconnect
from engine.errors import ExitCode, one_line
from engine.keys import KeyRing
from engine.logs import job_logger, run_log
from engine.model import MachineMeta, Status
from engine.objstore.open import target_repository
from engine.password import PasswordError
from engine.repository.damage import DamagedBlocks
from engine.repository.locks import ChainLock, LockBusy
from engine.repository.repository import Repository
from engine.session_log import SessionLog
from engine.units import fmt_duration
from engine.units import now as wall_now

if TYPE_CHECKING:
    from engine.copy.jobsession import RemoteJob
    from engine.copy.session import TaskContext
    from engine.jobs.schema import JobSpec
    from engine.live.publisher import Publisher

LOG = job_logger("run")
LEVELS = {"warning": logging.WARNING, "error": logging.ERROR}


class HoldTimeout(Exception):
    """A task gave up waiting for its source chain lock."""


@dataclass
class MachineRef:
    """A machine and the source job whose chain holds it."""
    source_job: str
    machine: str


def find_machines(spec: JobSpec) -> tuple[list[MachineRef], list[str]]:
    """The machines the job copies, and problems with its source jobs."""
    src = Repository(spec.source.repository)
    if not src.exists():
        raise RunError(f"source repository not found: {spec.source.repository}")
    refs, problems, seen = [], [], set()
    for job in spec.source.jobs:
        pairs = src.machines(job)
        if not pairs:
            problems.append(f"source job {job!r} has no machines in {spec.source.repository}")
        for _, m in pairs:
            if spec.source.machines and m not in spec.source.machines:
                continue
            if m in seen:
                problems.append(f"machine {m!r} is in two source jobs; copying the first only")
                continue
            seen.add(m)
            refs.append(MachineRef(job, m))
    for m in spec.source.machines:
        if m not in seen:
            problems.append(f"machine {m!r} not found in the source jobs")
    return refs, problems


class Runner:
    """Runs one session of a job (see `run_job`): finds the machines, runs a task per
    machine (`engine.copy.session.MachineCopy`, given a `TaskContext`), then the
    session's maintenance, and records the session."""

    def __init__(self, spec: Any, *, at: datetime | None, dry_run: bool, sink: ev.Sink,
                 control: RunControl, hold_timeout: float, respect_window: bool,
                 only: list[str] | None = None):
        self.spec = spec
        self.only = set(only) if only else None  # a retry of some machines (see run_job)
        self.at = at
        self.respect_window = respect_window
        self.dry_run = dry_run
        self.repair_only = False  # `ferry check --repair`: only the repair exchange
        self.sink = sink
        self.control = control
        self.hold_timeout = hold_timeout
        self.session = os.urandom(6).hex()  # 48 random bits, as uuid4().hex[:12] gave
        self.src = Repository(spec.source.repository)
        self.dst = target_repository(spec)
        self.retention: list[dict[str, Any]] = []
        self.facts: dict[str, dict[str, Any]] = {}  # the hypervisor's, per machine
        self.remote: RemoteJob | None = None  # the job stream of a remote run
        self.refusal = ""  # the target's reason to refuse the whole run (preflight)
        self._lock = threading.Lock()
        # the job's password, read on first use only and shared by the tasks (one scrypt)
        self.keys = KeyRing(spec.storage.password_source)
        self._t0 = time.monotonic()
        self.journal = SessionLog(self.clock)  # the timestamped log kept in the history
        # `[transport] rate_limit` is the job's: one bucket shared by all its tasks
        self.rate = RateLimit(int(spec.transport.rate_limit or 0))
        control.listeners.append(self._control_changed)

    def _control_changed(self, action: str, machine: str, by: str) -> None:
        self.emit(ev.OperatorAction(self.spec.name, action, machine, by))
        what = f"{machine}: " if machine else ""
        if action == "stop":
            self.log("warning", f"{what}stop requested ({by})", machine)
        else:
            self.log("info", f"{what}{action} by the operator" if action == "hold" else
                     f"{what}resumed by the operator", machine)

    def clock(self) -> datetime:
        """The run's clock: the wall clock, or for a replay (`at`) `at` plus the time the
        run has taken so far, so a replay that outlasts midnight ends on the next day."""
        if self.at is None:
            return wall_now()
        return self.at + timedelta(seconds=time.monotonic() - self._t0)

    def task_clock(self) -> datetime:
        """"Now" for the decisions a task makes when it starts: `at` itself in a replay."""
        return self.at or wall_now()

    def emit(self, event: ev.Event) -> None:
        self.journal.add(event)
        try:
            self.sink(event)
        except Exception:  # noqa: BLE001 - a broken UI must not break a copy
            pass

    def log(self, level: str, text: str, machine: str = "") -> None:
        self.emit(ev.LogLine(self.spec.name, level, text, machine))
        if level in ("warning", "error"):
            where = f"{self.spec.name}/{machine}" if machine else self.spec.name
            LOG.log(LEVELS[level], "%s: %s", where, text, extra={"job": self.spec.name})

    # -- session ---------------------------------------------------------------------
    def run(self) -> SessionResult:
        started, t0 = self.task_clock(), time.monotonic()
        refs, gone, problems = self._machines()
        self._announce(refs, problems)
        self.refusal = self._preflight()
        results = self._run_tasks(refs)
        problems += self._maintain([r.machine for r in refs if r.machine not in gone], started)
        status = Status.worst([r.status for r in results] +
                              ([Status.WARNING] if problems else []))
        if not refs:
            status = Status.FAILED if problems else Status.WARNING
        duration = time.monotonic() - t0
        finished = self.clock()
        if self.control.stopped:
            problems.insert(0, self.control.stop_message())
        problems += self.control.notes
        msg = "; ".join(problems)
        res = SessionResult(self.spec.name, self.session, status, started, finished,
                            results, self.retention, duration, self.dry_run, msg)
        bucket = getattr(self.dst, "bucket", None)
        if bucket is not None:
            res.requests = bucket.request_counts()
        if not self.dry_run:
            self.record(res)
        self.emit(ev.RunFinished(self.spec.name, self.session, status, duration, msg))
        self._log_end(res)
        return res

    def _machines(self) -> tuple[list[MachineRef], list[str], list[str]]:
        """The machines this session copies, those the hypervisor says are gone, and
        the problems found (each one makes the session a Warning)."""
        refs, problems = find_machines(self.spec)
        if self.only is not None:
            problems += [f"{m}: not a machine of this job" for m in
                         sorted(self.only - {r.machine for r in refs})]
            refs = [r for r in refs if r.machine in self.only]
        gone: list[str] = []
        if getattr(self.spec, "inventory", None) and not self.repair_only:
            from engine.copy.inventory_step import check_inventory

            outcome = check_inventory(self.spec, [r.machine for r in refs], self.dst)
            problems += outcome.warnings
            self.facts = outcome.facts
            gone = outcome.gone
        return refs, gone, problems

    def _announce(self, refs: list[MachineRef], problems: list[str]) -> None:
        self.emit(ev.RunStarted(self.spec.name, self.session, [r.machine for r in refs],
                                self.dry_run))
        LOG.info("%s: session %s started%s, %d machine(s)", self.spec.name, self.session,
                 " (dry run)" if self.dry_run else "", len(refs), extra={"job": self.spec.name})
        for p in problems:
            self.log("warning", p)
        for r in refs:
            self.emit(ev.TaskQueued(self.spec.name, r.machine))

    def _run_tasks(self, refs: list[MachineRef]) -> list[TaskResult]:
        """A task per machine, `[transport] parallel_tasks` at a time, in `refs` order."""
        if self.refusal:
            return [self._refused(r) for r in refs]
        workers = max(1, int(self.spec.transport.parallel_tasks))
        with make_pool(tune=False) as pool, ThreadPoolExecutor(workers, "ferry-task") as tasks:
            return list(tasks.map(lambda r: self.task_with_retries(r, pool), refs))

    def _maintain(self, seen: list[str], started: datetime) -> list[str]:
        """The whole job's bookkeeping after its tasks (deleted items, background
        retention's catch-up): on the mover for a remote run, here for a local folder;
        not for dry runs, repairs, retries of some machines or stopped sessions.
        Returns the problems (maintenance never fails the copy)."""
        if self.control.stopped or self.only is not None or self.repair_only:
            return []
        if self.remote is not None:
            return self._remote_cleanup(self.remote, seen, started)
        if self.dry_run or not isinstance(self.dst, Repository) or \
                self.spec.target.mover:
            return []
        from engine.copy.maintenance import after_session

        try:
            for a in after_session(self.spec, seen, self.dst, started):
                self.retention.append(a)
                self.emit(ev.RetentionAction(self.spec.name, a["machine"], a["action"],
                                             a.get("point", ""), a.get("detail", "")))
        except Exception as exc:  # noqa: BLE001 - maintenance must not fail the copy
            return [f"maintenance: {one_line(exc)}"]
        return []

    def _log_end(self, res: SessionResult) -> None:
        """The session's end in the job's log (`engine.logs`): each machine, each
        retention action, the session."""
        job = self.spec.name
        for tr in res.tasks:
            LOG.log(logging.INFO if tr.status == Status.SUCCESS else logging.WARNING,
                    "%s/%s: %s%s", job, tr.machine, tr.status,
                    f": {tr.message}" if tr.message else "", extra={"job": job})
        for a in res.retention:
            LOG.info("%s/%s: retention %s %s %s", job, a.get("machine", ""),
                     a.get("action", ""), a.get("point", ""), a.get("detail", ""),
                     extra={"job": job})
        LOG.log(logging.INFO if res.status == Status.SUCCESS else logging.WARNING,
                "%s: session %s ended %s in %.1f s%s", job, self.session, res.status,
                res.duration_s, f": {res.message}" if res.message else "", extra={"job": job})

    def _preflight(self) -> str:
        """Why the target refuses this job before anything is written ("" = it does not)."""
        if isinstance(self.dst, Repository) or self.spec.target.mover:
            return ""
        from engine.objstore.target import preflight

        try:
            return preflight(self.dst, self.spec.storage.immutable_days)
        except Exception:  # noqa: BLE001 - unreachable etc.: the tasks report it, with retries
            return ""

    def _refused(self, ref: MachineRef) -> TaskResult:
        res = TaskResult(ref.machine)
        res.fail(self.refusal, retryable=False)
        self.log("error", f"{ref.machine}: {res.message}", ref.machine)
        self.emit(ev.TaskFinished(self.spec.name, ref.machine, res.status, res.stats, res.kind,
                                  res.point, 0.0, 0.0, "", res.message))
        return res

    def record(self, res: SessionResult) -> None:
        error = record_session(self.spec, self.dst, res, upload=not self.refusal,
                               log=self.journal.rows(ev.RunFinished(
                                   res.job, res.session, res.status, res.duration_s,
                                   res.message)))
        if error:
            self.log("warning", f"history not recorded: {error}")
        if self.remote is not None:
            try:
                self.remote.history(session_row(res), [tr.to_json() for tr in res.tasks])
            except Exception as exc:  # noqa: BLE001 - history must not fail the copy
                self.log("warning", f"history not recorded on the mover: {one_line(exc)}")

    def _remote_cleanup(self, remote: RemoteJob, seen: list[str], started: datetime
                        ) -> list[str]:
        """Deleted-items cleanup on the mover's repository (engine.copy.jobsession)."""
        try:
            answer = remote.maintain(seen, started)
        except Exception as exc:  # noqa: BLE001 - maintenance must not fail the copy
            return [f"maintenance: {one_line(exc)}"]
        for a in answer.actions:
            self.retention.append({"machine": a.machine, "action": a.action, "point": a.point,
                                   "detail": a.detail})
            self.emit(ev.RetentionAction(self.spec.name, a.machine, a.action, a.point, a.detail))
        return [f"cleanup refused by the target: {answer.refused}"] if answer.refused else []

    # -- tasks -----------------------------------------------------------------------
    def task_with_retries(self, ref: MachineRef, pool: Any) -> TaskResult:
        retries = 0 if self.dry_run else int(self.spec.transport.retries)
        attempt = 0
        while True:
            attempt += 1
            res = self.task(ref, pool)
            res.attempts = attempt
            if res.status != Status.FAILED or attempt > retries or res.gave_up_waiting \
                    or not res.retryable or self.control.is_stopped(ref.machine):
                break
            wait = float(self.spec.transport.retry_wait)
            self.log("warning", f"{ref.machine}: {res.message}; retry {attempt} of {retries} in "
                     f"{fmt_duration(wait)}", ref.machine)
            if self._sleep(wait, ref.machine):
                break
        self.emit(ev.TaskFinished(self.spec.name, ref.machine, res.status, res.stats, res.kind,
                                  res.point, res.duration_s, res.held_s, res.bottleneck,
                                  res.message))
        return res

    def _sleep(self, seconds: float, machine: str) -> bool:
        """Sleep unless stopped; True when the session (or the machine) was stopped."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.control.is_stopped(machine):
                return True
            time.sleep(min(0.2, end - time.monotonic()))
        return self.control.is_stopped(machine)

    def task(self, ref: MachineRef, pool: Any) -> TaskResult:
        """One attempt at one machine: its source lock (on hold while the source job
        holds it), then its copy; every error ends as a Failed result."""
        res = TaskResult(ref.machine)
        t0 = time.monotonic()
        lock = ChainLock(self.src.machine_dir(ref.source_job, ref.machine), exclusive=False)
        try:
            if self.control.is_stopped(ref.machine):  # stopped while queued: never starts
                raise Stopped(self.control.stop_message(ref.machine))
            res.held_s += self._take_source_lock(lock, ref)
            try:
                self._copy(ref, pool, res)
            finally:
                lock.release()
        except HoldTimeout as exc:
            res.fail(str(exc))
            res.gave_up_waiting = True
        except Stopped as exc:
            res.fail(str(exc))
        except (PlanError, PasswordError, t.TargetRefused, DamagedBlocks) as exc:  # the same on a retry
            res.fail(str(exc), retryable=False)
        except Exception as exc:  # noqa: BLE001 - one machine must not sink the session
            res.fail(one_line(exc))
        res.duration_s = time.monotonic() - t0
        with self._lock:
            self.retention += res.retention
        if res.status == Status.FAILED:
            self.log("error", f"{ref.machine}: {res.message}", ref.machine)
        return res

    def _take_source_lock(self, lock: ChainLock, ref: MachineRef) -> float:
        try:
            lock.acquire(timeout=0)
            return 0.0
        except LockBusy:
            pass
        reason = "source chain is locked by the source job (transform or backup in progress)"
        self.emit(ev.TaskOnHold(self.spec.name, ref.machine, reason, "source lock"))
        self.log("info", f"{ref.machine}: on hold: {reason}", ref.machine)
        t0 = time.monotonic()
        while True:
            if self.control.is_stopped(ref.machine):
                raise Stopped(self.control.stop_message(ref.machine))
            try:
                lock.acquire(timeout=0)
                break
            except LockBusy:
                if time.monotonic() - t0 >= self.hold_timeout:
                    raise HoldTimeout(f"gave up waiting for the source chain lock after "
                                      f"{self.hold_timeout:.0f}s") from None
                time.sleep(0.05)
        self.emit(ev.TaskResumed(self.spec.name, ref.machine))
        self.log("info", f"{ref.machine}: resumed, source chain released", ref.machine)
        return time.monotonic() - t0

    def context(self, ref: MachineRef) -> TaskContext:
        """What one machine's copy may see of this session."""
        from engine.copy.session import TaskContext

        machine = ref.machine

        def log(level: str, text: str) -> None:
            self.log(level, text, machine)

        return TaskContext(
            spec=self.spec, source_job=ref.source_job, machine=machine,
            folder=self.src.machine_dir(ref.source_job, machine),
            control=self.control.for_machine(machine), rate=self.rate, keys=self.keys,
            facts=self.facts.get(machine, {}), emit=self.emit, log=log, clock=self.clock,
            task_clock=self.task_clock, dry_run=self.dry_run, repair_only=self.repair_only,
            respect_window=self.respect_window, replay=self.at is not None)

    def _copy(self, ref: MachineRef, pool: Any, res: TaskResult) -> None:
        from engine.copy.session import MachineCopy

        src_meta: MachineMeta = self.src.load(ref.source_job, ref.machine)
        end, th = connect_target(self.spec, self.dst)
        try:
            MachineCopy(self.context(ref), src_meta, end, pool, res).run()
        finally:
            disconnect(end, th)


def run_job(spec: JobSpec, *, at: datetime | None = None, dry_run: bool = False,
            sink: ev.Sink = ev.discard, control: RunControl | None = None,
            hold_timeout: float = 3600.0, respect_window: bool | None = None,
            started_by: str = "cli", live: bool = True,
            only: list[str] | None = None, repair_only: bool = False,
            machine: str | None = None) -> SessionResult:
    """Run one session of a copy job (blocking). See CONTRACT `ferry run`.

    The copy window binds scheduled runs (the daemon) and replays (`at` given); an
    operator's "run now" on the wall clock is honoured outside it (with a log line).
    `only` copies just those machines (the console's "retry"): deleted-items
    bookkeeping is left to the next whole session, which sees every machine.
    A real run publishes itself (`engine.live`: `ferry sessions`, attach, control
    from other processes) unless `live` is False; `started_by` says who started it.
    """
    if respect_window is None:
        respect_window = at is not None
    runner = Runner(spec, at=at, dry_run=dry_run, sink=sink, control=control or RunControl(),
                    hold_timeout=hold_timeout, respect_window=respect_window,
                    only=[machine] if machine else only)
    runner.repair_only = repair_only  # `ferry check --repair`
    if dry_run:
        return runner.run()
    Path(spec.target.repository).mkdir(parents=True, exist_ok=True)
    with JobLock(spec.target.repository, spec.name), run_log(spec.target.repository, spec.name):
        runner.remote = _remote_job(spec)
        publisher = _publish(runner, started_by) if live else None
        try:
            return runner.run()
        finally:
            if publisher is not None:
                publisher.close()
            if runner.remote is not None:
                runner.remote.close()


def _remote_job(spec: JobSpec) -> RemoteJob | None:
    """The job stream of a remote run (the mover's job lock), or None when local.
    A mover that is unreachable now is left to the tasks (they report it, with retries)."""
    if not spec.target.mover:
        return None
    from engine.copy.jobsession import JobBusy, RemoteJob

    try:
        return RemoteJob(spec)
    except JobBusy as exc:
        raise RunError(str(exc), ExitCode.BUSY) from None
    except t.StreamError:
        return None


def _publish(runner: Runner, started_by: str) -> Publisher | None:
    """Record interrupted runs of this job, then publish this one (None if impossible:
    the copy goes on unpublished, with a log line)."""
    from engine.live.publisher import Publisher
    from engine.live.reap import reap

    try:
        reap(runner.spec)
    except Exception as exc:  # noqa: BLE001 - leftovers must not stop a run
        runner.log("warning", f"interrupted sessions not recorded: {one_line(exc)}")
    try:
        publisher = Publisher(runner.spec, runner.session, runner.control, started_by)
    except Exception as exc:  # noqa: BLE001 - the copy matters more than its publication
        runner.log("warning", f"this run is not visible to other processes: {one_line(exc)}")
        return None
    outer = runner.sink

    def sink(event: ev.Event) -> None:
        try:
            publisher.push(event)
        except Exception:  # noqa: BLE001 - watchers must not break the copy
            pass
        outer(event)

    runner.sink = sink
    return publisher


__all__ = ["run_job", "RunError", "SessionResult", "TaskResult", "Runner", "JobLock",
           "connect_target", "disconnect", "record_session"]
