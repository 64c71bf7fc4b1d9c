"""The console's only door into the engine.

Every engine call the console makes goes through `Backend`, so that
- a missing or half-written engine module becomes a friendly
  `EngineUnavailable` message instead of a crash, and
- tests can swap in a backend serving fixed data (snapshots need no disk,
  no clock and no engine threads).

Methods here are blocking and may touch the disk: screens call them from
thread workers and post the results back as messages.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

from engine.events import Event

DEFAULT_JOBS_DIR = Path(__file__).resolve().parent.parent / "sample_repos" / "jobs"


class EngineUnavailable(RuntimeError):
    """An engine module or function the console needs is not there (yet)."""


def engine_module(name: str) -> ModuleType:
    """Import `name` or raise EngineUnavailable with a one-line reason."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise EngineUnavailable(f"{name} is not available: {exc}") from exc


def engine_function(module: str, name: str) -> Callable[..., Any]:
    mod = engine_module(module)
    fn = getattr(mod, name, None)
    if fn is None:
        raise EngineUnavailable(f"{module}.{name} is not available")
    return fn  # type: ignore[no-any-return]


@dataclass
class JobEntry:
    """One job file of the jobs folder: its spec, or why it could not be loaded."""

    path: Path
    spec: Any | None = None
    error: str = ""

    @property
    def name(self) -> str:
        return str(getattr(self.spec, "name", "")) or self.path.stem

    @property
    def key(self) -> str:
        """Stable identity of a job inside the console (its file)."""
        return str(self.path)


@dataclass
class MachineInfo:
    """A machine a job copies, with both of its chains when they exist."""

    name: str
    source_job: str = ""
    source: Any | None = None  # engine.model.MachineMeta
    target: Any | None = None  # engine.model.MachineMeta
    error: str = ""

    @property
    def target_points(self) -> list[Any]:
        return list(getattr(self.target, "points", []) or [])

    @property
    def source_points(self) -> list[Any]:
        return list(getattr(self.source, "points", []) or [])


@dataclass
class Sizing:
    """The what-if sizing model (CONTRACT `ferry preview --used --change --reduction`)."""

    used: int = 100 * 1024**3
    change_pct: float = 5.0
    reduction_pct: float = 50.0


@dataclass
class FileErrors:
    """Errors of a job text; empty means valid."""

    errors: list[Any] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.errors)


class Backend:
    """Real engine access for the jobs folder `jobs_dir`."""

    def __init__(self, jobs_dir: Path | str | None = None) -> None:
        self.jobs_dir = Path(jobs_dir) if jobs_dir else DEFAULT_JOBS_DIR

    # ---- job files ---------------------------------------------------------------------------
    def discover(self) -> list[JobEntry]:
        """Every job file of the folder, valid or not (invalid ones carry their error)."""
        if not self.jobs_dir.is_dir():
            raise EngineUnavailable(f"jobs folder {self.jobs_dir} does not exist")
        discover_jobs = engine_function("engine.jobfile", "discover_jobs")
        out: list[JobEntry] = []
        for path, item in discover_jobs(self.jobs_dir):
            if isinstance(item, Exception):
                out.append(JobEntry(Path(path), None, str(item)))
            else:
                out.append(JobEntry(Path(path), item))
        return out

    def load_job(self, path: Path) -> Any:
        return engine_function("engine.jobfile", "load_job")(path)

    def validate_text(self, text: str, path: Path) -> list[Any]:
        return list(engine_function("engine.jobfile", "validate_text")(text, path))

    def save_text(self, path: Path, text: str) -> list[Any]:
        """Validate `text`; write it (atomically) only when it has no errors."""
        return list(engine_function("engine.jobsave", "save_text")(path, text))

    def template(self, name: str) -> str:
        return str(engine_function("engine.jobsave", "template")(name))

    def set_enabled(self, path: Path, enabled: bool) -> Any:
        """Write `enabled = true/false` (only that line); returns the reloaded spec."""
        return engine_function("engine.jobsave", "set_enabled")(path, enabled)

    def update_retention(self, path: Path, policy: Any) -> Any:
        return engine_function("engine.jobsave", "update_retention")(path, policy)

    # ---- repositories ------------------------------------------------------------------------
    def machines(self, spec: Any) -> list[MachineInfo]:
        """The machines of a job with their source and target chains, sorted by name."""
        Repository = engine_function("engine.repository.repository", "Repository")
        wanted = set(getattr(spec, "machines", None) or [])
        found: dict[str, MachineInfo] = {}
        source = Repository(getattr(spec, "source_repository", ""))
        for job in getattr(spec, "source_jobs", None) or []:
            for job_dir, machine in source.machines(job):
                if wanted and machine not in wanted:
                    continue
                info = found.setdefault(machine, MachineInfo(machine, source_job=job_dir))
                try:
                    info.source = source.load(job_dir, machine)
                except Exception as exc:  # damaged metadata: show it, don't crash
                    info.error = f"source: {exc}"
        target = Repository(getattr(spec, "target_repository", ""))
        for job_dir, machine in target.machines(getattr(spec, "name", "")):
            if wanted and machine not in wanted:
                continue
            info = found.setdefault(machine, MachineInfo(machine))
            try:
                info.target = target.load(job_dir, machine)
            except Exception as exc:
                info.error = f"target: {exc}"
        for machine in wanted - set(found):
            found[machine] = MachineInfo(machine, error="no restore points in the source")
        return [found[k] for k in sorted(found)]

    # ---- history -----------------------------------------------------------------------------
    def _history(self, spec: Any) -> Any:
        history = engine_module("engine.history")
        return history.History(history.history_path(spec))

    def sessions(self, spec: Any, limit: int = 100) -> list[dict[str, Any]]:
        return list(self._history(spec).sessions(job=getattr(spec, "name", None), limit=limit))

    def tasks(self, spec: Any, session_id: Any) -> list[dict[str, Any]]:
        return list(self._history(spec).tasks(session_id))

    def last_status(self, spec: Any) -> str:
        """Status of the job's newest session, '' when none or history is unavailable."""
        try:
            rows = self.sessions(spec, limit=1)
        except Exception:
            return ""
        return str(rows[0].get("status", "")) if rows else ""

    # ---- retention what-if -------------------------------------------------------------------
    def simulate(
        self, spec: Any, policy: Any, start: datetime, days: int, sizing: Sizing,
    ) -> Any:
        simulate = engine_module("engine.simulate")
        model = simulate.sizing_from_model(sizing.used, sizing.change_pct, sizing.reduction_pct)
        return simulate.simulate(
            getattr(spec, "name", ""), policy, getattr(spec, "mode", "periodic"), start, days,
            model, interval=timedelta(days=1),
        )

    def preview_start(self, spec: Any, now: datetime) -> datetime:
        """The first simulated run, as `ferry preview` picks it: the job's next scheduled
        run after `now` (periodic), else tomorrow 22:00 (immediate)."""
        try:
            if getattr(spec, "mode", "periodic") == "periodic":
                next_run = engine_function("engine.schedule", "next_run")
                return next_run(spec.schedule, now)  # type: ignore[no-any-return]
            return datetime.combine(now.date() + timedelta(days=1), time(22, 0))
        except Exception:
            return now

    def preview_days(self, policy: Any) -> int:
        """How many days `ferry preview` would show for `policy` (60 if unknown)."""
        try:
            return int(engine_function("engine.preview_cli", "default_days")(policy))
        except Exception:
            return 60

    # ---- runs --------------------------------------------------------------------------------
    def make_control(self) -> Any:
        return engine_function("engine.copy.control", "RunControl")()

    def run_job(self, spec: Any, sink: Callable[[Event], None], control: Any) -> Any:
        """Blocking: one run of the job. Call from a thread worker."""
        run_job = engine_function("engine.copy.runner", "run_job")
        return run_job(spec, sink=sink, control=control)


def error_line(error: Any) -> int | None:
    """The 1-based line of a JobFileError-like object, if it has one."""
    line = getattr(error, "line", None)
    return int(line) if isinstance(line, int) and line > 0 else None


def error_text(error: Any) -> str:
    """One line for an error (falls back to key + problem)."""
    text = str(error)
    if text:
        return text.splitlines()[0]
    return f"{getattr(error, 'key', '')}: {getattr(error, 'problem', '')}"
