"""The job spec: every setting of a job file, declared once (CONTRACT "Job files (TOML)").

`JobSpec` and its tables are frozen dataclasses; each field that is a TOML key is a
`setting` with the function reading its value (type, range, normal form: lower case,
"HH:MM", seconds, bytes) and the one writing it back, so a spec saved and loaded again
is equal. `engine.jobs.load` checks a file against these classes (`fields.check`) and
adds the rules that span tables or need the file system; `engine.jobs.save` writes
`fields.dump(spec)`. Three tables become the engine types their code takes:
`[retention]` a `RetentionPolicy`, `[schedule]` a `ScheduleSpec`, `[inventory]` an
`InventorySettings` (defaults filled), each mapping beside its table.

Checks are strict (no "7" -> 7 coercion) and unknown keys are errors, so a typo is
refused instead of silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import time
from pathlib import Path
from typing import Any, ClassVar

from engine import schedule as sched
from engine.inventory.base import DEFAULT_PORTS, DEFAULT_PROTOCOLS, KINDS, InventorySettings
from engine.jobs.fields import Table, describe, flag, integer, setting, subtable, text, texts
from engine.model import GfsCycle, GfsPolicy, RetentionPolicy
from engine.objstore.location import S3Location
from engine.password import PasswordSource, SourceKind
from engine.repository.names import BadName, safe_name
from engine.schedule import ScheduleSpec
from engine.units import (
    MONTH_WEEKS,
    WEEKDAY_NAMES,
    WEEKDAYS,
    fmt_span,
    month_number,
    parse_duration,
    parse_rate,
    weekday_index,
)
from engine.units import MONTHS as MONTH_NAMES

MODES = ("periodic", "immediate")
UNITS = ("points", "days")
COMPRESSION = ("none", "dedupe-friendly", "optimal", "high", "extreme", "auto")
GFS_METHODS = ("synthetic", "active")
PROTOCOLS = ("https", "http")
DEFAULT_INVENTORY_TIMEOUT = 30.0
MAX_PARALLEL_TASKS = 64
# Bounds of the numbers a job file may hold (docs/ARCHITECTURE.md "Job-file bounds"):
# what an admin could mean, with room; beyond them a value is a typo, and would
# overflow date arithmetic or make a preview run for minutes.
MAX_KEEP = 9999                      # short-term points, or days (27 years of dailies)
MAX_KEEP_WEEKS = 5200                # 100 years
MAX_KEEP_MONTHS = 1200               # 100 years
MAX_KEEP_YEARS = 100
MAX_DAYS = 36500                     # deleted_items_days, immutable_days: 100 years
MAX_RETRIES = 100
MAX_RETRY_WAIT = 86400.0             # 24h between two tries of a machine
MAX_RATE = 1024**4                   # 1 TiB/s: beyond any link; "0" means no limit
MAX_INVENTORY_TIMEOUT = 3600.0
MAX_RPO = 366 * 86400.0
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NO_PASSWORD = ("passwords never go in the job file: put it in an environment variable "
                'and name that variable with password_env = "FERRY_PASSWORD"')


# -------------------------------------------------------------------------------------
# Value checks. Each raises ValueError with the message shown after "key: ".


def _one_of(*choices: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        key = value.strip().lower()
        if key not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return key
    return check


def _limited(low: int, high: int, what: str) -> Callable[[int], int]:
    """A number in [low, high], the side that was crossed in the message ("at most 100")."""
    def check(value: int) -> int:
        if value < low:
            raise ValueError(f"{what} must be at least {low}, got {value}")
        if value > high:
            raise ValueError(f"{what} must be at most {high}, got {value}")
        return value
    return check


def _between(low: int, high: int, what: str) -> Callable[[int], int]:
    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"{what} must be between {low} and {high}, got {value}")
        return value
    return check


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _env_name(value: str) -> str:
    if not _ENV_NAME_RE.match(value):
        raise ValueError(f"expected an environment variable name like FERRY_PASSWORD, got {value!r}")
    return value


def _weekday_full(value: str) -> str:
    return WEEKDAY_NAMES[weekday_index(value)]


def _month(value: str) -> str:
    return MONTH_NAMES[month_number(value) - 1]


def _daily_at(value: Any) -> str:
    """"22:00"; an unquoted TOML time (22:00) is accepted too."""
    if isinstance(value, time) and not value.second and not value.microsecond:
        return sched.fmt_hhmm(value.hour * 60 + value.minute)
    if not isinstance(value, str):
        raise ValueError(f'expected a time of day like "22:00", got {describe(value)}')
    return sched.fmt_hhmm(sched.parse_hhmm(value))


def _duration(value: Any) -> float:
    """"10m", "1h30m", or a number of seconds."""
    bad = f'expected a duration like "10m" or "4h", got {describe(value)}'
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(bad)
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise ValueError(bad) from None
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError(f"expected a finite duration, got {describe(value)}")
    if seconds < 0:
        raise ValueError(f"must not be negative, got {describe(value)}")
    return seconds


def _duration_up_to(maximum: float, shown: str, *, positive: bool = False) -> Callable[[Any], float]:
    """A duration of at most `maximum` seconds (`shown` as the user would write it)."""
    def check(value: Any) -> float:
        seconds = _duration(value)
        if positive and seconds <= 0:
            raise ValueError(f"must be more than 0, got {describe(value)}")
        if seconds > maximum:
            raise ValueError(f"must be at most {shown}, got {describe(value)}")
        return seconds
    return check


def _every(value: Any) -> float:
    seconds = _duration(value)
    if not 60 <= seconds <= 86400:
        raise ValueError(f"every must be between 1m and 24h, got {describe(value)}")
    return seconds


def _rpo(value: Any) -> float | None:
    """"26h" (RPO monitor: Warning when the newest copied point is older), "off" or "0"."""
    if isinstance(value, str) and value.strip().lower() == "off":
        return None
    seconds = _duration(value)
    if seconds == 0:
        return None
    if not 60 <= seconds <= MAX_RPO:
        raise ValueError(f'rpo must be between 1m and 366d (or "off"), got {describe(value)}')
    return seconds


def duration_text(seconds: float) -> str | float:
    """How a duration is written: "10m", "1h30m"; a value not whole milliseconds stays a number."""
    if abs(round(seconds * 1000) - seconds * 1000) > 1e-6:
        return float(seconds)
    return fmt_span(seconds)


def _rate(value: Any) -> int:
    """"50MiB/s", "0" or a number of bytes per second -> bytes per second (<= 1 TiB/s)."""
    bad = (f'expected a rate like "50MiB/s" or "100Mbit/s" (or "0" for no limit), '
           f'got {describe(value)}')
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(bad)
    try:
        rate = value if isinstance(value, int) else parse_rate(value)
    except (ValueError, OverflowError):
        raise ValueError(bad) from None
    if rate < 0:
        raise ValueError(bad)
    if rate > MAX_RATE:
        raise ValueError(f'must be at most 1TiB/s (or "0" for no limit), got {describe(value)}')
    return rate


def rate_text(rate: int) -> str:
    """How a rate is written: "0", "50MiB/s", or bytes "1000/s"."""
    if rate == 0:
        return "0"
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if rate % size == 0:
            return f"{rate // size}{unit}/s"
    return f"{rate}/s"


def _slot(value: str) -> str:
    """"off" or a slot such as "last sunday 05:00", normalized."""
    slot = sched.parse_health_check(value)
    return "off" if slot is None else str(slot)


def _weekday_list(value: list[str]) -> list[str]:
    picked = {weekday_index(d) for d in value}
    return [WEEKDAYS[i] for i in sorted(picked)]


def _window_list(value: Any) -> list[str]:
    """["20:00-06:00"] (every day) or {mon = ["20:00-06:00"], sat = [...]} -> normal form:
    a list of "HH:MM-HH:MM", each prefixed by its weekday when given per day."""
    if isinstance(value, dict):
        out = []
        for day, windows in value.items():
            index = weekday_index(str(day))
            if not isinstance(windows, list) or not all(isinstance(w, str) for w in windows):
                raise ValueError(f'{day}: expected a list of windows like ["20:00-06:00"]')
            out += [sched.fmt_day_window(index, *sched.parse_window(w)) for w in windows]
        if not out:
            raise ValueError("the copy window is never open (give at least one window)")
        return out
    if not isinstance(value, list) or not all(isinstance(w, str) for w in value):
        raise ValueError('expected a list like ["20:00-06:00"] or a table of weekdays '
                         '{ mon = ["20:00-06:00"] }')
    return [sched.fmt_day_window(*sched.parse_day_window(w)) for w in value]


def window_value(window: list[str]) -> list[str] | dict[str, list[str]]:
    """How a normalized window list is written: a list, or a table of weekdays."""
    if not any(" " in w for w in window):
        return list(window)
    table: dict[str, list[str]] = {}
    for w in window:  # a table is per weekday, so an every-day window goes on each day
        day, _, hours = w.rpartition(" ")
        for d in [day] if day else list(WEEKDAYS):
            table.setdefault(d, []).append(hours)
    return {d: table[d] for d in WEEKDAYS if d in table}


def _names(what: str, *, required: bool) -> Callable[[list[str]], list[str]]:
    """Job or machine names: each a usable folder name (the repository's own rule,
    `safe_name`: no `..`, separator, control character, or more than 200 bytes), none
    listed twice."""
    def check(value: list[str]) -> list[str]:
        if required and not value:
            raise ValueError("must list at least one name")
        for i, item in enumerate(value, 1):
            if not item.strip():
                raise ValueError(f"item {i} is empty")
            try:
                safe_name(item, what)
            except BadName as exc:
                raise ValueError(f"item {i}: {exc}") from None
        if len(set(value)) != len(value):
            dup = next(x for x in value if value.count(x) > 1)
            raise ValueError(f"{dup!r} is listed twice")
        return value
    return check


def _endpoint(value: str) -> str:
    if not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", value):
        raise ValueError(f"expected http(s)://host[:port], got {value!r}")
    return value


def _mover(value: str) -> str:
    from engine.copy.links import parse_mover  # the transport code only for mover jobs

    parse_mover(value)
    return value


def _fingerprint(value: str) -> str:
    if not re.fullmatch(r"sha256:[0-9a-f]{64}", value):
        raise ValueError("expected sha256:<64 hex digits> (printed by ferry mover init)")
    return value


def _path(value: Any) -> Path:
    """A path as written; `engine.jobs.load` resolves it against the job file's folder."""
    return Path(text(_non_empty)(value))


_name = text(_non_empty)
_env = text(_env_name)


# -------------------------------------------------------------------------------------
# The tables.


@dataclass(frozen=True, kw_only=True)
class Source(Table):
    repository: Path = setting(parse=_path)  # absolute once loaded
    jobs: list[str] = setting(parse=texts(_names("job name", required=True)))
    machines: list[str] = setting([], parse=texts(_names("machine name", required=False)))


@dataclass(frozen=True, kw_only=True)
class Target(Table):
    """A folder, or "s3://bucket/prefix" (then `repository` is the local state folder and
    `s3` the bucket), optionally reached through a `ferry mover` (`mover`)."""

    repository: Path = setting(parse=_path)
    # "tls://host:port" (with fingerprint and token_env), "ssh://user@host[:port]/abs/repo",
    # or "host:port" on loopback only
    mover: str | None = setting(None, parse=text(_mover))
    fingerprint: str | None = setting(None, parse=text(_fingerprint))  # tls:// only
    token_env: str | None = setting(None, parse=_env)  # tls:// only: the job token's variable
    # object storage only: endpoint URL (default $AWS_ENDPOINT_URL), region, and the
    # names of the variables holding the keys (default AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)
    endpoint: str | None = setting(None, parse=text(_endpoint))
    region: str | None = setting(None, parse=_name)
    access_key_env: str | None = setting(None, parse=_env)
    secret_key_env: str | None = setting(None, parse=_env)
    s3: S3Location | None = None  # not a key: the bucket, from repository and the options

    def s3_options(self) -> dict[str, str | None]:
        return {"endpoint": self.endpoint, "region": self.region,
                "access_key_env": self.access_key_env, "secret_key_env": self.secret_key_env}

    def problem(self) -> str | None:
        tls = bool(self.mover and self.mover.startswith("tls://"))
        if tls and (self.fingerprint is None or self.token_env is None):
            return "a tls:// mover needs fingerprint and token_env"
        if not tls and (self.fingerprint is not None or self.token_env is not None):
            return "fingerprint and token_env are for a tls:// mover only"
        return None


@dataclass(frozen=True, kw_only=True)
class Schedule(Table):
    """`[schedule]`; the spec holds it as a `ScheduleSpec` (`engine.schedule`)."""

    daily_at: str | None = setting(None, parse=_daily_at)
    every: float | None = setting(None, parse=_every, dump=duration_text)
    days: list[str] = setting([], parse=texts(_weekday_list), quiet=True)
    window: list[str] = setting([], parse=_window_list, dump=window_value, quiet=True)
    rpo: float | None = setting(None, parse=_rpo, dump=duration_text)

    def spec(self) -> ScheduleSpec:
        """As given; `engine.jobs.load` fills daily_at by mode (22:00, or none)."""
        return ScheduleSpec(daily_at=self.daily_at, every=self.every, days=list(self.days),
                            window=list(self.window), rpo=self.rpo)

    @classmethod
    def of(cls, s: ScheduleSpec) -> Schedule:
        return cls(daily_at=s.daily_at if s.every is None else None, every=s.every,
                   days=list(s.days), window=list(s.window), rpo=s.rpo)


@dataclass(frozen=True, kw_only=True)
class GfsWeekly(Table):
    keep_weeks: int = setting(parse=integer(_limited(1, MAX_KEEP_WEEKS, "keep_weeks")))
    day: str = setting(parse=text(_weekday_full), missing='weekly GFS needs a day, e.g. day = "sunday"')


@dataclass(frozen=True, kw_only=True)
class GfsMonthly(Table):
    keep_months: int = setting(parse=integer(_limited(1, MAX_KEEP_MONTHS, "keep_months")))
    week: str = setting(parse=text(_one_of(*MONTH_WEEKS)),
                        missing="monthly GFS needs a week: first|second|third|fourth|last")


@dataclass(frozen=True, kw_only=True)
class GfsYearly(Table):
    keep_years: int = setting(parse=integer(_limited(1, MAX_KEEP_YEARS, "keep_years")))
    month: str = setting(parse=text(_month), missing='yearly GFS needs a month, e.g. month = "january"')


@dataclass(frozen=True, kw_only=True)
class Gfs(Table):
    weekly: GfsWeekly | None = subtable(GfsWeekly, None)
    monthly: GfsMonthly | None = subtable(GfsMonthly, None)
    yearly: GfsYearly | None = subtable(GfsYearly, None)
    method: str = setting("synthetic", parse=text(_one_of(*GFS_METHODS)))


@dataclass(frozen=True, kw_only=True)
class Retention(Table):
    """`[retention]`; the spec holds it as the `RetentionPolicy` the pure rules take."""

    keep: int = setting(7, parse=integer(_limited(2, MAX_KEEP, "keep")))
    unit: str = setting("points", parse=text(_one_of(*UNITS)))
    deleted_items_days: int = setting(30, parse=integer(_limited(1, MAX_DAYS, "deleted_items_days")))
    # days mode: points always kept (research notes section 5)
    min_points: int = setting(3, parse=integer(_between(1, 10_000, "min_points")), quiet=True)
    gfs: Gfs | None = subtable(Gfs, None)

    def policy(self) -> RetentionPolicy:
        """`immutable_days` is `[storage]`'s, set by `engine.jobs.load`."""
        g, gfs = self.gfs, None
        if g is not None:
            gfs = GfsPolicy(
                weekly=GfsCycle(g.weekly.keep_weeks, g.weekly.day) if g.weekly else None,
                monthly=GfsCycle(g.monthly.keep_months, g.monthly.week) if g.monthly else None,
                yearly=GfsCycle(g.yearly.keep_years, g.yearly.month) if g.yearly else None,
                method=g.method)
        return RetentionPolicy(keep=self.keep, unit=self.unit, gfs=gfs,
                               deleted_items_days=self.deleted_items_days,
                               min_points_days_mode=self.min_points)

    @classmethod
    def of(cls, p: RetentionPolicy) -> Retention:
        g, gfs = p.gfs, None
        if g is not None:
            gfs = Gfs(
                weekly=GfsWeekly(keep_weeks=g.weekly.keep, day=g.weekly.at) if g.weekly else None,
                monthly=GfsMonthly(keep_months=g.monthly.keep, week=g.monthly.at) if g.monthly else None,
                yearly=GfsYearly(keep_years=g.yearly.keep, month=g.yearly.at) if g.yearly else None,
                method=g.method)
        return cls(keep=p.keep, unit=p.unit, deleted_items_days=p.deleted_items_days,
                   min_points=p.min_points_days_mode, gfs=gfs)


@dataclass(frozen=True, kw_only=True)
class Storage(Table):
    """`[storage]`: compression level, maintenance slots ("off" or e.g. "last sunday
    05:00"), immutability and encryption. The password comes from exactly one of the
    three sources, never from the file; a source may stay after encryption is switched
    off, for reading the older encrypted points (engine/keys.py)."""

    REFUSED: ClassVar[dict[str, str]] = {"password": _NO_PASSWORD}

    compression: str = setting("auto", parse=text(_one_of(*COMPRESSION)))
    health_check: str = setting("off", parse=text(_slot))
    compact: str = setting("off", parse=text(_slot))
    # 0 = off; object storage: S3 Object Lock COMPLIANCE
    immutable_days: int = setting(0, parse=integer(_between(0, MAX_DAYS, "immutable_days")), quiet=True)
    encryption: bool = setting(False, parse=flag, quiet=True)
    password_env: str | None = setting(None, parse=_env)
    password_file: Path | None = setting(None, parse=_path)  # absolute once loaded
    password_command: str | None = setting(None, parse=_name)

    @property
    def password_source(self) -> PasswordSource | None:
        """Where the job's encryption password comes from (None: no source given)."""
        if self.password_env:
            return PasswordSource(SourceKind.ENV, self.password_env)
        if self.password_file:
            return PasswordSource(SourceKind.FILE, str(self.password_file))
        if self.password_command:
            return PasswordSource(SourceKind.COMMAND, self.password_command)
        return None


@dataclass(frozen=True, kw_only=True)
class Transport(Table):
    """`[transport]`; `rate_limit` in bytes per second (0 = none), `retry_wait` in seconds."""

    wan_acceleration: bool = setting(False, parse=flag)  # digest exchange + target cache
    parallel_tasks: int = setting(4, parse=integer(_between(1, MAX_PARALLEL_TASKS, "parallel_tasks")))
    rate_limit: int = setting(0, parse=_rate, dump=rate_text)
    retries: int = setting(3, parse=integer(_limited(0, MAX_RETRIES, "retries")))
    retry_wait: float = setting(600.0, parse=_duration_up_to(MAX_RETRY_WAIT, "24h"), dump=duration_text)


@dataclass(frozen=True, kw_only=True)
class Inventory(Table):
    """`[inventory]`; the spec holds it as the `InventorySettings` the backends take,
    defaults filled (port and protocol by kind, timeout)."""

    REFUSED: ClassVar[dict[str, str]] = {"password": _NO_PASSWORD}

    kind: str = setting(parse=text(_one_of(*KINDS)))
    host: str = setting(parse=_name)
    port: int | None = setting(None, parse=integer(_between(1, 65535, "port")))
    verify_tls: bool = setting(True, parse=flag)
    user: str | None = setting(None, parse=_name)
    password_env: str | None = setting(None, parse=_env)
    protocol: str | None = setting(None, parse=text(_one_of(*PROTOCOLS)))
    timeout: float | None = setting(
        None, parse=_duration_up_to(MAX_INVENTORY_TIMEOUT, "1h", positive=True), dump=duration_text)

    def settings(self) -> InventorySettings:
        protocol = self.protocol or DEFAULT_PROTOCOLS[self.kind]
        return InventorySettings(
            kind=self.kind, host=self.host, port=self.port or DEFAULT_PORTS[(self.kind, protocol)],
            verify_tls=self.verify_tls, user=self.user or "", password_env=self.password_env or "",
            timeout=self.timeout if self.timeout is not None else DEFAULT_INVENTORY_TIMEOUT,
            protocol=protocol)

    @classmethod
    def of(cls, s: InventorySettings) -> Inventory:
        return cls(kind=s.kind, host=s.host, port=s.port, verify_tls=s.verify_tls,
                   user=s.user or None, password_env=s.password_env or None,
                   protocol=s.protocol or None, timeout=s.timeout)


@dataclass(frozen=True, kw_only=True)
class JobSpec(Table):
    """A validated job: the whole file. Paths are absolute; `raw_paths` remembers how the
    file wrote them ("source.repository", "target.repository", "history",
    "storage.password_file" -> text) so that saving keeps relative paths relative.

    `schedule` of an immediate job has no daily_at/every (only its window matters).
    """

    path: Path  # the job file; not a key
    name: str = setting(parse=_name, missing='every job needs a name, e.g. name = "DR copy"')
    mode: str = setting("periodic", parse=text(_one_of(*MODES)))
    enabled: bool = setting(True, parse=flag)  # the daemon skips disabled jobs
    history: Path | None = setting(None, parse=_path)
    source: Source = subtable(Source, missing="required table [source] is missing")
    target: Target = subtable(Target, missing="required table [target] is missing")
    schedule: ScheduleSpec = subtable(Schedule, ScheduleSpec, into=Schedule.spec, back=Schedule.of)
    retention: RetentionPolicy = subtable(Retention, RetentionPolicy, into=Retention.policy,
                                          back=Retention.of)
    storage: Storage = subtable(Storage, Storage)
    transport: Transport = subtable(Transport, Transport)
    inventory: InventorySettings | None = subtable(Inventory, None, into=Inventory.settings,
                                                   back=Inventory.of)
    raw_paths: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


TABLES = ("source", "target", "schedule", "retention", "storage", "transport", "inventory")
PATH_KEYS = (("source", "repository"), ("target", "repository"), ("history",),
             ("storage", "password_file"))

__all__ = ["Inventory", "JobSpec", "Retention", "Schedule", "Source", "Storage", "Target",
           "Transport", "duration_text", "rate_text", "window_value"]
