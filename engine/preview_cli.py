"""`ferry preview`: the job's retention replayed day by day (engine.simulate)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from rich.console import Console

from engine.jsonout import emit
from engine.model import RetentionPolicy
from engine.objstore.open import target_repository
from engine.preview_render import preview_json, render_preview
from engine.repository.repository import Repository
from engine.schedule import next_run
from engine.simulate import Sizing, simulate, sizing_from_model
from engine.units import now as wall_now


def default_days(policy: RetentionPolicy) -> int:
    """Long enough to see the longest GFS cycle turn over (RPS-like horizon)."""
    days = policy.keep + 14
    g = policy.gfs
    if g and g.enabled:
        if g.weekly:
            days = max(days, 7 * g.weekly.keep + 14)
        if g.monthly:
            days = max(days, 31 * g.monthly.keep + 31)
        if g.yearly:
            days = max(days, 366 * g.yearly.keep + 31)
    return days


def sizing_from_repositories(spec) -> Sizing | None:
    """The job's size per run from its real chains (target, else source): for each
    machine the average full and increment, summed over the machines."""
    for repo, jobs in ((target_repository(spec), [spec.name]),
                       (Repository(spec.source_repository), list(spec.source_jobs))):
        full = inc = 0
        for job in jobs:
            for j, m in repo.machines(job):
                try:
                    points = repo.load(j, m).points
                except Exception:  # noqa: BLE001 - a damaged chain just gives no sample
                    continue
                fulls = [p.size for p in points if p.kind.value == "full"]
                incs = [p.size for p in points if p.kind.value != "full"]
                if fulls:
                    full += sum(fulls) // len(fulls)
                    inc += sum(incs) // len(incs) if incs else sum(fulls) // len(fulls) // 10
        if full:
            return Sizing(full=full, incremental=inc)
    return None


def first_run(spec, start: datetime | None) -> datetime:
    if start is not None:
        return start
    base = wall_now()
    if spec.mode == "periodic":
        return next_run(spec.schedule, base)
    return datetime.combine(base.date() + timedelta(days=1), time(22, 0))


def run_preview(args, spec) -> int:
    if args.used is not None:
        sizing = sizing_from_model(args.used, args.change, args.reduction)
    else:
        sizing = sizing_from_repositories(spec) or Sizing(0, 0)
    days = args.days or default_days(spec.retention)
    result = simulate(spec.name, spec.retention, spec.mode, first_run(spec, args.start), days,
                      sizing, interval=timedelta(seconds=args.interval))
    if args.json:
        emit(preview_json(result))
    else:
        render_preview(result, Console())
    return 0
