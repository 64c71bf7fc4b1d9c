"""The console's typed door into the engine.

Every engine call the console makes goes through `Backend`, in the engine's own
types (`JobSpec`, `MachineMeta`, `Status`, events), so that tests can swap in a
backend serving fixed data (snapshots need no disk, no clock and no engine
threads). Methods here are blocking and may touch the disk: the App calls them
from thread workers and posts the results back as messages.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path

from console.records import (
    JobEntry,
    LastRun,
    LogRecord,
    MachineInfo,
    SessionRecord,
    TaskRecord,
)
from engine import preview_cli, restore
from engine import schedule as sched
from engine import simulate as sim
from engine.copy import active_full
from engine.copy.control import RunControl
from engine.copy.runner import SessionResult, run_job
from engine.events import Sink
from engine.health import CheckResult, check_machine
from engine.history import History, history_path
from engine.jobs import load as jobfile
from engine.jobs import save as jobsave
from engine.jobs.load import JobFileError, JobSpec
from engine.jobsdir import default_jobs
from engine.keys import KeyRing
from engine.live import paths as live_paths
from engine.live.client import Attachment, RemoteControl, SessionInfo, list_sessions
from engine.model import RetentionPolicy
from engine.objstore.open import target_repository
from engine.password import Password
from engine.repository.repository import Repository

__all__ = ["Backend", "EngineUnavailable", "JobEntry", "MachineInfo", "error_line",
           "error_text"]


class EngineUnavailable(RuntimeError):
    """The engine cannot do what the console asked (missing folder, ...): one line."""


class Backend:
    """Real engine access for the jobs folder `jobs_dir`."""

    def __init__(self, jobs_dir: Path | str | None = None) -> None:
        self.jobs_dir = Path(jobs_dir) if jobs_dir else default_jobs()

    # ---- job files ---------------------------------------------------------------------------
    def discover(self) -> list[JobEntry]:
        """Every job file of the folder, valid or not (invalid ones carry their error)."""
        if not self.jobs_dir.is_dir():
            raise EngineUnavailable(f"jobs folder {self.jobs_dir} does not exist")
        out: list[JobEntry] = []
        for path, item in jobfile.discover_jobs(self.jobs_dir):
            if isinstance(item, JobFileError):
                out.append(JobEntry(Path(path), None, str(item), [item]))
            else:
                out.append(JobEntry(Path(path), item))
        return out

    def load_job(self, path: Path) -> JobSpec:
        return jobfile.load_job(path)

    def validate_text(self, text: str, path: Path) -> list[JobFileError]:
        return jobfile.validate_text(text, path)

    def save_text(self, path: Path, text: str) -> list[JobFileError]:
        """Validate `text`; write it (atomically) only when it has no errors."""
        return jobsave.save_text(path, text)

    def template(self, name: str) -> str:
        return jobsave.template(name)

    def set_enabled(self, path: Path, enabled: bool) -> JobSpec:
        """Write `enabled = true/false` (only that line); returns the reloaded spec."""
        return jobsave.set_enabled(path, enabled)

    def update_retention(self, path: Path, policy: RetentionPolicy) -> JobSpec:
        return jobsave.update_retention(path, policy)

    # ---- repositories ------------------------------------------------------------------------
    def machines(self, spec: JobSpec) -> list[MachineInfo]:
        """The machines of a job with their source and target chains, sorted by name."""
        wanted = set(spec.source.machines)
        found: dict[str, MachineInfo] = {}
        source = Repository(spec.source.repository)
        for job in spec.source.jobs:
            for job_dir, machine in source.machines(job):
                if wanted and machine not in wanted:
                    continue
                info = found.setdefault(machine, MachineInfo(machine, source_job=job_dir))
                try:
                    info.source = source.load(job_dir, machine)
                except Exception as exc:  # damaged metadata: show it, don't crash
                    info.error = f"source: {exc}"
        target = target_repository(spec)  # a folder or the job's bucket
        try:
            pairs = target.machines(spec.name)
        except Exception as exc:  # noqa: BLE001 - an unreachable bucket: say so per machine
            pairs = []
            for info in found.values():
                info.error = f"target: {exc}"
        for job_dir, machine in pairs:
            if wanted and machine not in wanted:
                continue
            info = found.setdefault(machine, MachineInfo(machine))
            try:
                info.target = target.load(job_dir, machine)
            except Exception as exc:
                info.error = f"target: {exc}"
        for machine in wanted - set(found):
            found[machine] = MachineInfo(machine, error="no restore points in the source")
        for machine in active_full.pending(spec):
            if machine in found:
                found[machine].full_requested = True
        return [found[k] for k in sorted(found)]

    # ---- history -----------------------------------------------------------------------------
    def sessions(self, spec: JobSpec, limit: int = 100) -> list[SessionRecord]:
        rows = History(history_path(spec)).sessions(job=spec.name, limit=limit)
        return [SessionRecord.from_row(r) for r in rows]

    def tasks(self, spec: JobSpec, session_id: str) -> list[TaskRecord]:
        return [TaskRecord.from_row(r) for r in History(history_path(spec)).tasks(session_id)]

    def session_log(self, spec: JobSpec, session: SessionRecord) -> list[LogRecord]:
        """The timestamped log lines kept with a past session (older sessions: none)."""
        return [LogRecord.from_row(r) for r in History(history_path(spec)).log(session.id)]

    def last_run(self, spec: JobSpec) -> LastRun | None:
        """The job's newest copy session with its task results; None when it never ran
        (background retention passes are sessions too, but not runs)."""
        rows = [SessionRecord.from_row(r) for r in History(history_path(spec)).sessions(
            job=spec.name, limit=1, kind="copy")]
        if not rows:
            return None
        return LastRun(rows[0], self.tasks(spec, rows[0].id))

    def next_run(self, spec: JobSpec, now: datetime) -> datetime | None:
        """The next scheduled start (periodic, enabled jobs only)."""
        if spec.mode != "periodic" or not spec.enabled:
            return None
        return sched.next_run(spec.schedule, now)

    # ---- retention what-if -------------------------------------------------------------------
    def simulate(self, spec: JobSpec, policy: RetentionPolicy, start: datetime, days: int,
                 sizing: sim.SizingModel | None, *, skip: frozenset[date] = frozenset(),
                 no_new_point: frozenset[date] = frozenset(), policy_from: date | None = None,
                 today: date | None = None) -> sim.PreviewResult:
        """`ferry preview`'s own path (`preview_cli.build_preview`): the job's schedule,
        sizes from its real chains unless a sizing model is given, missed runs (`skip`),
        runs without a new source point, and `policy` from the day `policy_from` on (the
        job's current policy before it; from the start when None); the notes say what the
        real chains keep of a cycle `policy` switches off."""
        model = sizing.sizes() if sizing is not None else None
        base, changes = ((spec.retention, [(policy_from, policy)]) if policy_from is not None
                         else (policy, []))
        what = preview_cli.WhatIf(policy=base, start=start, days=days, sizing=model,
                                  skip=frozenset(skip), no_new_point=frozenset(no_new_point),
                                  changes=changes, today=today)
        return preview_cli.build_preview(spec, what)

    def real_sizing(self, spec: JobSpec) -> sim.Sizing | None:
        """The full and increment sizes the preview takes from the real chains."""
        return preview_cli.sizing_from_repositories(spec)

    def preview_start(self, spec: JobSpec, now: datetime) -> datetime:
        """The first simulated run, as `ferry preview` picks it: the job's next scheduled
        run after `now` (periodic), else tomorrow 22:00 (immediate)."""
        if spec.mode == "periodic":
            return sched.next_run(spec.schedule, now)
        return datetime.combine(now.date() + timedelta(days=1), time(22, 0))

    def preview_days(self, policy: RetentionPolicy) -> int:
        """How many days `ferry preview` would show for `policy`."""
        return preview_cli.default_days(policy)

    # ---- reads that may need the encryption password -----------------------------------------
    def export_point(self, spec: JobSpec, machine: str, point_ref: str, out: Path,
                     password: bytes | None = None) -> list[Path]:
        """Blocking: write the point's disks under `out` (`ferry export`). `password` is
        used for this call only; the engine opens the chain key before writing anything."""
        keys = KeyRing(password=Password(password)) if password is not None else None
        return restore.export_point(target_repository(spec), spec.name, machine, point_ref, out,
                                    keys)

    def check_deep(self, spec: JobSpec, machine: str, password: bytes) -> CheckResult:
        """Blocking: `ferry check --deep --all` of one machine of the job's target."""
        repo = target_repository(spec)
        return check_machine(repo, spec.name, machine, all_points=True,
                             keys=KeyRing(password=Password(password)))

    # ---- runs --------------------------------------------------------------------------------
    def make_control(self) -> RunControl:
        return RunControl()

    def run_job(self, spec: JobSpec, sink: Sink, control: RunControl,
                only: list[str] | None = None) -> SessionResult:
        """Blocking: one run of the job (`only`: just those machines, a retry). Call from a
        thread worker."""
        return run_job(spec, sink=sink, control=control, started_by="console", only=only)

    def request_active_full(self, spec: JobSpec, machines: list[str]) -> None:
        """"Active full now": each machine's next copy is a full (`engine.copy.active_full`)."""
        for machine in machines:
            active_full.request(spec, machine)

    # ---- runs of other processes (engine.live) -----------------------------------------------
    def live_sessions(self, specs: list[JobSpec]) -> list[SessionInfo]:
        """Every session published for the jobs of the folder (live or interrupted)."""
        return list_sessions(live_paths.search_dirs(self.jobs_dir, specs))

    def attach(self, info: SessionInfo) -> Attachment:
        """A stream of that session's events (its snapshot first); raises OSError."""
        return Attachment(info)

    def remote_control(self, info: SessionInfo) -> RemoteControl:
        return RemoteControl(info)


def error_line(error: JobFileError) -> int | None:
    """The 1-based line of a job-file error, if it has one."""
    return error.line if error.line and error.line > 0 else None


def error_text(error: JobFileError) -> str:
    """One line for an error."""
    return str(error).splitlines()[0]
