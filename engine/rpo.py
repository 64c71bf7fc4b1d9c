"""The RPO monitor (`[schedule] rpo = "26h"`): is each machine's newest copy recent enough?

A job is past its RPO when one of its machines' newest copied restore point (its time
is the source point's time, i.e. the age of the data, not of the copy) is older than
`rpo`, or when a machine that has source points has no copy at all. The console's
overview, `ferry history`, `ferry sessions` and the daemon's log all call `check` /
`check_job`, so they say the same thing in the same words.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.units import fmt_span, rfc3339
from engine.units import now as wall_now

if TYPE_CHECKING:
    from engine.jobs.load import JobSpec

log = logging.getLogger("ferry.rpo")


def human_age(seconds: float) -> str:
    """3700 -> "1h 1m", 93600 -> "1d 2h", 50 -> "50s": the two largest units."""
    return fmt_span(seconds, 2, " ")


@dataclass(frozen=True)
class MachineRpo:
    """One machine's newest copy against the RPO."""

    machine: str
    newest: datetime | None  # time of its newest copied point; None = no copy yet
    age_s: float | None
    late: bool


@dataclass(frozen=True)
class RpoCheck:
    """The RPO verdict for one job (`rpo_s` None: no RPO set, nothing is ever late)."""

    rpo_s: float | None
    machines: list[MachineRpo] = field(default_factory=list)
    unknown: str = ""  # why the copies could not be read (then nothing is called late)

    @property
    def enabled(self) -> bool:
        return self.rpo_s is not None

    @property
    def late(self) -> list[MachineRpo]:
        return [m for m in self.machines if m.late]

    @property
    def ok(self) -> bool:
        return not self.late

    @property
    def oldest_age_s(self) -> float | None:
        ages = [m.age_s for m in self.machines if m.age_s is not None]
        return max(ages) if ages else None

    @property
    def short(self) -> str:
        """A table cell: "off", "ok", "late", "?"."""
        if self.rpo_s is None:
            return "off"
        if self.unknown:
            return "?"
        return "late" if self.late else "ok"

    def to_json(self, job: str) -> dict[str, Any]:
        """The RPO monitor in `--json` (history, sessions): stable keys."""
        return {"job": job, "rpo_s": self.rpo_s, "state": self.short, "summary": self.summary,
                "machines": [{"machine": m.machine, "newest": rfc3339(m.newest),
                              "age_s": m.age_s, "late": m.late} for m in self.machines]}

    @property
    def summary(self) -> str:
        """One line in human units, e.g. "RPO 1d 2h missed: web01 newest copy 1d 4h old"."""
        if self.rpo_s is None:
            return "no RPO set"
        rpo = human_age(self.rpo_s)
        if self.unknown:
            return f"RPO {rpo} not checked: {self.unknown}"
        late = self.late
        if not late:
            age = self.oldest_age_s
            return f"RPO {rpo} met" + (f" (oldest newest copy {human_age(age)} old)"
                                      if age is not None else "")
        words = [f"{m.machine} has no copy yet" if m.newest is None
                 else f"{m.machine} newest copy {human_age(m.age_s or 0)} old" for m in late[:3]]
        more = f" and {len(late) - 3} more" if len(late) > 3 else ""
        return f"RPO {rpo} missed: {', '.join(words)}{more}"


def check(rpo_s: float | None, newest: Mapping[str, datetime | None],
          now: datetime) -> RpoCheck:
    """Pure: the verdict for machines -> time of their newest copied point."""
    if rpo_s is None:
        return RpoCheck(None)
    out: list[MachineRpo] = []
    for machine in sorted(newest):
        when = newest[machine]
        if when is None:
            out.append(MachineRpo(machine, None, None, True))
            continue
        age = (_naive(now) - _naive(when)).total_seconds()
        out.append(MachineRpo(machine, when, age, age > rpo_s))
    return RpoCheck(rpo_s, out)


def _naive(when: datetime) -> datetime:
    """Engine times are naive local; an aware one (JSON, tests) is made so too."""
    return when.astimezone().replace(tzinfo=None) if when.tzinfo is not None else when


def newest_copies(spec: JobSpec) -> dict[str, datetime | None]:
    """machine -> time of its newest copied point, for every machine the job copies
    (a source machine without a copy maps to None). Reads metadata only."""
    from engine.objstore.open import target_repository
    from engine.repository.repository import Repository

    wanted = set(spec.source.machines)
    out: dict[str, datetime | None] = {}
    source = Repository(spec.source.repository)
    for job in spec.source.jobs:
        for job_dir, machine in source.machines(job):
            if wanted and machine not in wanted:
                continue
            meta = source.try_load(job_dir, machine)
            if meta is not None and meta.points:
                out.setdefault(machine, None)
    target = target_repository(spec)
    for _, machine in target.machines(spec.name):
        if wanted and machine not in wanted:
            continue
        meta = target.try_load(spec.name, machine)
        if meta is not None and meta.points:
            out[machine] = max(p.time for p in meta.points)
        elif machine in out:
            out[machine] = None
    return out


def check_job(spec: JobSpec, now: datetime | None = None) -> RpoCheck:
    """The verdict for a job file's spec; a target that cannot be read says why."""
    rpo_s = spec.schedule.rpo
    if rpo_s is None:
        return RpoCheck(None)
    if spec.target.mover:
        return RpoCheck(rpo_s, unknown="the target is behind a remote mover")
    try:
        newest = newest_copies(spec)
    except Exception as exc:  # noqa: BLE001 - a damaged chain must not hide the others
        from engine.errors import one_line

        return RpoCheck(rpo_s, unknown=one_line(exc))
    return check(rpo_s, newest, now or wall_now())


class RpoWatch:
    """Logs an RPO miss once when it starts and once when it ends (the daemon's log).

    Called on every daemon pass; remembering the last verdict per job keeps the log
    to the transitions an admin needs after the fact instead of one line per poll.
    """

    def __init__(self) -> None:
        self._late: dict[str, bool] = {}

    def observe(self, job: str, verdict: RpoCheck) -> str | None:
        """Log a transition; returns the line logged (None when nothing changed)."""
        if not verdict.enabled or verdict.unknown:
            return None
        late = not verdict.ok
        if self._late.get(job, False) == late:
            self._late[job] = late
            return None
        self._late[job] = late
        line = f"{job}: {verdict.summary}"
        log.log(logging.WARNING if late else logging.INFO, line)
        return line


__all__ = ["MachineRpo", "RpoCheck", "RpoWatch", "check", "check_job", "human_age",
           "newest_copies"]
