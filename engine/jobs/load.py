"""Job files: TOML -> a validated `JobSpec` (CONTRACT "Job files (TOML)").

Nothing runs on an invalid file, and every mistake is one line naming the file, the
line and the dotted key (`JobFileError`). `validate_text` collects every error (for an
editor that marks lines); `load_job` raises the first one. Writing is
`engine.jobs.save`: validated, atomic, so Ferry never leaves a job file invalid on disk.

Split: `engine.jobs.schema` declares every key (type, range, normal form) and
`engine.jobs.fields` checks a table against it; this module adds the checks across
tables and against the file system and resolves paths; `engine.jobs.text` finds the
line of a key.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from engine.errors import FerryError
from engine.inventory.base import InventorySettings, insecure_reason
from engine.jobs import fields
from engine.jobs import text as jt
from engine.jobs.schema import PATH_KEYS, JobSpec
from engine.objstore.location import S3ConfigError, is_s3_url, parse_s3_url
from engine.repository.names import BadName, safe_name
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
        values, _ = fields.check(JobSpec, raw, (), self.error)
        paths = self.check_paths(raw)
        self.check_cross(raw, values)
        # a NUL byte is the one thing said about its key (its check would add a second)
        self.errors = [e for e in self.errors if e.key not in nul or e.problem == NUL_PROBLEM]
        if self.errors:
            return None
        return self.build(raw, values, paths)

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
        for keys in PATH_KEYS:
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
        elif keys == ("inventory", "ca_file"):
            if not path.is_file():
                self.error(keys, f"{'not a file' if path.exists() else 'file not found'}: "
                           f"{path} (the PEM file of the CA that signed the host's certificate)")
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
        self.check_inventory(raw, t.get("inventory"))
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

    def check_inventory(self, raw: dict[str, Any], inv: InventorySettings | None) -> None:
        """Hyper-V's own keys, and what would expose its password (`insecure_reason`)
        unless the job says `allow_insecure = true`."""
        given = raw.get("inventory")
        if inv is None or not isinstance(given, dict):
            return
        if inv.kind != "hyperv":
            for key in ("auth", "ca_file", "allow_insecure"):
                if key in given:
                    self.error(("inventory", key), f"{key} is for a Hyper-V host (kind = "
                               '"hyperv") only')
            return
        problem = insecure_reason(inv.kind, inv.protocol, inv.effective_auth, inv.verify_tls)
        if problem is not None and not inv.allow_insecure:
            self.error(("inventory", problem[0]), problem[1])
        if "ca_file" in given and inv.effective_protocol != "https":
            self.error(("inventory", "ca_file"), 'a CA file is for protocol = "https" only')

    def build(self, raw: dict[str, Any], values: dict[str, Any], paths: dict[str, Path]
              ) -> JobSpec:
        """The spec: paths resolved (their text kept in `raw_paths`), the schedule filled
        by mode, `[storage] immutable_days` given to the retention rules too."""
        raw_paths = {".".join(k): t for k in PATH_KEYS if (t := _raw_str(raw, *k)) is not None}
        spec = JobSpec(path=Path(os.path.normpath(Path(self.path).absolute())),
                       raw_paths=raw_paths, **values)
        target = spec.target
        if is_s3_url(raw_paths["target.repository"]):
            s3 = parse_s3_url(raw_paths["target.repository"], **target.s3_options())
            target = replace(target, repository=s3.state_dir(), s3=s3)
        else:
            target = replace(target, repository=paths["target.repository"])
        storage = spec.storage
        if storage.password_file is not None:
            storage = replace(storage, password_file=paths["storage.password_file"])
        inventory = spec.inventory
        if inventory is not None and inventory.ca_file:
            inventory = replace(inventory, ca_file=str(paths["inventory.ca_file"]))
        return replace(
            spec, source=replace(spec.source, repository=paths["source.repository"]),
            target=target, storage=storage, history=paths.get("history"), inventory=inventory,
            schedule=_for_mode(spec.schedule, spec.mode),
            retention=replace(spec.retention, immutable_days=storage.immutable_days))


def _for_mode(s: ScheduleSpec, mode: str) -> ScheduleSpec:
    """An immediate job has no start times; a periodic one without `every` runs daily
    (at 22:00 when the file gives no time)."""
    if mode == "immediate":
        return ScheduleSpec(daily_at=None, every=None, window=s.window, rpo=s.rpo)
    daily = None if s.every is not None else (s.daily_at or DEFAULT_DAILY_AT)
    return ScheduleSpec(daily_at=daily, every=s.every, days=s.days, window=s.window, rpo=s.rpo)


def _same_or_inside(path: Path, other: Path) -> bool:
    """`path` is `other` or below it (symlinks resolved): the copy would show up as a
    job folder of the source repository."""
    a, b = path.resolve(), other.resolve()
    return a == b or b in a.parents


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


__all__ = ["JobFileError", "JobSpec", "discover_jobs", "load_job", "validate_text"]
