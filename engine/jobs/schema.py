"""Pydantic models of a job file, one per TOML table (CONTRACT "Job files (TOML)").

Only what can be checked from the values themselves lives here: types, unknown keys and
value ranges. Checks that need several tables or the file system (repository folders,
mode vs schedule, GFS vs compact) are in `engine.jobs.load`, which also turns pydantic's
errors into one-line `JobFileError`s. Every validator returns the *normalized* value
(lower case, "HH:MM", seconds, bytes) so that a spec saved and loaded again is equal.

Models are strict (no "7" -> 7 coercion) and forbid unknown keys, so a typo is an
error instead of a silently ignored setting.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    field_validator,
    model_validator,
)

from engine import schedule as sched
from engine.repository.repository import BadName, safe_name
from engine.units import parse_duration, parse_rate

MODES = ("periodic", "immediate")
UNITS = ("points", "days")
COMPRESSION = ("none", "dedupe-friendly", "optimal", "high", "extreme", "auto")
GFS_METHODS = ("synthetic", "active")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
INVENTORY_KINDS = ("vsphere", "hyperv")
PROTOCOLS = ("https", "http")
DEFAULT_PORTS = {("vsphere", "https"): 443, ("vsphere", "http"): 80,
                 ("hyperv", "http"): 5985, ("hyperv", "https"): 5986}
DEFAULT_PROTOCOL = {"vsphere": "https", "hyperv": "http"}
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
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def describe(value: Any) -> str:
    """A value as the user wrote it in TOML, for "got ..." in messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"{value[:40]!r}..."
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (int, float)):
        return repr(value)
    if hasattr(value, "isoformat"):
        return f"an unquoted date/time {value.isoformat()}"
    return repr(value)


# -------------------------------------------------------------------------------------
# Value validators. Each raises ValueError with the message shown after "key: ".


def _one_of(*choices: str):
    def check(value: str) -> str:
        key = value.strip().lower()
        if key not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return key
    return check


def _at_least(minimum: int, what: str):
    def check(value: int) -> int:
        if value < minimum:
            raise ValueError(f"{what} must be at least {minimum}, got {value}")
        return value
    return check


def _limited(low: int, high: int, what: str):
    """Like `_between`, with the side that was crossed in the message ("at most 100")."""
    def check(value: int) -> int:
        if value < low:
            raise ValueError(f"{what} must be at least {low}, got {value}")
        if value > high:
            raise ValueError(f"{what} must be at most {high}, got {value}")
        return value
    return check


def _between(low: int, high: int, what: str):
    def check(value: int) -> int:
        if not low <= value <= high:
            raise ValueError(f"{what} must be between {low} and {high}, got {value}")
        return value
    return check


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def _weekday_full(value: str) -> str:
    return sched.WEEKDAY_NAMES[sched.weekday_index(value)]


def _month(value: str) -> str:
    key = value.strip().lower()
    for name in MONTHS:
        if key in (name, name[:3]):
            return name
    raise ValueError(f"expected a month (january..december or jan..dec), got {value!r}")


def _daily_at(value: Any) -> str:
    """"22:00"; an unquoted TOML time (22:00) is accepted too."""
    if isinstance(value, time) and not value.second and not value.microsecond:
        return sched.fmt_hhmm(value.hour * 60 + value.minute)
    if not isinstance(value, str):
        raise ValueError(f'expected a time of day like "22:00", got {describe(value)}')
    return sched.fmt_hhmm(sched.parse_hhmm(value))


def _duration(value: Any) -> float:
    """"10m", "1h30m", or a number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f'expected a duration like "10m" or "4h", got {describe(value)}')
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise ValueError(f'expected a duration like "10m" or "4h", got {describe(value)}') from None
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ValueError(f"expected a finite duration, got {describe(value)}")
    if seconds < 0:
        raise ValueError(f"must not be negative, got {describe(value)}")
    return seconds


def _every(value: Any) -> float:
    seconds = _duration(value)
    if not 60 <= seconds <= 86400:
        raise ValueError(f"every must be between 1m and 24h, got {describe(value)}")
    return seconds


MAX_RPO = 366 * 86400.0


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


def _positive_duration(value: Any) -> float:
    seconds = _duration(value)
    if seconds <= 0:
        raise ValueError(f"must be more than 0, got {describe(value)}")
    return seconds


def _duration_up_to(maximum: float, shown: str, *, positive: bool = False):
    """A duration of at most `maximum` seconds (`shown` as the user would write it)."""
    def check(value: Any) -> float:
        seconds = _positive_duration(value) if positive else _duration(value)
        if seconds > maximum:
            raise ValueError(f"must be at most {shown}, got {describe(value)}")
        return seconds
    return check


def _rate(value: Any) -> int:
    """"50MiB/s", "0" or a number of bytes per second -> bytes per second (<= 1 TiB/s)."""
    bad = (f'expected a rate like "50MiB/s" or "100Mbit/s" (or "0" for no limit), '
           f'got {describe(value)}')
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(bad)
    if isinstance(value, int):
        rate = value
    else:
        try:
            rate = parse_rate(value)
        except (ValueError, OverflowError):
            raise ValueError(bad) from None
    if rate < 0:
        raise ValueError(bad)
    if rate > MAX_RATE:
        raise ValueError(f'must be at most 1TiB/s (or "0" for no limit), got {describe(value)}')
    return rate


def _maintenance_slot(value: str) -> str:
    """"off" or a slot such as "last sunday 05:00", normalized."""
    slot = sched.parse_health_check(value)
    return "off" if slot is None else str(slot)


def _weekday_list(value: list[str]) -> list[str]:
    picked = {sched.weekday_index(d) for d in value}
    return [sched.WEEKDAYS[i] for i in sorted(picked)]


def _window_list(value: Any) -> list[str]:
    """["20:00-06:00"] (every day) or {mon = ["20:00-06:00"], sat = [...]} -> normal form:
    a list of "HH:MM-HH:MM", each prefixed by its weekday when given per day."""
    if isinstance(value, dict):
        out = []
        for day, windows in value.items():
            index = sched.weekday_index(str(day))
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


def _name_list(what: str, *, required: bool):
    """A list of job or machine names: each must be a usable folder name (the
    repository's own rule, `safe_name`: no `..`, separator, control character, or more
    than 200 bytes), none listed twice."""
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


def _env_name(value: str) -> str:
    if not _ENV_NAME_RE.match(value):
        raise ValueError(f"expected an environment variable name like FERRY_PASSWORD, got {value!r}")
    return value


def _no_password(value: Any) -> Any:
    raise ValueError(
        "passwords never go in the job file: put it in an environment variable "
        'and name that variable with password_env = "FERRY_PASSWORD"'
    )


Mode = Annotated[str, AfterValidator(_one_of(*MODES))]
Unit = Annotated[str, AfterValidator(_one_of(*UNITS))]
Compression = Annotated[str, AfterValidator(_one_of(*COMPRESSION))]
GfsMethod = Annotated[str, AfterValidator(_one_of(*GFS_METHODS))]
MonthWeek = Annotated[str, AfterValidator(_one_of(*sched.MONTH_WEEKS))]
Weekday = Annotated[str, AfterValidator(_weekday_full)]
Month = Annotated[str, AfterValidator(_month)]
NonEmpty = Annotated[str, AfterValidator(_non_empty)]
Slot = Annotated[str, AfterValidator(_maintenance_slot)]
AnyDuration = Annotated[float, BeforeValidator(_duration)]


KeepWeeks = Annotated[int, AfterValidator(_limited(1, MAX_KEEP_WEEKS, "keep_weeks"))]
KeepMonths = Annotated[int, AfterValidator(_limited(1, MAX_KEEP_MONTHS, "keep_months"))]
KeepYears = Annotated[int, AfterValidator(_limited(1, MAX_KEEP_YEARS, "keep_years"))]
Keep = Annotated[int, AfterValidator(_limited(2, MAX_KEEP, "keep"))]
Days = Annotated[int, AfterValidator(_limited(1, MAX_DAYS, "deleted_items_days"))]
MinPoints = Annotated[int, AfterValidator(_between(1, 10_000, "min_points"))]
Retries = Annotated[int, AfterValidator(_limited(0, MAX_RETRIES, "retries"))]
RetryWait = Annotated[float, BeforeValidator(_duration_up_to(MAX_RETRY_WAIT, "24h"))]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class TopLevel(_Table):
    """The keys before the first table header (the tables are validated one by one)."""

    name: NonEmpty
    mode: Mode = "periodic"
    enabled: bool = True
    history: NonEmpty | None = None


class Source(_Table):
    repository: NonEmpty
    jobs: Annotated[list[str], AfterValidator(_name_list("job name", required=True))]
    machines: Annotated[list[str], AfterValidator(_name_list("machine name", required=False))] = []


class Target(_Table):
    repository: NonEmpty  # a folder, or "s3://bucket/prefix" (object storage)
    # a `ferry mover` serving the target repository: "tls://host:port" (with fingerprint
    # and token_env), "ssh://user@host[:port]/abs/repo", or "host:port" on loopback only
    mover: str | None = None
    fingerprint: str | None = None  # tls:// only: "sha256:<hex>" of the mover's certificate
    token_env: Annotated[str, AfterValidator(_env_name)] | None = None  # tls:// only
    # object storage only: endpoint URL (default $AWS_ENDPOINT_URL), region, and the
    # names of the variables holding the keys (default AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)
    endpoint: Annotated[str, AfterValidator(_endpoint)] | None = None
    region: NonEmpty | None = None
    access_key_env: Annotated[str, AfterValidator(_env_name)] | None = None
    secret_key_env: Annotated[str, AfterValidator(_env_name)] | None = None

    def s3_options(self) -> dict[str, str | None]:
        return {"endpoint": self.endpoint, "region": self.region,
                "access_key_env": self.access_key_env, "secret_key_env": self.secret_key_env}

    @field_validator("mover")
    @classmethod
    def _mover(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from engine.copy.links import parse_mover

        parse_mover(v)
        return v

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, v: str | None) -> str | None:
        if v is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", v):
            raise ValueError("expected sha256:<64 hex digits> (printed by ferry mover init)")
        return v

    @model_validator(mode="after")
    def _tls_needs(self):
        tls = bool(self.mover and self.mover.startswith("tls://"))
        if tls and (self.fingerprint is None or self.token_env is None):
            raise ValueError("a tls:// mover needs fingerprint and token_env")
        if not tls and (self.fingerprint is not None or self.token_env is not None):
            raise ValueError("fingerprint and token_env are for a tls:// mover only")
        return self


class GfsWeekly(_Table):
    keep_weeks: KeepWeeks
    day: Weekday


class GfsMonthly(_Table):
    keep_months: KeepMonths
    week: MonthWeek


class GfsYearly(_Table):
    keep_years: KeepYears
    month: Month


class Gfs(_Table):
    weekly: GfsWeekly | None = None
    monthly: GfsMonthly | None = None
    yearly: GfsYearly | None = None
    method: GfsMethod = "synthetic"


class Retention(_Table):
    keep: Keep = 7
    unit: Unit = "points"
    deleted_items_days: Days = 30
    min_points: MinPoints = 3  # days mode: points always kept (research notes section 5)
    gfs: Gfs | None = None


class Schedule(_Table):
    daily_at: Annotated[str, BeforeValidator(_daily_at)] | None = None
    every: Annotated[float, BeforeValidator(_every)] | None = None
    days: Annotated[list[str], AfterValidator(_weekday_list)] = []
    window: Annotated[list[str], BeforeValidator(_window_list)] = []
    rpo: Annotated[float | None, BeforeValidator(_rpo)] = None


class Storage(_Table):
    compression: Compression = "auto"
    health_check: Slot = "off"
    compact: Slot = "off"
    immutable_days: Annotated[int, AfterValidator(_between(0, MAX_DAYS, "immutable_days"))] = 0
    # encryption (engine/keys.py): the password comes from exactly one of the three
    # sources below, never from the file; a source may stay after encryption is
    # switched off, for reading the older encrypted points
    encryption: bool = False
    password_env: Annotated[str, AfterValidator(_env_name)] | None = None
    password_file: NonEmpty | None = None
    password_command: NonEmpty | None = None
    password: Annotated[Any, BeforeValidator(_no_password)] = None


class Transport(_Table):
    wan_acceleration: bool = False
    parallel_tasks: Annotated[int, AfterValidator(_between(1, MAX_PARALLEL_TASKS, "parallel_tasks"))] = 4
    rate_limit: Annotated[int, BeforeValidator(_rate)] = 0
    retries: Retries = 3
    retry_wait: RetryWait = 600.0


class Inventory(_Table):
    kind: Annotated[str, AfterValidator(_one_of(*INVENTORY_KINDS))]
    host: NonEmpty
    port: Annotated[int, AfterValidator(_between(1, 65535, "port"))] | None = None
    verify_tls: bool = True
    user: NonEmpty | None = None
    password_env: Annotated[str, AfterValidator(_env_name)] | None = None
    protocol: Annotated[str, AfterValidator(_one_of(*PROTOCOLS))] | None = None
    timeout: Annotated[float, BeforeValidator(
        _duration_up_to(MAX_INVENTORY_TIMEOUT, "1h", positive=True))] | None = None
    password: Annotated[Any, BeforeValidator(_no_password)] = None

    def settings(self) -> dict[str, Any]:
        """The validated table as a plain dict with the defaults filled in."""
        protocol = self.protocol or DEFAULT_PROTOCOL[self.kind]
        return {
            "kind": self.kind,
            "host": self.host,
            "port": self.port or DEFAULT_PORTS[(self.kind, protocol)],
            "protocol": protocol,
            "verify_tls": self.verify_tls,
            "user": self.user,
            "password_env": self.password_env,
            "timeout": self.timeout if self.timeout is not None else DEFAULT_INVENTORY_TIMEOUT,
        }


# TOML table name -> model; the order is the order of a written file.
TABLES: dict[str, type[_Table]] = {
    "source": Source,
    "target": Target,
    "schedule": Schedule,
    "retention": Retention,
    "storage": Storage,
    "transport": Transport,
    "inventory": Inventory,
}
REQUIRED_TABLES = ("source", "target")


def known_keys(path: tuple[str, ...]) -> list[str]:
    """The keys a table accepts, for "did you mean" hints; [] when unknown."""
    if not path:
        return list(TopLevel.model_fields) + list(TABLES)
    model: Any = TABLES.get(path[0])
    for part in path[1:]:
        if model is None or part not in model.model_fields:
            return []
        annotation = model.model_fields[part].annotation
        model = next((a for a in getattr(annotation, "__args__", (annotation,))
                      if isinstance(a, type) and issubclass(a, _Table)), None)
    if model is None:
        return []
    return [k for k in model.model_fields if k != "password"]
