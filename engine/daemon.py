"""`ferry daemon`: runs every job of a folder on its own.

Periodic jobs run at their scheduled times (and only inside their copy window);
immediate jobs run as soon as a source point newer than the last copied one is
complete. Disabled jobs (`enabled = false`) are skipped. The last run of each
job comes from its history, so a restarted daemon does not repeat a run.

Once a day, at 00:30 (or at the first poll after it), every job of the folder,
disabled ones included, gets a background retention pass
(`engine.copy.background`): expired GFS flags and the files they freed go even
when the job does not run. Its sessions are of kind "retention" and never count
as a job's last run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import CommandError, one_line
from engine.history import History, history_path
from engine.logs import job_logger
from engine.model import Status
from engine.objstore.open import target_repository
from engine.repository.repository import Repository
from engine.rpo import RpoWatch, check_job
from engine.schedule import in_window, run_due
from engine.units import now as wall_now

if TYPE_CHECKING:
    from engine.copy.control import RunControl
    from engine.copy.results import SessionResult
    from engine.jobs.load import JobSpec

LOG = job_logger("daemon")


def last_run(spec: JobSpec) -> datetime | None:
    """When the job's newest copy session started (retention passes do not count)."""
    rows = History(history_path(spec)).sessions(spec.name, limit=1, kind="copy")
    return datetime.fromisoformat(rows[0]["started"]) if rows else None


def has_new_source_point(spec: JobSpec) -> bool:
    """True when some machine's newest source point is newer than its copy.

    With a remote mover the chains are on the mover's host: the job's history says
    which source point each machine's last copy took (else every pass would run)."""
    src, dst = Repository(spec.source.repository), target_repository(spec)
    copied = History(history_path(spec)).copied(spec.name) \
        if spec.target.mover else None
    for job in spec.source.jobs:
        for _, machine in src.machines(job):
            if spec.source.machines and machine not in spec.source.machines:
                continue
            try:
                s = src.load(job, machine)
                if copied is not None:
                    if s.points and copied.get(machine) != s.points[-1].id:
                        return True
                    continue
                t = dst.try_load(spec.name, machine)
            except Exception:  # noqa: BLE001 - a damaged chain is the run's to report
                return True
            if s.points and (t is None or not t.points or s.points[-1].time > t.points[-1].time):
                return True
    return False


def job_due(spec: Any, last: datetime | None, now: datetime) -> bool:
    """Whether the daemon starts `spec` at `now`: enabled, inside its copy window, and a
    new source point (immediate) or a scheduled start since `last` (periodic)."""
    if not getattr(spec, "enabled", True):
        return False
    if spec.mode == "immediate":
        return in_window(spec.schedule, now) and has_new_source_point(spec)
    return run_due(spec.schedule, last, now)


class Daemon:
    """Polls the jobs folder; each due job runs to completion before the next poll."""

    def __init__(self, folder: Path, poll: float = 30.0,
                 clock: Callable[[], datetime] = wall_now,
                 run: Callable[..., SessionResult] | None = None,
                 retain: Callable[..., SessionResult] | None = None):
        self.folder = Path(folder)
        self.poll = poll
        self.clock = clock
        from engine.copy.background import retain_job
        from engine.copy.runner import run_job

        self.run: Callable[..., SessionResult] = run_job if run is None else run
        self.retain: Callable[..., SessionResult] = retain_job if retain is None else retain
        self._retained: dict[str, date] = {}  # job -> day of its last background pass here
        self.control: RunControl | None = None  # the run going on now (its notes tell of a hang-up)
        self.interrupted: list[bool] = []  # non-empty after Ctrl-C: no further job starts
        self.rpo = RpoWatch()
        self._rpo_checked: dict[str, float] = {}

    def run_options(self) -> dict[str, Any]:
        """Extra arguments for the real `run_job` (a test's stand-in takes none)."""
        from engine.copy.runner import run_job

        if self.run is not run_job:
            return {}
        from engine.copy.control import RunControl

        self.control = RunControl()
        return {"started_by": "daemon", "control": self.control}

    def watch_rpo(self, spec: JobSpec, now: datetime, every: float = 300.0) -> str | None:
        """Log when a job starts (or stops) missing its `rpo`; at most every `every` s per
        job, since a check reads every machine's metadata (over the network for s3)."""
        if spec.schedule.rpo is None:
            return None
        tick = time.monotonic()
        last = self._rpo_checked.get(spec.name)
        if last is not None and tick - last < every:
            return None
        self._rpo_checked[spec.name] = tick
        return self.rpo.observe(spec.name, check_job(spec, now))

    def pass_once(self) -> list[tuple[str, str]]:
        """Run every due job once; returns (job, status) for each run made."""
        from engine.jobs.load import discover_jobs

        ran: list[tuple[str, str]] = []
        for path, spec in discover_jobs(self.folder, need_source=False):
            if self.interrupted:
                break
            if isinstance(spec, Exception):
                LOG.error("%s", spec)
                continue
            self.background(path, spec)  # also for a job whose source is gone
            if not Path(spec.source.repository).is_dir():
                LOG.error("%s: source repository not found: %s; no copy run", path.name,
                          spec.source.repository)
                continue
            now = self.clock()
            try:
                self.watch_rpo(spec, now)
                if not job_due(spec, last_run(spec), now):
                    continue
                LOG.info("%s: due, starting a session", spec.name)
                try:
                    res = self.run(spec, at=None, respect_window=True, **self.run_options())
                finally:
                    self.control = None
                ran.append((spec.name, res.status))
                LOG.log(logging.INFO if res.status == Status.SUCCESS else logging.WARNING,
                        "%s: %s", spec.name, res.status)
                self._rpo_checked.pop(spec.name, None)  # a run changes the answer: look again
                self.watch_rpo(spec, self.clock())
            except Exception as exc:  # noqa: BLE001 - one bad job must not stop the daemon
                LOG.error("%s: %s", path.name, one_line(exc))
                ran.append((getattr(spec, "name", path.name), Status.FAILED))
        return ran

    def background(self, path: Path, spec: JobSpec) -> str | None:
        """The job's daily background retention pass when due; its status, or None."""
        from engine.copy.background import DAILY_AT, last_pass, pass_due
        from engine.copy.runner import RunError

        now = self.clock()
        if self._retained.get(spec.name) == now.date() or now.time() < DAILY_AT:
            return None  # done today, or not yet time (no history read on every poll)
        try:
            if not pass_due(now, last_pass(spec)):
                return None
            res = self.retain(spec, at=now)
        except RunError:
            return None  # a run holds the job: it applies retention itself; retry next poll
        except Exception as exc:  # noqa: BLE001 - one bad job must not stop the daemon
            LOG.error("%s: background retention: %s", path.name, one_line(exc))
            self._retained[spec.name] = now.date()
            return Status.FAILED
        self._retained[spec.name] = now.date()
        if res.tasks:
            LOG.log(logging.INFO if res.status == Status.SUCCESS else logging.WARNING,
                    "%s: background retention %s: %d action(s)", spec.name, res.status,
                    len(res.retention))
        return res.status

    def serve(self, once: bool = False) -> int:
        if not self.folder.is_dir():
            raise CommandError(f"ferry daemon: jobs folder not found: {self.folder}")
        from engine.copy.control import stop_on_interrupt
        from engine.live.hangup import keep_running_on_hangup

        self.control = None
        keep_running_on_hangup(lambda: [self.control] if self.control else [], "terminal")
        wake = threading.Event()  # set by Ctrl-C: no further pass, no more waiting
        try:  # Ctrl-C stops the run going on (recorded), then the daemon; idle: at once
            with stop_on_interrupt(lambda: self.control, idle=wake) as interrupted:
                # said once Ctrl-C and hang-up are handled (what the tests wait for)
                LOG.info("daemon started on %s%s", self.folder, " (one pass)" if once else "")
                self.interrupted = interrupted
                while True:
                    self.pass_once()
                    if once or interrupted or wake.wait(self.poll):
                        break
        except KeyboardInterrupt:
            interrupted = [True]
        if interrupted:
            LOG.info("daemon interrupted")
            raise KeyboardInterrupt  # engine.cli.main: "interrupted", exit 130
        return 0


__all__ = ["Daemon", "job_due"]
