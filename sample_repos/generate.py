"""Build the sample source repository `sample_repos/primary/` (run by `make run`).

    python sample_repos/generate.py [--out sample_repos] [--days 14] [--force]

Three source backup jobs, two weeks of daily restore points from 2026-11-01
(a Sunday), taken with `engine.backup.take_backup(..., at=...)` on VM-like disk
images made by `sample_repos.vmdata`:

* `Daily`   - forward incremental, active full every Sunday, keep 10:
              web01, web02, db01 (two disks)      -> two chains, full + 6 increments each
* `Forever` - forever-forward, keep 7: app01, app02 (data disk grows on day 5)
              -> one full (the merged oldest point) + 6 increments
* `Reverse` - reverse incremental, keep 7: dc01, file01 (data disk grows on day 4,
              shrinks on day 10)       -> 6 rollbacks + the full holding the newest state

Block size 256 KiB, compression "optimal". Linux machines share the blocks of one
"OS image" template and Windows machines those of another, so copy jobs see
cross-machine duplicates. Everything is deterministic: two builds give the same
chains, times, sizes of disks and block digests; only the (random) point ids differ.

`--history` (run by `make run` once) then gives the copy jobs a past: "DR copy"
and "Offsite GFS" each run once as if it were yesterday evening (`run_job(at=...)`:
the sessions and their logs are dated yesterday, the copied points keep their
source times), into `dr/`, so the console's first screen is not empty. The
"Throttled copy" job is left for the newcomer: its first run copies three fulls
at 128 KiB/s and lasts about a minute, long enough to watch it, hold a machine
and resume it.

The disk images are kept, as they are after the last day, in `primary/.disks/<job>/
<machine>/` (ignored by the repository: its folder starts with a dot), so a demo or
test can take further points of the same machines. The build happens in a sibling
temp folder that is renamed to `primary` at the end; `primary/.built` marks a
complete build. A `primary` without `.built` is rebuilt; `--force` rebuilds anyway.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
if str(ROOT.parent) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT.parent))

from engine.backup import take_backup  # noqa: E402
from sample_repos import vmdata  # noqa: E402

KiB, MiB = 1 << 10, 1 << 20
BLOCK_SIZE = 256 * KiB
COMPRESSION = "optimal"
START = datetime(2026, 11, 1)  # a Sunday
DAYS = 14
LINUX, WINDOWS = "linux-template-2026", "windows-template-2025"
FORMAT = 1


@dataclass(frozen=True)
class Disk:
    name: str
    size: int
    change_pct: float  # share of blocks changed per day
    template: str | None = None  # shared OS image seed (system disks)
    resize: dict[int, float] = field(default_factory=dict)  # day -> +grow% / -shrink%


@dataclass(frozen=True)
class Machine:
    name: str
    disks: tuple[Disk, ...]


@dataclass(frozen=True)
class Job:
    name: str
    method: str
    keep: int
    hour: int
    minute: int
    machines: tuple[Machine, ...]
    weekly_full: bool = False  # active full on Sundays (forward only)


def _sys(template: str, change: float, size: int = 4 * MiB) -> Disk:
    return Disk("system.raw", size, change, template)


JOBS: tuple[Job, ...] = (
    Job("Daily", "forward", keep=10, hour=21, minute=0, weekly_full=True, machines=(
        Machine("web01", (_sys(LINUX, 4),)),
        Machine("web02", (_sys(LINUX, 4),)),
        Machine("db01", (_sys(LINUX, 3), Disk("data.raw", 6 * MiB, 12))),
    )),
    Job("Forever", "forever-forward", keep=7, hour=21, minute=30, machines=(
        Machine("app01", (_sys(LINUX, 6),)),
        Machine("app02", (_sys(LINUX, 5), Disk("data.raw", 2 * MiB, 10, resize={5: 50}))),
    )),
    Job("Reverse", "reverse", keep=7, hour=22, minute=0, machines=(
        Machine("dc01", (_sys(WINDOWS, 3),)),
        Machine("file01", (_sys(WINDOWS, 2, 3 * MiB),
                           Disk("data.raw", 8 * MiB, 8, resize={4: 25, 10: -20}))),
    )),
)


def point_time(job: Job, day: int) -> datetime:
    return START + timedelta(days=day, hours=job.hour, minutes=job.minute)


def disk_seed(job: Job, machine: Machine, disk: Disk) -> str:
    return f"sample:{job.name}/{machine.name}/{disk.name}"


def build(out: Path, days: int = DAYS, *, quiet: bool = False) -> dict[str, Any]:
    """Build `<out>/primary` from scratch; return the summary also written to `.built`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    final = out / "primary"
    work = out / ".primary.building"
    if work.exists():
        shutil.rmtree(work)
    work.mkdir()
    started = time.perf_counter()
    points = 0
    summary: dict[str, Any] = {"format": FORMAT, "start": START.isoformat(), "days": days,
                     "block_size": BLOCK_SIZE, "compression": COMPRESSION, "jobs": {}}
    try:
        for job in JOBS:
            summary["jobs"][job.name] = {"method": job.method, "keep": job.keep,
                                         "machines": [m.name for m in job.machines]}
            for machine in job.machines:
                folder = work / ".disks" / job.name / machine.name
                folder.mkdir(parents=True)
                paths = [folder / d.name for d in machine.disks]
                for day in range(days):
                    for disk, path in zip(machine.disks, paths, strict=True):
                        seed = disk_seed(job, machine, disk)
                        if day == 0:
                            vmdata.write_disk(path, disk.size, seed, disk.template,
                                              shared=0.5, unit=BLOCK_SIZE)
                            continue
                        pct = disk.resize.get(day, 0)
                        vmdata.mutate_disk(path, day, seed, disk.change_pct,
                                           grow_pct=max(pct, 0), shrink_pct=max(-pct, 0),
                                           unit=BLOCK_SIZE)
                    when = point_time(job, day)
                    active_full = job.weekly_full and day > 0 and when.weekday() == 6
                    take_backup(work, job.name, machine.name, paths, method=job.method,
                                active_full=active_full, keep=job.keep,
                                block_size=BLOCK_SIZE, compression=COMPRESSION, at=when)
                    points += 1
                if not quiet:
                    print(f"  {job.name}/{machine.name}: {days} points", flush=True)
        summary["points_taken"] = points
        (work / ".built").write_text(json.dumps(summary, indent=1) + "\n")
        if final.exists():
            shutil.rmtree(final)
        work.rename(final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if not quiet:
        size = sum(p.stat().st_size for p in final.rglob("*")
                   if p.is_file() and ".disks" not in p.parts)
        print(f"built {final} in {time.perf_counter() - started:.1f}s: {points} points, "
              f"{size / MiB:.1f} MiB of backup files")
    return summary


# copy jobs that get a session "yesterday" (file name, start time yesterday)
HISTORY_JOBS = (("dr-copy.toml", 23, 0), ("offsite-gfs.toml", 23, 30))
HISTORY_MARK = ".sample-history"


def make_history(jobs_dir: Path, now: datetime | None = None, *, quiet: bool = False) -> Path:
    """Run the HISTORY_JOBS of `jobs_dir` once each, yesterday evening; returns the mark
    file written into the target's `.ferry/` when they are done."""
    from engine.copy.runner import run_job
    from engine.history import history_path
    from engine.jobs.load import load_job

    day = (now or datetime.now()).date() - timedelta(days=1)
    mark = None
    for name, hour, minute in HISTORY_JOBS:
        spec = load_job(Path(jobs_dir) / name)
        res = run_job(spec, at=datetime.combine(day, datetime.min.time()).replace(
            hour=hour, minute=minute))
        if not quiet:
            print(f"  {spec.name}: ran {day} {hour:02d}:{minute:02d}: {res.status}", flush=True)
        mark = history_path(spec).parent / HISTORY_MARK
    assert mark is not None
    mark.write_text(f"{day}\n")
    return mark


def install(out: Path, *, quiet: bool = False) -> Path:
    """The samples in `out` for an installed Ferry (`ferry samples`): the job files copied
    to `out/jobs`, `out/primary` built and the copy jobs' past run, each once (a second
    call finds them); returns the jobs folder to open."""
    out = Path(out)
    jobs = out / "jobs"
    if out.resolve() != ROOT.resolve():
        jobs.mkdir(parents=True, exist_ok=True)
        for job in sorted((ROOT / "jobs").glob("*.toml")):
            if not (jobs / job.name).exists():  # the admin's edits of a sample stay
                shutil.copyfile(job, jobs / job.name)
    if not (out / "primary" / ".built").is_file():
        build(out, quiet=quiet)
    if not (out / "dr" / ".ferry" / HISTORY_MARK).is_file():
        make_history(jobs, quiet=quiet)
    return jobs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the sample source repository.")
    ap.add_argument("--out", type=Path, default=ROOT,
                    help="folder that receives primary/ (default: sample_repos)")
    ap.add_argument("--days", type=int, default=DAYS, help="daily points per machine")
    ap.add_argument("--force", action="store_true", help="rebuild even if already built")
    ap.add_argument("--history", action="store_true",
                    help="then run the sample copy jobs once, as if yesterday evening")
    ap.add_argument("--jobs", type=Path, default=ROOT / "jobs",
                    help="job files for --history (default: sample_repos/jobs)")
    args = ap.parse_args(argv)
    if args.days < 1:
        print("generate.py: --days must be at least 1", file=sys.stderr)
        return 2
    if (args.out / "primary" / ".built").is_file() and not args.force:
        print(f"{args.out / 'primary'} is already built (use --force to rebuild)")
    else:
        build(args.out, args.days)
    if args.history:
        make_history(args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
