"""Job files: TOML -> validated `JobSpec`, and back (CONTRACT "Job files (TOML)").

Nothing runs on an invalid file, and every mistake is one line naming the file, the
line and the dotted key (`JobFileError`). `validate_text` collects every error (for an
editor that marks lines); `load_job` raises the first one. Writing is
`engine.jobs.save`: validated, atomic, so Ferry never leaves a job file invalid on disk.

Split: `engine.jobs.schema` holds the pydantic model of each table (types, unknown keys,
value ranges); this module adds the checks across tables and against the file system
and builds the `JobSpec`; `engine.jobs.text` finds the line of a key and writes TOML.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from engine.errors import FerryError
from engine.jobs import schema as js
from engine.jobs import text as jt
from engine.model import GfsCycle, GfsPolicy, RetentionPolicy
from engine.objstore.location import S3ConfigError, S3Location, is_s3_url, parse_s3_url
from engine.password import PasswordSource, SourceKind
from engine.repository.repository import BadName, safe_name
from engine.schedule import DEFAULT_DAILY_AT, ScheduleSpec

PASSWORD_KEYS = ("password_env", "password_file", "password_command")
NUL_PROBLEM = "contains a NUL byte"
MAX_COMPONENT = 255  # bytes of one path component (NAME_MAX of Linux file systems)
MAX_PATH = 4096  # bytes of a whole path (PATH_MAX)


class JobFileError(FerryError):
    """One problem in a job file; `str()` is the one-line message for the CLI and console.

    `key` is the dotted TOML key ("retention.gfs.weekly.day"), "" for problems of the
    whole file (unreadable, TOML syntax outside any key); `line` is None when unknown.
    """

    def __init__(self, path: Path | str, line: int | None, key: str, problem: str) -> None:
        super().__init__(path, line, key, problem)  # args round-trip through pickle
        self.path = Path(path)
        self.line = line
        self.key = key
        self.problem = " ".join(problem.splitlines())

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.key}: {self.problem}" if self.key else f"{where}: {self.problem}"

    def __repr__(self) -> str:
        return f"JobFileError({str(self)!r})"


@dataclass
class StorageSpec:
    """`[storage]`: compression level and maintenance slots ("off" or e.g. "last sunday 05:00")."""

    compression: str = "auto"
    health_check: str = "off"
    compact: str = "off"
    immutable_days: int = 0  # 0 = off; object storage: S3 Object Lock COMPLIANCE
    encryption: bool = False
    password_env: str | None = None
    password_file: Path | None = None  # absolute (relative ones resolved against the job file)
    password_command: str | None = None

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


@dataclass
class TransportSpec:
    """`[transport]`; `rate_limit` in bytes per second (0 = none), `retry_wait` in seconds."""

    wan_acceleration: bool = False
    parallel_tasks: int = 4
    rate_limit: int = 0
    retries: int = 3
    retry_wait: float = 600.0


@dataclass(kw_only=True)
class JobSpec:
    """A validated job. Paths are absolute; `raw_paths` remembers how the file wrote them
    (source.repository, target.repository, history, storage.password_file -> text) so
    that saving keeps relative paths relative.

    `schedule` of an immediate job has no daily_at/every (only its window matters).
    `inventory` is the validated `[inventory]` table with defaults filled: kind, host,
    port, protocol, verify_tls, user (or None), password_env (or None), timeout (s).
    """

    path: Path
    name: str
    mode: str = "periodic"
    enabled: bool = True
    source_repository: Path
    source_jobs: list[str]
    machines: list[str] = field(default_factory=list)
    target_repository: Path
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    storage: StorageSpec = field(default_factory=StorageSpec)
    transport: TransportSpec = field(default_factory=TransportSpec)
    inventory: dict[str, Any] | None = None
    history: Path | None = None
    target_mover: str | None = None  # extension: [target] mover (engine.copy.links)
    target_fingerprint: str | None = None  # tls:// mover: its pinned certificate
    target_token_env: str | None = None  # tls:// mover: the variable holding the job token
    # object storage target ([target] repository = "s3://..."); target_repository is then
    # the repository's local state folder (job lock, history, block index cache)
    target_s3: S3Location | None = None
    raw_paths: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


# -------------------------------------------------------------------------------------
# Validation.

_TYPE_WORDS = {
    "int_type": "an integer", "string_type": "a string", "bool_type": "true or false",
    "float_type": "a number", "list_type": "a list", "model_type": "a table",
    "dict_type": "a table", "model_attributes_type": "a table",
}
_MISSING = {
    ("name",): 'every job needs a name, e.g. name = "DR copy"',
    ("retention", "gfs", "weekly", "day"): 'weekly GFS needs a day, e.g. day = "sunday"',
    ("retention", "gfs", "monthly", "week"): "monthly GFS needs a week: first|second|third|fourth|last",
    ("retention", "gfs", "yearly", "month"): 'yearly GFS needs a month, e.g. month = "january"',
}


def _problem(err: Any, keys: tuple[str, ...]) -> str:
    """A pydantic error as the text after "key: "."""
    kind = err["type"]
    if kind == "missing":
        return _MISSING.get(keys, "required key is missing")
    if kind == "extra_forbidden":
        hint = get_close_matches(keys[-1], js.known_keys(keys[:-1]), n=1)
        return "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    if kind == "value_error" and "error" in err.get("ctx", {}):
        return str(err["ctx"]["error"])
    if kind in _TYPE_WORDS:
        return f"expected {_TYPE_WORDS[kind]}, got {js.describe(err.get('input'))}"
    return str(err.get("msg", kind))


def _raw_str(data: Any, *keys: str) -> str | None:
    """A string value of the raw TOML data, or None when absent or of another type, so
    cross-checks can run even when a sibling key of the same table is wrong."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data if isinstance(data, str) and data.strip() else None


class _Checker:
    """Collects the errors of one text. Each table is validated on its own, so one bad
    table does not hide the errors of another."""

    def __init__(self, text: str, path: Path, need_source: bool = True) -> None:
        self.text = text
        self.path = path
        self.need_source = need_source
        self.base = Path(os.path.normpath(Path(path).absolute())).parent
        self.entries: list[jt.Entry] = []
        self.errors: list[JobFileError] = []

    def error(self, key: tuple[str, ...], problem: str) -> None:
        self.errors.append(JobFileError(self.path, jt.line_for(self.entries, key), ".".join(key), problem))

    def model(self, model: type[BaseModel], data: Any, prefix: tuple[str, ...]) -> Any:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                keys, index = list(prefix), None
                for part in err["loc"]:
                    if isinstance(part, int):
                        index = part
                        break
                    keys.append(str(part))
                problem = _problem(err, tuple(keys))
                self.error(tuple(keys), problem if index is None else f"item {index + 1}: {problem}")
            return None

    def resolve(self, raw: str) -> Path:
        p = Path(raw).expanduser()
        return Path(os.path.normpath(p if p.is_absolute() else self.base / p))

    def run(self) -> JobSpec | None:
        try:
            self.entries = jt.scan(self.text)
        except Exception:  # noqa: BLE001 - the scanner only improves messages
            self.entries = []
        try:
            raw = tomllib.loads(self.text.removeprefix("\ufeff"))
        except tomllib.TOMLDecodeError as exc:
            self.syntax_error(str(exc))
            return None
        nul = self.check_nul(raw, ())
        top = self.model(js.TopLevel, {k: v for k, v in raw.items() if k not in js.TABLES}, ())
        tables: dict[str, Any] = {}
        for name, model in js.TABLES.items():
            if name in raw:
                tables[name] = self.model(model, raw[name], (name,))
            elif name in js.REQUIRED_TABLES:
                self.error((name,), f"required table [{name}] is missing")
            elif name != "inventory":  # the only optional table without defaults
                tables[name] = model()
        paths = self.check_paths(raw)
        self.check_cross(raw, tables)
        # a NUL byte is the one thing said about its key (its validator would add a second)
        self.errors = [e for e in self.errors if e.key not in nul or e.problem == NUL_PROBLEM]
        if self.errors or top is None:
            return None
        return self.build(top, tables, paths)

    def check_nul(self, data: Any, prefix: tuple[str, ...]) -> set[str]:
        """Every string value with a NUL byte (TOML allows "\\u0000"): no file name,
        host or command can hold one. Returns the dotted keys."""
        found: set[str] = set()
        items = data.items() if isinstance(data, dict) else enumerate(data)
        for k, v in items:
            key = (*prefix, str(k)) if isinstance(data, dict) else prefix
            if isinstance(v, (dict, list)):
                found |= self.check_nul(v, key)
            elif isinstance(v, str) and "\0" in v and ".".join(key) not in found:
                self.error(key, NUL_PROBLEM)
                found.add(".".join(key))
        return found

    def path_problem(self, text: str) -> str | None:
        """Why `text` can be no path on this machine (None: it can): a NUL byte, a
        component longer than the file system allows, or the whole path too long."""
        if "\0" in text:
            return NUL_PROBLEM
        for part in Path(text).parts:
            if len(part.encode("utf-8", "surrogateescape")) > MAX_COMPONENT:
                return (f"path component {part[:20]!r}... is longer than {MAX_COMPONENT} "
                        "bytes")
        if len(str(self.resolve(text)).encode("utf-8", "surrogateescape")) > MAX_PATH:
            return f"path is longer than {MAX_PATH} bytes"
        return None

    def path_text(self, raw: dict[str, Any], *keys: str) -> str | None:
        """The path at `keys`, or None when absent, of another type or unusable (then
        the error names the key)."""
        text = _raw_str(raw, *keys)
        if text is None:
            return None
        problem = self.path_problem(text)
        if problem is not None:
            if problem != NUL_PROBLEM:  # check_nul already said it
                self.error(keys, problem)
            return None
        return text

    def syntax_error(self, message: str) -> None:
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        line: int | None = None
        if m:
            line = int(m.group(1))
            message = f"{message[: m.start()]} at column {m.group(2)}"
        elif message.endswith("(at end of document)"):
            message = message.removesuffix(" (at end of document)")
            seen: set[tuple[str, ...]] = set()
            for e in self.entries:  # tomllib gives no line for a repeated key
                if not e.header and e.path in seen:
                    line = e.line
                    break
                seen.add(e.path)
            else:
                line = max(1, self.text.rstrip("\n").count("\n") + 1)
        key = jt.key_on_line(self.entries, line) if line else ""
        self.errors.append(JobFileError(self.path, line, key, f"bad TOML: {message}"))

    def check_paths(self, raw: dict[str, Any]) -> dict[str, Path]:
        """Name and folders: what must hold on this machine before anything runs."""
        name = raw.get("name")
        if isinstance(name, str) and name.strip():
            try:
                safe_name(name, "job name")
            except BadName as exc:
                self.error(("name",), f"{exc}; the name becomes a folder name")
        out: dict[str, Path] = {}
        for keys in (("source", "repository"), ("target", "repository"), ("history",),
                     ("storage", "password_file")):
            text = _raw_str(raw, *keys)
            if keys == ("target", "repository") and text is not None and is_s3_url(text):
                self.check_s3(raw, text)
            elif (text := self.path_text(raw, *keys)) is not None:
                try:
                    self.check_path(keys, self.resolve(text), out)
                except OSError as exc:  # e.g. a folder on the way that may not be read
                    self.error(keys, f"cannot check {self.resolve(text)}: "
                               f"{exc.strerror or exc}")
        return out

    def check_path(self, keys: tuple[str, ...], path: Path, out: dict[str, Path]) -> None:
        """The file system side of one path key; the path goes into `out` (by dotted key)."""
        out[".".join(keys)] = path
        if keys == ("source", "repository"):
            if not path.is_dir() and (self.need_source or path.exists()):
                what = "not a directory" if path.exists() else "repository not found"
                self.error(keys, f"{what}: {path}")
        elif keys == ("target", "repository"):
            src = out.get("source.repository")
            if path.exists() and not path.is_dir():
                self.error(keys, f"not a directory: {path}")
            elif not path.parent.is_dir():
                self.error(keys, f"parent folder not found: {path.parent}")
            elif src is not None and _same_or_inside(path, src):
                self.error(keys, f"must not be the source repository or a folder inside "
                           f"it ({src})")
        elif keys == ("history",):
            if path.is_dir():
                self.error(keys, f"is a folder, expected a file: {path}")
            elif not path.parent.is_dir():
                self.error(keys, f"parent folder not found: {path.parent}")

    def check_s3(self, raw: dict[str, Any], text: str) -> None:
        try:
            parse_s3_url(text)
        except S3ConfigError as exc:
            self.error(("target", "repository"), str(exc))
        if "mover" in raw["target"]:
            self.error(("target", "mover"), "an s3:// repository is reached directly, not "
                       "through a mover")

    def check_cross(self, raw: dict[str, Any], t: dict[str, Any]) -> None:
        """Rules that involve two keys; the error goes to the key that has to change."""
        given = raw.get("schedule")
        if isinstance(given, dict):
            if _raw_str(raw, "mode") is not None and raw["mode"].strip().lower() == "immediate":
                for key in ("daily_at", "every", "days"):
                    if key in given:
                        self.error(("schedule", key), f"only periodic jobs have {key}; an immediate "
                                   "job copies each new point as soon as it is complete")
            elif "daily_at" in given and "every" in given:
                self.error(("schedule", "every"), "use either daily_at or every, not both")
        target = raw.get("target")
        if isinstance(target, dict) and not is_s3_url(target.get("repository")):
            for key in ("endpoint", "region", "access_key_env", "secret_key_env"):
                if key in target:
                    self.error(("target", key), "only for an object storage repository "
                               '(repository = "s3://bucket/prefix")')
        ret, storage = t.get("retention"), t.get("storage")
        if storage is not None:
            given = [k for k in PASSWORD_KEYS if getattr(storage, k) is not None]
            if len(given) > 1:
                self.error(("storage", given[1]), f"give exactly one password source, not "
                           f"{' and '.join(given)}")
            elif storage.encryption and not given:
                self.error(("storage", "encryption"), "encryption needs a password source: "
                           'password_env = "NAME", password_file = "PATH" (mode 0600) or '
                           'password_command = "..."')
        if ret is not None and ret.gfs is not None and storage is not None and storage.compact != "off":
            if any((ret.gfs.weekly, ret.gfs.monthly, ret.gfs.yearly)):
                self.error(("storage", "compact"), "compact full works only without GFS retention")

    def build(self, top: js.TopLevel, t: dict[str, Any], paths: dict[str, Path]) -> JobSpec:
        raw_paths = {"source.repository": t["source"].repository,
                     "target.repository": t["target"].repository}
        if top.history is not None:
            raw_paths["history"] = top.history
        s = t["schedule"]
        if top.mode == "immediate":
            schedule = ScheduleSpec(daily_at=None, every=None, window=s.window, rpo=s.rpo)
        else:
            daily = None if s.every is not None else (s.daily_at or DEFAULT_DAILY_AT)
            schedule = ScheduleSpec(daily_at=daily, every=s.every, days=s.days, window=s.window,
                                    rpo=s.rpo)
        inv = t.get("inventory")
        s3 = None
        if is_s3_url(t["target"].repository):
            s3 = parse_s3_url(t["target"].repository, **t["target"].s3_options())
            paths["target.repository"] = s3.state_dir()
        return JobSpec(
            path=Path(os.path.normpath(Path(self.path).absolute())),
            name=top.name, mode=top.mode, enabled=top.enabled,
            source_repository=paths["source.repository"], source_jobs=list(t["source"].jobs),
            machines=list(t["source"].machines), target_repository=paths["target.repository"],
            retention=replace(_retention(t["retention"]),
                              immutable_days=t["storage"].immutable_days), schedule=schedule,
            storage=self.storage(t["storage"], raw_paths),
            transport=TransportSpec(**t["transport"].model_dump()),
            inventory=inv.settings() if inv is not None else None,
            history=paths.get("history"), raw_paths=raw_paths,
            target_mover=t["target"].mover, target_s3=s3,
            target_fingerprint=t["target"].fingerprint, target_token_env=t["target"].token_env,
        )


    def storage(self, table: js.Storage, raw_paths: dict[str, str]) -> StorageSpec:
        spec = StorageSpec(**table.model_dump(exclude={"password"}))
        if table.password_file is not None:
            raw_paths["storage.password_file"] = table.password_file
            spec.password_file = self.resolve(table.password_file)
        return spec


def _same_or_inside(path: Path, other: Path) -> bool:
    """`path` is `other` or below it (symlinks resolved): the copy would show up as a
    job folder of the source repository."""
    a, b = path.resolve(), other.resolve()
    return a == b or b in a.parents


def _retention(r: js.Retention) -> RetentionPolicy:
    gfs = None
    if r.gfs is not None:
        g = r.gfs
        gfs = GfsPolicy(
            weekly=GfsCycle(g.weekly.keep_weeks, g.weekly.day) if g.weekly else None,
            monthly=GfsCycle(g.monthly.keep_months, g.monthly.week) if g.monthly else None,
            yearly=GfsCycle(g.yearly.keep_years, g.yearly.month) if g.yearly else None,
            method=g.method,
        )
    return RetentionPolicy(keep=r.keep, unit=r.unit, gfs=gfs, deleted_items_days=r.deleted_items_days,
                           min_points_days_mode=r.min_points)


def _check(text: str, path: Path, need_source: bool = True
           ) -> tuple[list[JobFileError], JobSpec | None]:
    checker = _Checker(text, path, need_source)
    try:
        spec = checker.run()
    except Exception as exc:  # noqa: BLE001 - an editor must get a message, not a crash
        checker.errors.append(JobFileError(path, None, "", f"internal error while checking: {exc!r}"))
        spec = None
    errors = sorted(checker.errors, key=lambda e: (e.line is None, e.line or 0))
    return errors, (spec if not errors else None)


def validate_text(text: str, path: Path | str) -> list[JobFileError]:
    """Every error of a job file's text, in line order ([] when valid). Never raises.

    `path` is where the text lives (or will): relative paths resolve against its folder.
    """
    return _check(text, Path(path))[0]


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JobFileError(path, None, "", f"not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise JobFileError(path, None, "", f"cannot read job file: {exc.strerror or exc}") from None


def load_job(path: Path | str, need_source: bool = True) -> JobSpec:
    """Load and validate a job file; raises the first `JobFileError` (in line order).

    `need_source=False` accepts a source repository that is gone (background retention
    works on the target alone); everything else is checked the same."""
    path = Path(path)
    errors, spec = _check(_read(path), path, need_source)
    if errors or spec is None:
        raise errors[0]
    return spec


def discover_jobs(folder: Path | str, need_source: bool = True
                  ) -> list[tuple[Path, JobSpec | JobFileError]]:
    """Every `*.toml` in `folder` (hidden files skipped, sorted by name): spec or first error.

    A job whose name (case-insensitively) is taken by an earlier file gets an error:
    both would write into the same job folder and share one history.
    """
    out: list[tuple[Path, JobSpec | JobFileError]] = []
    names: dict[str, Path] = {}
    for path in sorted(Path(folder).glob("*.toml")):
        if path.name.startswith(".") or not path.is_file():
            continue
        try:
            spec: JobSpec | JobFileError = load_job(path, need_source)
        except JobFileError as exc:
            spec = exc
        if isinstance(spec, JobSpec):
            key = spec.name.casefold()
            if key in names:
                line = jt.line_for(jt.scan(_read(path)), ("name",))
                spec = JobFileError(path, line, "name",
                                    f"job name {spec.name!r} is already used by {names[key].name}")
            else:
                names[key] = path
        out.append((path, spec))
    return out


__all__ = [
    "JobFileError", "JobSpec", "ScheduleSpec", "StorageSpec", "TransportSpec",
    "discover_jobs", "load_job", "validate_text",
]
