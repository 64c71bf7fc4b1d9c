"""Deterministic fixture data for console tests: jobs, chains, history, previews, events.

Nothing here reads a clock, the disk or a random source, so snapshots are stable.
`StaticBackend` serves this data through the same interface as the real
`console.backend.Backend`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from console.backend import Backend
from console.records import JobEntry, LastRun, LogRecord, MachineInfo, SessionRecord, TaskRecord
from engine import events as ev
from engine.jobs.load import JobFileError
from engine.jobs.schema import JobSpec, Source, Storage, Target
from engine.model import (
    DiskInfo,
    GfsCycle,
    GfsPolicy,
    Kind,
    MachineMeta,
    Method,
    RestorePoint,
    RetentionPolicy,
    Stats,
)
from engine.simulate import PreviewDay, PreviewPoint, PreviewResult, Sizing, SizingModel

JOBS_DIR = Path("/srv/ferry/jobs")
T0 = datetime(2026, 11, 1, 22, 0)
GIB = 1024**3


def FixtureSpec(name: str, path: Path, **kwargs: Any) -> JobSpec:  # noqa: N802
    """A real engine JobSpec with the fixture's defaults (no disk)."""
    source = Source(repository=Path("/srv/backups/primary"), jobs=kwargs.pop("source_jobs", ["Daily"]),
                    machines=kwargs.pop("machines", []))
    kwargs.setdefault("source", source)
    kwargs.setdefault("target", Target(repository=kwargs.pop("target_repository", Path("/srv/backups/dr"))))
    kwargs.setdefault("storage", Storage(compression="optimal"))
    return JobSpec(path=path, name=name, **kwargs)


def FixtureError(line: int | None, key: str, problem: str,  # noqa: N802
                 path: str = "dr-copy.toml") -> JobFileError:
    return JobFileError(path, line, key, problem)


def specs() -> list[JobSpec]:
    return [
        FixtureSpec("DR copy", JOBS_DIR / "dr-copy.toml", retention=RetentionPolicy(
            keep=7, gfs=GfsPolicy(weekly=GfsCycle(4, "sunday"), monthly=GfsCycle(12, "first")))),
        FixtureSpec("Offsite weekly", JOBS_DIR / "offsite-weekly.toml", enabled=False,
                    target_repository=Path("/mnt/offsite"),
                    retention=RetentionPolicy(keep=14, unit="days")),
        FixtureSpec("SQL immediate", JOBS_DIR / "sql-immediate.toml", mode="immediate",
                    source_jobs=["SQL hourly"], machines=["sql01"]),
    ]


def entries() -> list[JobEntry]:
    out = [JobEntry(s.path, s) for s in specs()]
    out.append(JobEntry(JOBS_DIR / "lab-copy.toml", None,
                        "lab-copy.toml:6: retention.keep: must be at least 2 (got 1)"))
    return out


def _point(machine: str, index: int, kind: Kind, size: int, gfs: list[str] | None = None,
           days_apart: int = 1) -> RestorePoint:
    when = T0 + timedelta(days=index * days_apart)
    return RestorePoint(id=f"{machine[:3]}{index:04d}", time=when, kind=kind,
                        file=f"{machine}D{when:%Y-%m-%dT%H%M%S}{kind.extension}",
                        disks=[DiskInfo(f"{machine}-disk0.img", 40 * GIB)], size=size,
                        gfs=gfs or [], source_point=f"src{index:04d}")


def chain(machine: str, count: int, method: Method = Method.FOREVER_FORWARD,
          job: str = "DR copy") -> MachineMeta:
    points = []
    for i in range(count):
        if i == 0 or (method == Method.FORWARD and i % 4 == 0):
            points.append(_point(machine, i, Kind.FULL, 12 * GIB, ["W"] if i == 0 else []))
        else:
            points.append(_point(machine, i, Kind.INCREMENTAL, (300 + 37 * i) * 1024**2))
    if method == Method.REVERSE:
        points = [_point(machine, i, Kind.ROLLBACK, 400 * 1024**2) for i in range(count - 1)]
        points.append(_point(machine, count - 1, Kind.FULL, 12 * GIB))
    return MachineMeta(job=job, machine=machine, block_size=1024**2, method=method,
                       compression="optimal", points=points)


def machines(spec: Any) -> list[MachineInfo]:
    if spec.name == "DR copy":
        return [
            MachineInfo("db01", "Daily", chain("db01", 5, Method.FORWARD, "Daily"),
                        chain("db01", 3)),
            MachineInfo("web01", "Daily", chain("web01", 6, Method.REVERSE, "Daily"),
                        chain("web01", 4)),
            MachineInfo("web02", "Daily", chain("web02", 3, job="Daily"), None),
        ]
    if spec.name == "SQL immediate":
        return [MachineInfo("sql01", "SQL hourly", chain("sql01", 4, job="SQL hourly"),
                            chain("sql01", 4))]
    return []


SESSIONS = [
    {"id": 3, "job": "DR copy", "status": "Warning", "started": "2026-11-24T22:00:00",
     "finished": "2026-11-24T22:41:10", "duration_s": 2470.0, "processed": 120 * GIB,
     "read": 18 * GIB, "transferred": 7 * GIB, "written": 7 * GIB,
     "message": "web02: source chain locked for 12m"},
    {"id": 2, "job": "DR copy", "status": "Success", "started": "2026-11-23T22:00:00",
     "finished": "2026-11-23T22:30:02", "duration_s": 1802.0, "processed": 120 * GIB,
     "read": 15 * GIB, "transferred": 6 * GIB, "written": 6 * GIB, "message": ""},
    {"id": 1, "job": "DR copy", "status": "Failed", "started": "2026-11-22T22:00:00",
     "finished": "2026-11-22T22:05:00", "duration_s": 300.0, "processed": 3 * GIB,
     "read": 3 * GIB, "transferred": 1 * GIB, "written": 1 * GIB,
     "message": "target repository full"},
    {"id": 4, "job": "SQL immediate", "status": "Success", "started": "2026-11-25T21:10:00",
     "finished": "2026-11-25T21:11:35", "duration_s": 95.0, "processed": 40 * GIB,
     "read": 2 * GIB, "transferred": GIB, "written": GIB, "message": ""},
]


def _log(time: str, text: str, level: str = "info", machine: str = "",
         kind: str = "log") -> dict[str, Any]:
    return {"time": f"2026-11-24T{time}", "level": level, "machine": machine, "kind": kind,
            "text": text}


SESSION_LOG: dict[str, list[dict[str, Any]]] = {"3": [
    _log("22:00:00", "session 3 started: 3 machines"),
    _log("22:00:01", "db01: copying incremental (40.0 GiB)", machine="db01"),
    _log("22:00:01", "web01: copying incremental (40.0 GiB)", machine="web01"),
    _log("22:00:02", "web02: on hold (source lock): source chain is locked by the source job",
         "warning", "web02"),
    _log("22:10:00", "db01: Success · incremental · took 10m00s · read 5.0 GiB · sent 2.0 GiB",
         machine="db01"),
    _log("22:10:01", "db01: retention: merge db00001", machine="db01", kind="retention"),
    _log("22:11:00", "web01: Success · incremental · took 11m00s · read 6.0 GiB · sent 3.0 GiB",
         machine="web01"),
    _log("22:12:02", "web02: resumed", machine="web02"),
    _log("22:41:09", "web02: Warning · incremental · took 12m00s · read 7.0 GiB · sent 4.0 GiB"
         ": web02: source chain locked for 12m", "warning", "web02"),
    _log("22:41:10", "session ended Warning after 41m10s: web02: source chain locked for 12m",
         "warning"),
]}


def tasks(session_id: Any) -> list[dict[str, Any]]:
    if int(session_id) == 4:
        return [{"machine": "sql01", "status": "Success", "kind": "incremental",
                 "point": "p41", "processed": 40 * GIB, "read": 2 * GIB,
                 "transferred": GIB, "written": GIB, "duration_s": 95.0, "held_s": 0.0,
                 "bottleneck": "Target", "message": ""}]
    status = {1: "Failed", 2: "Success", 3: "Warning"}[int(session_id)]
    out = []
    for i, name in enumerate(["db01", "web01", "web02"]):
        out.append({"machine": name, "status": status if i == 2 else "Success",
                    "kind": "incremental", "point": f"p{session_id}{i}",
                    "processed": 40 * GIB, "read": (5 + i) * GIB, "transferred": (2 + i) * GIB,
                    "written": (2 + i) * GIB, "duration_s": 600.0 + 60 * i,
                    "held_s": 720.0 if (i == 2 and status == "Warning") else 0.0,
                    "bottleneck": ["Source", "Target", "Stream"][i],
                    "message": "" if i < 2 else SESSIONS[3 - int(session_id)]["message"]})
    return out


def fake_preview(job: str, policy: RetentionPolicy, start: datetime, days: int,
                 sizing: SizingModel) -> PreviewResult:
    """A simple, deterministic stand-in for engine.simulate (keep-N forever-forward)."""
    full = int(sizing.used * sizing.reduction_pct / 100)
    inc = int(sizing.used * sizing.change_pct / 100 * sizing.reduction_pct / 100)
    out: list[PreviewDay] = []
    weekly = policy.gfs.weekly.keep if policy.gfs and policy.gfs.weekly else 0
    for d in range(days):
        now = start + timedelta(days=d)
        first = max(0, d - policy.keep + 1)
        points = [PreviewPoint(start + timedelta(days=first), "full", [],
                               f"short-term: newest {policy.keep} points", full)]
        for i in range(first + 1, d + 1):
            points.append(PreviewPoint(start + timedelta(days=i), "incremental", [],
                                       f"short-term: newest {policy.keep} points", inc))
        gfs_fulls = min(weekly, d // 7)
        for w in range(gfs_fulls):
            when = start + timedelta(days=7 * (d // 7 - w))
            points.insert(0, PreviewPoint(when, "full", ["W"],
                                          f"weekly until {(when + timedelta(weeks=weekly)).date()}",
                                          full))
        total = sum(p.size for p in points)
        work = full if d and first > 0 else 0
        out.append(PreviewDay(now.date(), points, total + work, work))
    worst = max(out, key=lambda day: day.total_size) if out else None
    return PreviewResult(job, out, worst, [])


# what the fixture's "real chains" give (the what-if's default, as `ferry preview`'s)
REAL_CHAINS = SizingModel(24 * GIB, 5.0, 50.0)


class StaticBackend(Backend):
    """Serves the fixture data; records what the console asked it to write."""

    def __init__(self) -> None:
        super().__init__(JOBS_DIR)
        self.saved: list[tuple[Path, Any]] = []
        self.enabled_calls: list[tuple[Path, bool]] = []
        self.what_ifs: list[dict[str, Any]] = []  # the calendar what-if of each simulate
        self._specs = {str(s.path): s for s in specs()}

    def discover(self) -> list[JobEntry]:
        return entries()

    def live_sessions(self, specs: list[JobSpec]) -> list[Any]:
        return []  # the fixture has no runs of other processes

    def load_job(self, path: Path) -> JobSpec:
        return self._specs[str(path)]

    def validate_text(self, text: str, path: Path) -> list[JobFileError]:
        errors: list[JobFileError] = []
        for number, line in enumerate(text.splitlines(), 1):
            key, _, value = line.partition("=")
            if key.strip() == "keep" and value.strip().isdigit() and int(value) < 2:
                errors.append(FixtureError(number, "retention.keep",
                                           f"must be at least 2 (got {value.strip()})"))
            if key.strip() == "unit" and value.strip().strip('"') not in ("points", "days"):
                errors.append(FixtureError(number, "retention.unit",
                                           'must be "points" or "days"'))
        return errors

    def save_text(self, path: Path, text: str) -> list[JobFileError]:
        errors = self.validate_text(text, path)
        if not errors:
            self.saved.append((path, text))
        return errors

    def template(self, name: str) -> str:
        return JOB_TEXT.replace("DR copy", name)

    def set_enabled(self, path: Path, enabled: bool) -> JobSpec:
        self.enabled_calls.append((path, enabled))
        spec = self._specs[str(path)] = replace(self._specs[str(path)], enabled=enabled)
        return spec

    def update_retention(self, path: Path, policy: RetentionPolicy) -> JobSpec:
        self.saved.append((path, policy))
        spec = self._specs[str(path)] = replace(self._specs[str(path)], retention=policy)
        return spec

    def machines(self, spec: JobSpec) -> list[MachineInfo]:
        return machines(spec)

    def sessions(self, spec: JobSpec, limit: int = 100) -> list[SessionRecord]:
        rows = [SessionRecord.from_row(r) for r in SESSIONS if r["job"] == spec.name]
        return rows[:limit]

    def tasks(self, spec: JobSpec, session_id: str) -> list[TaskRecord]:
        return [TaskRecord.from_row(r) for r in tasks(session_id)]

    def session_log(self, spec: JobSpec, session: SessionRecord) -> list[LogRecord]:
        return [LogRecord.from_row(r) for r in SESSION_LOG.get(str(session.id), [])]

    def last_run(self, spec: JobSpec) -> LastRun | None:
        rows = self.sessions(spec, 1)
        return LastRun(rows[0], self.tasks(spec, rows[0].id)) if rows else None

    def preview_start(self, spec: Any, now: datetime) -> datetime:
        return now

    def preview_days(self, policy: Any) -> int:
        return 60

    def simulate(self, spec: Any, policy: Any, start: datetime, days: int,
                 sizing: SizingModel | None, **what: Any) -> Any:
        self.what_ifs.append(what)
        return fake_preview(spec.name, policy, start, days, sizing or REAL_CHAINS)

    def real_sizing(self, spec: Any) -> Any:
        return Sizing(full=REAL_CHAINS.used // 2, incremental=REAL_CHAINS.used // 40)


JOB_TEXT = """\
name = "DR copy"
mode = "periodic"

[source]
repository = "../primary"
jobs = ["Daily"]

[target]
repository = "../dr"

[retention]
keep = 7
unit = "points"

[retention.gfs]
weekly = { keep_weeks = 4, day = "sunday" }
"""


# ---- event streams -------------------------------------------------------------------------
JOB = "DR copy"
MACHINES = ["db01", "web01", "web02", "app01", "app02", "file01", "mail01", "dc01"]


def _stats(processed: int, ratio_read: float = 0.25, ratio_xfer: float = 0.4) -> Stats:
    read = int(processed * ratio_read)
    return Stats(processed=processed, read=read, transferred=int(read * ratio_xfer),
                 written=int(read * ratio_xfer), blocks=processed // 1024**2)


def run_ticks(ticks: int = 6) -> list[list[ev.Event]]:
    """A fixed run, tick by tick (one tick = one second of the manual clock)."""
    total = 40 * GIB
    out: list[list[ev.Event]] = [[ev.RunStarted(JOB, "s-0004", list(MACHINES))]
                                 + [ev.TaskQueued(JOB, m) for m in MACHINES]]
    shares = [{"Source": 0.45, "Compress": 0.2, "Stream": 0.1, "Target": 0.8},
              {"Source": 0.85, "Compress": 0.3, "Stream": 0.15, "Target": 0.4},
              {"Source": 0.3, "Compress": 0.25, "Stream": 0.7, "Target": 0.5}]
    running = MACHINES[:5]
    first = [ev.TaskStarted(JOB, m, "incremental" if i else "full", total)
             for i, m in enumerate(running)]
    first.append(ev.LogLine(JOB, "info", "planning: 5 incremental, 0 full", ""))
    out[0].extend(first)
    for t in range(1, ticks + 1):
        tick: list[ev.Event] = []
        for i, m in enumerate(running):
            if m == "web02" and t >= 3:
                continue
            processed = min(total, int(total * (0.08 + 0.05 * i) * t))
            tick.append(ev.TaskProgress(JOB, m, _stats(processed), total,
                                        rate=(120 + 15 * i) * 1024**2,
                                        bottleneck=shares[i % 3]))
        if t == 3:
            tick.append(ev.TaskOnHold(JOB, "web02", "source chain locked by job 'Daily'",
                                      by="source lock"))
        if t == 4:
            tick.append(ev.TaskFinished(JOB, "app02", "Success", _stats(total), "incremental",
                                        "p-app02-9", 240.0, 0.0, "Source"))
            tick.append(ev.TaskStarted(JOB, "file01", "incremental", total // 2))
            tick.append(ev.RetentionAction(JOB, "app02", "merge", "p-app02-1",
                                           "oldest increment into the full"))
        if t == 5:
            tick.append(ev.LogLine(JOB, "warning", "slow target: 4 retries", "db01"))
        out.append(tick)
    return out


def hold_ticks() -> list[list[ev.Event]]:
    """run_ticks until web02 waits for its source lock; the operator then holds the rest
    (the engine sends no event for that: tasks just stop at their next block)."""
    return run_ticks(4)
