"""`ferry preview`: the job's retention replayed day by day (engine.simulate)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol

from rich.console import Console

from engine.jsonout import emit
from engine.model import Kind, RetentionPolicy
from engine.objstore.open import target_repository
from engine.preview_render import preview_json, render_preview
from engine.repository.repository import Repository
from engine.schedule import ScheduleSpec, next_run
from engine.simulate import PreviewDay, PreviewResult, Sizing, simulate, sizing_from_model
from engine.units import now as wall_now


class SourceTable(Protocol):
    """`[source]` of a job (engine.jobs.schema.Source)."""

    @property
    def repository(self) -> Path: ...
    @property
    def jobs(self) -> Sequence[str]: ...


class TargetTable(Protocol):
    """`[target]` of a job (engine.jobs.schema.Target)."""

    @property
    def repository(self) -> Path: ...
    @property
    def s3(self) -> Any: ...
    @property
    def mover(self) -> str | None: ...


class PreviewJob(Protocol):
    """What a preview reads of a job (a JobSpec; read-only, so frozen specs fit)."""

    @property
    def name(self) -> str: ...
    @property
    def mode(self) -> str: ...
    @property
    def source(self) -> SourceTable: ...
    @property
    def target(self) -> TargetTable: ...
    @property
    def retention(self) -> RetentionPolicy: ...
    @property
    def schedule(self) -> ScheduleSpec: ...


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


def sizing_from_repositories(spec: PreviewJob) -> Sizing | None:
    """The job's size per run from its real chains (target, else source): for each
    machine the average full and increment, summed over the machines."""
    for repo, jobs in ((target_repository(spec), [spec.name]),
                       (Repository(spec.source.repository), list(spec.source.jobs))):
        full = inc = 0
        for job in jobs:
            for j, m in repo.machines(job):
                try:
                    points = repo.load(j, m).points
                except Exception:  # noqa: BLE001 - a damaged chain just gives no sample
                    continue
                fulls = [p.size for p in points if p.kind == Kind.FULL]
                incs = [p.size for p in points if p.kind != Kind.FULL]
                if fulls:
                    full += sum(fulls) // len(fulls)
                    inc += sum(incs) // len(incs) if incs else sum(fulls) // len(fulls) // 10
        if full:
            return Sizing(full=full, incremental=inc)
    return None


def first_run(spec: PreviewJob, start: datetime | None) -> datetime:
    if start is not None:
        return start
    base = wall_now()
    if spec.mode == "periodic":
        return next_run(spec.schedule, base)
    return datetime.combine(base.date() + timedelta(days=1), time(22, 0))


@dataclass
class WhatIf:
    """What `ferry preview` and the console's what-if replay, on top of the job itself.

    `policy` replaces the job's retention (the console's form); `changes` apply a
    policy from a day on; `interval` replaces the job's schedule by a fixed step.
    """

    policy: RetentionPolicy | None = None
    start: datetime | None = None
    days: int | None = None
    sizing: Sizing | None = None
    interval: timedelta | None = None
    skip: frozenset[date] = frozenset()
    no_new_point: frozenset[date] = frozenset()
    changes: list[tuple[date, RetentionPolicy]] = field(default_factory=list)
    background: bool = False  # model the daemon's daily background retention pass (00:30)
    today: date | None = None  # for what the real chains keep (the console's clock)


def build_preview(spec: PreviewJob, what: WhatIf) -> PreviewResult:
    """The preview of a job: its schedule, its real chains' sizes, the what-if on top.

    The one code path behind `ferry preview` and the console's what-if screen.
    """
    policy = what.policy or spec.retention
    sizing = what.sizing or sizing_from_repositories(spec) or Sizing(0, 0)
    days = what.days or default_days(policy)
    skip, none_new = what.skip, what.no_new_point
    result = simulate(spec.name, policy, spec.mode, first_run(spec, what.start), days, sizing,
                      interval=what.interval, schedule=spec.schedule,
                      skip=(lambda t: t.date() in skip) if skip else None,
                      no_new_point=(lambda t: t.date() in none_new) if none_new else None,
                      changes=what.changes, background=what.background)
    if what.background:
        result.notes.append("background retention (ferry daemon) every day at 00:30: expired "
                            "GFS flags and the files they freed go even on days without a "
                            "run; it never merges")
    final = max(what.changes, key=lambda c: c[0])[1] if what.changes else policy
    result.notes.extend(real_chain_notes(spec, final, what.today))
    if spec.target.mover:
        result.notes.append(f"the target is reached through the mover {spec.target.mover}: "
                            "its own floor (ferry mover --min-points, --immutable-days) may "
                            "keep points longer than this preview of the job's policy "
                            "shows; on the mover host `ferry chain --repo DIR --json` shows "
                            "each point's immutable_until")
    policies = [policy, *(p for _, p in what.changes)]
    if any(p.immutable_days > 0 for p in policies):
        # the same what-if without immutability: the difference is what it costs
        plain = simulate(spec.name, replace(policy, immutable_days=0), spec.mode,
                         first_run(spec, what.start), days, sizing, interval=what.interval,
                         schedule=spec.schedule,
                         skip=(lambda t: t.date() in skip) if skip else None,
                         no_new_point=(lambda t: t.date() in none_new) if none_new else None,
                         changes=[(d, replace(p, immutable_days=0)) for d, p in what.changes],
                         background=what.background)
        result.immutability = immutability_cost(result, plain,
                                                max(p.immutable_days for p in policies))
    return result


def immutability_cost(with_: PreviewResult, without: PreviewResult, days: int) -> dict[str, Any]:
    """`ferry preview --json`'s "immutability": the worst and the last day with the job's
    immutability and without it (same calendar, sizes and what-if); `extra_*` is the
    difference in space to provision (points + work space)."""
    def day(d: PreviewDay) -> dict[str, Any]:
        return {"date": d.date.isoformat(), "points": len(d.points),
                "total_size": d.total_size, "work_space": d.work_space}

    def need(d: PreviewDay) -> int:
        return d.total_size + d.work_space

    return {"immutable_days": days,
            "worst_day": day(with_.worst_day), "worst_day_without": day(without.worst_day),
            "last_day": day(with_.days[-1]), "last_day_without": day(without.days[-1]),
            "extra_worst_day": need(with_.worst_day) - need(without.worst_day),
            "extra_last_day": need(with_.days[-1]) - need(without.days[-1])}


def real_chain_notes(spec: PreviewJob, policy: RetentionPolicy, today: date | None = None) -> list[str]:
    """What the job's real target chains keep that `policy` no longer makes: for each GFS
    cycle switched off, "3 weekly fulls stay until 2026-03-01" over all machines."""
    from engine.retention import points_from_chain
    from engine.retention_why import kept_after_switch_off, switched_off_text

    today = today or wall_now().date()
    repo = target_repository(spec)
    total: dict[str, tuple[int, date]] = {}
    for j, m in repo.machines(spec.name):
        try:
            views = points_from_chain(repo.load(j, m).points)
        except Exception:  # noqa: BLE001 - a damaged chain is `ferry check`'s to report
            continue
        for flag, (n, until) in kept_after_switch_off(views, policy, today).items():
            had = total.get(flag, (0, until))
            total[flag] = (had[0] + n, max(had[1], until))
    return [f"real chains: {line}" for line in switched_off_text(total)]


def run_preview(args: argparse.Namespace, spec: PreviewJob) -> int:
    sizing = (sizing_from_model(args.used, args.change, args.reduction)
              if args.used is not None else None)
    changes: list[tuple[date, RetentionPolicy]] = []
    for when, path in args.policy_from or []:
        from engine.jobs.load import load_job

        changes.append((parse_dates_one(when), load_job(Path(path)).retention))
    what = WhatIf(start=args.start, days=args.days, sizing=sizing,
                  interval=timedelta(seconds=args.interval) if args.interval else None,
                  skip=args.skip or frozenset(), no_new_point=args.no_new_point or frozenset(),
                  changes=changes, background=bool(getattr(args, "background", False)))
    result = build_preview(spec, what)
    if args.json:
        emit(preview_json(result))
    else:
        render_preview(result, Console())
    return 0


def parse_dates_one(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected a date like 2026-01-20, got {text!r}") from None
