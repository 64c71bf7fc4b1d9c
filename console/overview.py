"""The rows of the job overview, computed from the store (no Textual here).

A row per job (state, last result and when, next run, RPO, points behind the
source, target size) followed by a row per machine (its last result and the
reason). `Health` says how a row is coloured: the worst thing about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from console import format as fmt
from console.records import MachineInfo
from console.run_model import TaskState
from console.store import Health, JobStateKind, Store, status_health, worst
from engine import rpo as rpo_mod
from engine.model import Status


class SortKey(StrEnum):
    """Columns the overview sorts by (`o` cycles through them)."""

    NAME = "name"
    HEALTH = "health"
    LAST = "last run"
    BEHIND = "behind"
    SIZE = "size"


@dataclass(frozen=True)
class OverviewRow:
    """One line of the overview: a job or one of its machines."""

    key: str  # row key: the job key, or job key + "\0" + machine
    job_key: str
    machine: str  # "" for a job row
    name: str
    state: str
    last: str
    when: str
    next_run: str
    rpo: str
    behind: str
    size: str
    reason: str
    health: Health
    sort_last: float = 0.0
    sort_behind: int = 0
    sort_size: int = 0

    @property
    def is_job(self) -> bool:
        return not self.machine


def machine_row_key(job_key: str, machine: str) -> str:
    return f"{job_key}\0{machine}"


def _status_text(status: Status | None) -> str:
    return str(status) if status is not None else "never"


def job_rpo(store: Store, key: str, now: datetime) -> rpo_mod.RpoCheck:
    """The job's RPO verdict from the chains in the store (`engine.rpo`'s rule)."""
    entry = store.jobs.get(key)
    if entry is None or entry.spec is None or entry.spec.schedule.rpo is None:
        return rpo_mod.RpoCheck(None)
    newest: dict[str, datetime | None] = {}
    for info in store.machines.get(key, []):
        copy = info.newest_copy
        if copy is not None:
            newest[info.name] = max(p.time for p in info.target_points)
        elif info.source_points:
            newest[info.name] = None
    return rpo_mod.check(entry.spec.schedule.rpo, newest, now)


def _rpo_cell(verdict: rpo_mod.RpoCheck) -> str:
    return "-" if not verdict.enabled else verdict.short


def job_rows(store: Store, key: str, now: datetime) -> list[OverviewRow]:
    """The job's row and, after it, its machines' rows."""
    entry = store.jobs[key]
    state = store.state_of(key)
    session = store.sessions.get(key)
    if entry.spec is None:
        return [OverviewRow(key, key, "", entry.name, "Invalid", "-", "-", "-", "-", "-", "-",
                            entry.error, Health.FAILED)]
    machines = store.machines.get(key, [])
    last = store.last_runs.get(key)
    status = store.last_status(key)
    state_text = state.label
    if state.state in (JobStateKind.RUNNING, JobStateKind.ON_HOLD) and session is not None:
        state_text = f"{state.state} {fmt.percent(session.model.fraction()).strip()}"
    health = status_health(status)
    if state.state == JobStateKind.RUNNING:
        health = worst(health, Health.RUNNING)
    elif state.state == JobStateKind.ON_HOLD:
        health = worst(health, Health.WARNING)
    behind = sum(m.behind for m in machines)
    size = sum(m.target_size for m in machines)
    ended = last.session.ended if last is not None else None
    if session is not None and not session.active and session.model.finished_at is not None:
        when = "just now"
    else:
        when = fmt.ago(ended, now)
    error = store.machine_errors.get(key, "")
    verdict = job_rpo(store, key, now)
    reason = error or (last.session.message if last is not None else "")
    if verdict.late:
        health = worst(health, Health.WARNING)
        reason = "; ".join(r for r in (verdict.summary, reason) if r)
    upcoming = store.next_runs.get(key)
    name = f"{entry.name} \N{LOCK}" if entry.spec.storage.encryption else entry.name
    rows = [OverviewRow(
        key, key, "", name, state_text, _status_text(status), when,
        fmt.ago(upcoming, now) if upcoming else ("off" if not entry.spec.enabled else "-"),
        _rpo_cell(verdict), str(behind) if machines else "-",
        fmt.size(size) if machines else "-", reason,
        worst(health, Health.FAILED) if error else health,
        sort_last=ended.timestamp() if ended else 0.0, sort_behind=behind, sort_size=size)]
    late = {m.machine: m for m in verdict.late}
    for info in machines:
        rpo, why = "", ""
        if verdict.enabled:
            rpo = "late" if info.name in late else "ok"
            if info.name in late:
                m = late[info.name]
                why = (f"no copy yet (RPO {rpo_mod.human_age(verdict.rpo_s or 0)})"
                       if m.age_s is None else
                       f"newest copy {rpo_mod.human_age(m.age_s)} old "
                       f"(RPO {rpo_mod.human_age(verdict.rpo_s or 0)})")
        rows.append(_machine_row(store, key, info, now, rpo, why))
    return rows


def _machine_row(store: Store, key: str, info: MachineInfo, now: datetime,
                 rpo: str = "", rpo_why: str = "") -> OverviewRow:
    last = store.last_runs.get(key)
    task = last.task(info.name) if last is not None else None
    session = store.sessions.get(key)
    live = session.model.rows.get(info.name) if session is not None and session.active else None
    status = task.status if task is not None else None
    state = ""
    health = status_health(status)
    if live is not None:
        state = live.state_text
        if live.state == TaskState.ON_HOLD:
            health = worst(health, Health.WARNING)
        elif live.state == TaskState.RUNNING:
            health = worst(health, Health.RUNNING)
    reason = info.error or (task.message if task is not None else "")
    if info.error:
        health = Health.FAILED
    elif rpo == "late":
        health = worst(health, Health.WARNING)
        reason = "; ".join(r for r in (rpo_why, reason) if r)
    newest = info.newest_copy
    return OverviewRow(
        machine_row_key(key, info.name), key, info.name, info.name, state,
        _status_text(status) if task is not None else "-",
        f"copy {fmt.ago(newest.time, now)}" if newest is not None else "no copy", "", rpo,
        str(info.behind), fmt.size(info.target_size), reason, health,
        sort_behind=info.behind, sort_size=info.target_size)


def overview_rows(store: Store, now: datetime, sort: SortKey = SortKey.NAME,
                  reverse: bool = False, collapsed: frozenset[str] = frozenset(),
                  filter_text: str = "") -> list[OverviewRow]:
    """Every row in display order: jobs sorted by `sort`, machines under their job.

    A filter keeps jobs whose name matches and, of other jobs, the machines that
    match (shown even when their job is collapsed).
    """
    groups = [job_rows(store, key, now) for key in store.job_keys()]
    order = {
        SortKey.NAME: lambda g: (g[0].name.lower(),),
        SortKey.HEALTH: lambda g: (-g[0].health.rank, g[0].name.lower()),
        SortKey.LAST: lambda g: (-g[0].sort_last, g[0].name.lower()),
        SortKey.BEHIND: lambda g: (-g[0].sort_behind, g[0].name.lower()),
        SortKey.SIZE: lambda g: (-g[0].sort_size, g[0].name.lower()),
    }[sort]
    groups.sort(key=order, reverse=reverse)
    text = filter_text.strip().lower()
    out: list[OverviewRow] = []
    for group in groups:
        job, machines = group[0], group[1:]
        if text and text not in job.name.lower():
            hits = [m for m in machines if text in m.name.lower()]
            if hits:
                out.append(job)
                out.extend(hits)
            continue
        out.append(job)
        if job.job_key not in collapsed:
            out.extend(machines)
    return out
