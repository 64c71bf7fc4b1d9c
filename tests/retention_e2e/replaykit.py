"""Helpers of the retention end-to-end tests: a source that backs up daily, a copy job
replayed day by day with the real engine, and the same job through `engine.simulate`.

The source is a forward chain (an active full every 7th backup keeps it short, so a
year of runs stays fast); every source point's disk bytes are kept by point id, so any
target point can be checked byte for byte against the source point it came from.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from copyjob.conftest import BS, write_job

from engine.backup import take_backup
from engine.copy.background import retain_job
from engine.copy.runner import SessionResult, run_job
from engine.jobs.load import load_job
from engine.model import RetentionPolicy
from engine.repository.repository import Repository
from engine.restore import export_point
from engine.simulate import BACKGROUND_AT, RunResult, Sizing, replay, run_times, simulate

SOURCE_JOB = "Daily"
START = datetime(2026, 11, 1, 22, 0)  # a Sunday


@dataclass
class Disk:
    name: str
    path: Path
    data: bytearray
    rng: random.Random


class Lab:
    """A source repository with machines whose disks change a little every day."""

    def __init__(self, root: Path, machines: tuple[str, ...] = ("vm1",), blocks: int = 6,
                 seed: int = 1, source_keep: int = 3, full_every: int = 7):
        self.root = root
        self.src = root / "primary"
        self.src.mkdir(parents=True, exist_ok=True)
        self.dst = root / "dr"
        self.source_keep = source_keep
        self.full_every = full_every
        self.disks: dict[str, Disk] = {}
        self.count: dict[str, int] = {}
        self.states: dict[str, bytes] = {}  # source point id -> disk bytes at that point
        for i, name in enumerate(machines):
            rng = random.Random(seed * 1000 + i)
            path = root / "disks" / name / "disk0.img"
            path.parent.mkdir(parents=True, exist_ok=True)
            data = bytearray(rng.randbytes(blocks * BS))
            data[BS:2 * BS] = bytes(BS)  # a zero block
            self.disks[name] = Disk(name, path, data, rng)
            self.count[name] = 0

    def mutate(self, d: Disk, blocks: int) -> None:
        for _ in range(blocks):
            b = d.rng.randrange(len(d.data) // BS)
            off = b * BS + d.rng.randrange(BS - 4096)
            d.data[off:off + 4096] = d.rng.randbytes(4096)

    def backup(self, when: datetime, machines: list[str] | None = None, mutate: int = 2) -> None:
        for name in machines or list(self.disks):
            d = self.disks[name]
            if self.count[name]:
                self.mutate(d, mutate)
            d.path.write_bytes(d.data)
            r = take_backup(self.src, SOURCE_JOB, name, [d.path], method="forward",
                            keep=self.source_keep, block_size=BS, at=when,
                            active_full=self.count[name] % self.full_every == 0)
            self.count[name] += 1
            self.states[r.point.id] = bytes(d.data)

    def job(self, name: str, *, keep: int, mode: str = "periodic", retention: str = "",
            storage: str = "", schedule: str = "", file: str = "") -> Path:
        extra = retention + (f"\n[storage]\n{storage}\n" if storage else "") + (
            f"\n[schedule]\n{schedule}\n" if schedule else "")
        return write_job(self.root / f"{file or name}.toml", name, self.src, [SOURCE_JOB],
                         self.dst, extra=extra, keep=keep, mode=mode)

    def chain(self, job: str, machine: str = "vm1") -> list:
        repo = Repository(self.dst)
        return repo.load(job, machine).points if repo.has(job, machine) else []

    def check_exports(self, job: str, machine: str = "vm1") -> int:
        """Every point of the target chain exports exactly its source point's bytes."""
        n = 0
        for p in self.chain(job, machine):
            out = self.root / "x" / p.id
            export_point(self.dst, job, machine, p.id, out)
            got = (out / "disk0.img").read_bytes()
            assert got == self.states[p.source_point], (
                f"{job}/{machine}: point {p.id} of {p.time} ({p.kind.value}, {p.gfs}) "
                f"does not export the source point {p.source_point}")
            (out / "disk0.img").unlink()
            n += 1
        return n


def shape(points) -> list[tuple]:
    """(time, kind, flags) of a real chain or of a preview day."""
    out = []
    for p in points:
        kind = p.kind.value if hasattr(p.kind, "value") else p.kind
        out.append((p.time, kind, "".join(sorted(p.gfs, key="WMY".index))))
    return out


def real_flag_dates(points) -> list[tuple]:
    """(time, GFS day per flag, day each flag was assigned) of a real chain's flagged fulls."""
    return [(p.time, tuple(sorted(p.gfs_dates.items())), tuple(sorted(p.gfs_assigned.items())))
            for p in points if p.gfs]


def sim_flag_dates(points) -> list[tuple]:
    return [(p.time, tuple(sorted((f, d.isoformat()) for f, d in p.gfs.items())),
             tuple(sorted((f, p.assigned.get(f, d).isoformat()) for f, d in p.gfs.items())))
            for p in points if p.gfs]


@dataclass
class Replay:
    lab: Lab
    job: str
    spec: object
    days: int
    start: datetime
    real: list[list[tuple]] = field(default_factory=list)  # shape per day
    real_dates: list[list[tuple]] = field(default_factory=list)
    sessions: dict[date, SessionResult] = field(default_factory=dict)  # the day's last run
    runs: list[SessionResult] = field(default_factory=list)
    exports_checked: int = 0
    skip: Callable[[datetime], bool] | None = None
    no_new_point: Callable[[datetime], bool] | None = None
    changes: list[tuple[date, RetentionPolicy]] = field(default_factory=list)
    background: bool = False
    passes: dict[date, SessionResult] = field(default_factory=dict)  # background passes


def run_replay(lab: Lab, job_file: Path, days: int, *, start: datetime = START,
               skip: Callable[[datetime], bool] | None = None, check_every: int = 0,
               on_day: Callable[[int, datetime, SessionResult | None], None] | None = None,
               no_new_point: Callable[[datetime], bool] | None = None,
               policy_from: tuple[tuple[date, Path], ...] = (),
               background: bool = False) -> Replay:
    """The job's runs as its schedule sets them (`engine.simulate.run_times`, the
    daemon's rule; daily at `start`'s time for immediate jobs), each preceded by a
    source backup at the same time, except on skipped runs (neither) and runs without a
    new source point (no backup). From each `policy_from` day on, the job file given
    there is used (a policy edited on that day). With `background`, the daemon's
    background retention pass (`retain_job`) runs every day at 00:30 before the runs."""
    spec = load_job(job_file)
    later = [(d, load_job(f)) for d, f in policy_from]
    rep = Replay(lab, spec.name, spec, days, start, skip=skip, no_new_point=no_new_point,
                 changes=[(d, s.retention) for d, s in later], background=background)
    sched = spec.schedule if spec.mode == "periodic" else None
    runs = list(run_times(start, days, None, sched))
    for d in range(days):
        day = start.date() + timedelta(days=d)
        res = None
        job = next((s for since, s in reversed(later) if since <= day), spec)
        slot = datetime.combine(day, BACKGROUND_AT)
        if background and slot >= start:
            rep.passes[day] = retain_job(job, at=slot)
            assert rep.passes[day].status == "Success", rep.passes[day].to_json()
        for t in (t for t in runs if t.date() == day):
            if skip is not None and skip(t):
                continue
            nothing_new = no_new_point is not None and no_new_point(t)
            if nothing_new and spec.mode == "immediate":
                continue  # an immediate job runs only for a new point
            if not nothing_new:
                lab.backup(t)
            job = next((s for since, s in reversed(later) if since <= day), spec)
            res = run_job(job, at=t)
            assert res.status == "Success", res.to_json()
            rep.sessions[day] = res
            rep.runs.append(res)
        chain = lab.chain(spec.name)
        rep.real.append(shape(chain))
        rep.real_dates.append(real_flag_dates(chain))
        if check_every and d % check_every == check_every - 1:
            rep.exports_checked += lab.check_exports(spec.name)
        if on_day is not None:
            on_day(d, datetime.combine(day, start.time()), res)
    rep.exports_checked += lab.check_exports(spec.name)
    return rep


def compare_with_preview(rep: Replay, skip: Callable[[datetime], bool] | None = None) -> int:
    """The real chain equals `ferry preview`'s chain on every day; returns days compared."""
    spec = rep.spec
    skip = skip or rep.skip
    kw = dict(skip=skip, schedule=spec.schedule, no_new_point=rep.no_new_point,
              changes=rep.changes, background=rep.background)
    sim = simulate(spec.name, spec.retention, spec.mode, rep.start, rep.days, Sizing(10, 1), **kw)
    assert len(sim.days) == rep.days
    runs = [r for r in replay(spec.retention, spec.mode, rep.start, rep.days, Sizing(10, 1), **kw)
            if isinstance(r, RunResult)]
    by_day = {r.time.date(): r for r in runs}
    last_dates: list[tuple] = []
    for i, day in enumerate(sim.days):
        want = shape(day.points)
        got = rep.real[i]
        if day.date in by_day:
            last_dates = sim_flag_dates(by_day[day.date].chain)
        if got != want or rep.real_dates[i] != last_dates:
            res = rep.sessions.get(day.date)
            raise AssertionError(
                f"{spec.name}: day {i} ({day.date}) differs from the preview\n"
                f"  real:    {_fmt(got)}\n  preview: {_fmt(want)}\n"
                f"  real flag dates:    {rep.real_dates[i]}\n"
                f"  preview flag dates: {last_dates}\n"
                f"  preview actions: {day.actions}\n"
                f"  real actions:    {res.retention if res else 'no run'}")
    return len(sim.days)


def _fmt(chain: list[tuple]) -> str:
    return " ".join(f"{t:%m-%d}{k[0].upper()}{('/' + f) if f else ''}" for t, k, f in chain)


def no_fsync(monkeypatch) -> None:
    """Skip fsync in in-process replays: durability against power loss is not what they
    test (the kill -9 tests run the real thing), and on a slow disk the thousands of
    metadata commits of a year of runs would dominate the run time."""
    import os

    monkeypatch.setattr(os, "fsync", lambda fd: None)


def fast_dir(tmp_path: Path):
    """A scratch folder in memory (/dev/shm) when there is one, else `tmp_path`.

    A year of runs makes thousands of small commits (metadata, history rows); on a
    slow disk their syncs, not the engine, would set the run time."""
    import shutil
    import tempfile

    shm = Path("/dev/shm")
    if not (shm.is_dir() and os_access(shm)):
        yield tmp_path
        return
    d = Path(tempfile.mkdtemp(prefix="ferry-retention-", dir=shm))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def os_access(path: Path) -> bool:
    import os

    return os.access(path, os.W_OK | os.X_OK)
