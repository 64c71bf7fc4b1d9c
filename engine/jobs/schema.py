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

from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from engine.inventory.base import (
    DEFAULT_PORTS,
    DEFAULT_PROTOCOLS,
    HYPERV_AUTHS,
    KINDS,
    InventorySettings,
)
from engine.jobs.fields import Table, flag, integer, setting, subtable, text, texts
from engine.jobs.values import (
    between,
    duration_text,
    duration_up_to,
    endpoint_url,
    env_var,
    every_duration,
    fingerprint_text,
    limited,
    month_name,
    mover_address,
    names,
    nonblank,
    one_of,
    path_value,
    rate,
    rate_text,
    rpo_duration,
    slot,
    time_of_day,
    weekday_full,
    weekday_list,
    window_list,
    window_value,
)
from engine.model import GfsCycle, GfsPolicy, RetentionPolicy
from engine.objstore.location import S3Location
from engine.password import PasswordSource, SourceKind
from engine.schedule import ScheduleSpec
from engine.units import (
    MONTH_WEEKS,
)

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
MAX_INVENTORY_TIMEOUT = 3600.0
_NO_PASSWORD = ("passwords never go in the job file: put it in an environment variable "
                'and name that variable with password_env = "FERRY_PASSWORD"')


# -------------------------------------------------------------------------------------
# The tables.


@dataclass(frozen=True, kw_only=True)
class Source(Table):
    """[source]: the repository and the source jobs whose chains are copied."""
    repository: Path = setting(parse=path_value)  # absolute once loaded
    jobs: list[str] = setting(parse=texts(names("job name", required=True)))
    machines: list[str] = setting([], parse=texts(names("machine name", required=False)))


@dataclass(frozen=True, kw_only=True)
class Target(Table):
    """A folder, or "s3://bucket/prefix" (then `repository` is the local state folder and
    `s3` the bucket), optionally reached through a `ferry mover` (`mover`)."""

    repository: Path = setting(parse=path_value)
    # "tls://host:port" (with fingerprint and token_env), "ssh://user@host[:port]/abs/repo",
    # or "host:port" on loopback only
    mover: str | None = setting(None, parse=text(mover_address))
    fingerprint: str | None = setting(None, parse=text(fingerprint_text))  # tls:// only
    token_env: str | None = setting(None, parse=env_var)  # tls:// only: the job token's variable
    # object storage only: endpoint URL (default $AWS_ENDPOINT_URL), region, and the
    # names of the variables holding the keys (default AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)
    endpoint: str | None = setting(None, parse=text(endpoint_url))
    region: str | None = setting(None, parse=nonblank)
    access_key_env: str | None = setting(None, parse=env_var)
    secret_key_env: str | None = setting(None, parse=env_var)
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

    daily_at: str | None = setting(None, parse=time_of_day)
    every: float | None = setting(None, parse=every_duration, dump=duration_text)
    days: list[str] = setting([], parse=texts(weekday_list), quiet=True)
    window: list[str] = setting([], parse=window_list, dump=window_value, quiet=True)
    rpo: float | None = setting(None, parse=rpo_duration, dump=duration_text)

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
    """[retention.gfs.weekly]: weekly fulls kept and their day."""
    keep_weeks: int = setting(parse=integer(limited(1, MAX_KEEP_WEEKS, "keep_weeks")))
    day: str = setting(parse=text(weekday_full), missing='weekly GFS needs a day, e.g. day = "sunday"')


@dataclass(frozen=True, kw_only=True)
class GfsMonthly(Table):
    """[retention.gfs.monthly]: monthly fulls kept and their week."""
    keep_months: int = setting(parse=integer(limited(1, MAX_KEEP_MONTHS, "keep_months")))
    week: str = setting(parse=text(one_of(*MONTH_WEEKS)),
                        missing="monthly GFS needs a week: first|second|third|fourth|last")


@dataclass(frozen=True, kw_only=True)
class GfsYearly(Table):
    """[retention.gfs.yearly]: yearly fulls kept and their month."""
    keep_years: int = setting(parse=integer(limited(1, MAX_KEEP_YEARS, "keep_years")))
    month: str = setting(parse=text(month_name), missing='yearly GFS needs a month, e.g. month = "january"')


@dataclass(frozen=True, kw_only=True)
class Gfs(Table):
    """[retention.gfs]: the cycles that are on."""
    weekly: GfsWeekly | None = subtable(GfsWeekly, None)
    monthly: GfsMonthly | None = subtable(GfsMonthly, None)
    yearly: GfsYearly | None = subtable(GfsYearly, None)
    method: str = setting("synthetic", parse=text(one_of(*GFS_METHODS)))


@dataclass(frozen=True, kw_only=True)
class Retention(Table):
    """`[retention]`; the spec holds it as the `RetentionPolicy` the pure rules take."""

    keep: int = setting(7, parse=integer(limited(2, MAX_KEEP, "keep")))
    unit: str = setting("points", parse=text(one_of(*UNITS)))
    deleted_items_days: int = setting(30, parse=integer(limited(1, MAX_DAYS, "deleted_items_days")))
    # days mode: points always kept (research notes section 5)
    min_points: int = setting(3, parse=integer(between(1, 10_000, "min_points")), quiet=True)
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

    compression: str = setting("auto", parse=text(one_of(*COMPRESSION)))
    health_check: str = setting("off", parse=text(slot))
    compact: str = setting("off", parse=text(slot))
    # 0 = off; object storage: S3 Object Lock COMPLIANCE
    immutable_days: int = setting(0, parse=integer(between(0, MAX_DAYS, "immutable_days")), quiet=True)
    encryption: bool = setting(False, parse=flag, quiet=True)
    password_env: str | None = setting(None, parse=env_var)
    password_file: Path | None = setting(None, parse=path_value)  # absolute once loaded
    password_command: str | None = setting(None, parse=nonblank)

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
    parallel_tasks: int = setting(4, parse=integer(between(1, MAX_PARALLEL_TASKS, "parallel_tasks")))
    rate_limit: int = setting(0, parse=rate, dump=rate_text)
    retries: int = setting(3, parse=integer(limited(0, MAX_RETRIES, "retries")))
    retry_wait: float = setting(600.0, parse=duration_up_to(MAX_RETRY_WAIT, "24h"), dump=duration_text)


@dataclass(frozen=True, kw_only=True)
class Inventory(Table):
    """`[inventory]`; the spec holds it as the `InventorySettings` the backends take,
    defaults filled (port and protocol by kind, timeout)."""

    REFUSED: ClassVar[dict[str, str]] = {"password": _NO_PASSWORD}

    kind: str = setting(parse=text(one_of(*KINDS)))
    host: str = setting(parse=nonblank)
    port: int | None = setting(None, parse=integer(between(1, 65535, "port")))
    verify_tls: bool = setting(True, parse=flag)
    user: str | None = setting(None, parse=nonblank)
    password_env: str | None = setting(None, parse=env_var)
    protocol: str | None = setting(None, parse=text(one_of(*PROTOCOLS)))
    timeout: float | None = setting(
        None, parse=duration_up_to(MAX_INVENTORY_TIMEOUT, "1h", positive=True), dump=duration_text)
    # Hyper-V only (engine.inventory.hyperv): "ntlm" (default; sealed over http) or "basic";
    # the CA file (PEM) of the host's https certificate; and the opt-in for Basic over
    # http or unverified https, which expose the password (a lab host)
    auth: str | None = setting(None, parse=text(one_of(*HYPERV_AUTHS)))
    ca_file: Path | None = setting(None, parse=path_value)  # absolute once loaded
    allow_insecure: bool = setting(False, parse=flag, quiet=True)

    def settings(self) -> InventorySettings:
        protocol = self.protocol or DEFAULT_PROTOCOLS[self.kind]
        return InventorySettings(
            kind=self.kind, host=self.host, port=self.port or DEFAULT_PORTS[(self.kind, protocol)],
            verify_tls=self.verify_tls, user=self.user or "", password_env=self.password_env or "",
            timeout=self.timeout if self.timeout is not None else DEFAULT_INVENTORY_TIMEOUT,
            protocol=protocol, auth=self.auth or "",
            ca_file=str(self.ca_file) if self.ca_file is not None else "",
            allow_insecure=self.allow_insecure)

    @classmethod
    def of(cls, s: InventorySettings) -> Inventory:
        return cls(kind=s.kind, host=s.host, port=s.port, verify_tls=s.verify_tls,
                   user=s.user or None, password_env=s.password_env or None,
                   protocol=s.protocol or None, timeout=s.timeout, auth=s.auth or None,
                   ca_file=Path(s.ca_file) if s.ca_file else None,
                   allow_insecure=s.allow_insecure)


@dataclass(frozen=True, kw_only=True)
class JobSpec(Table):
    """A validated job: the whole file. Paths are absolute; `raw_paths` remembers how the
    file wrote them ("source.repository", "target.repository", "history",
    "storage.password_file" -> text) so that saving keeps relative paths relative.

    `schedule` of an immediate job has no daily_at/every (only its window matters).
    """

    path: Path  # the job file; not a key
    name: str = setting(parse=nonblank, missing='every job needs a name, e.g. name = "DR copy"')
    mode: str = setting("periodic", parse=text(one_of(*MODES)))
    enabled: bool = setting(True, parse=flag)  # the daemon skips disabled jobs
    history: Path | None = setting(None, parse=path_value)
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
             ("storage", "password_file"), ("inventory", "ca_file"))

__all__ = ["Inventory", "JobSpec", "Retention", "Schedule", "Source", "Storage", "Target",
           "Transport", "duration_text", "rate_text", "window_value"]
