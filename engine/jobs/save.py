"""Writing job files: back to TOML, retention and schedule switches, the editor's save.

Every write is validated before it atomically replaces the file (temp, fsync,
rename), so Ferry never leaves a job file invalid on disk; the edits that touch one
table or one key (`update_retention`, `set_enabled`) keep the rest, comments
included. Reading and validating is `engine.jobs.load`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomlkit
import tomlkit.exceptions
import tomlkit.items

from engine.jobs import fields
from engine.jobs import text as jt
from engine.jobs.load import JobFileError, JobSpec, _check, _read, validate_text
from engine.jobs.schema import PATH_KEYS, Retention
from engine.model import RetentionPolicy
from engine.repository.names import BadName, safe_name


def _path_text(spec: JobSpec, key: str, value: Path, base: Path) -> str:
    """How to write a path: as the file had it; relative ones re-based when the file
    moves. A path set in code (no original text) is written absolute."""
    raw = spec.raw_paths.get(key)
    if raw is None:
        return str(value)
    old_base = spec.path.parent
    expanded = Path(raw).expanduser()
    absolute = expanded.is_absolute()
    unchanged = Path(os.path.normpath(expanded if absolute else old_base / expanded)) == value
    if unchanged and (absolute or base == old_base):
        return raw
    if absolute:
        return str(value)
    try:
        return Path(os.path.relpath(value, base)).as_posix()
    except ValueError:  # another drive on Windows
        return str(value)


def job_to_dict(spec: JobSpec, relative_to: Path | None = None) -> dict[str, Any]:
    """The job as TOML-ready data (`fields.dump`: durations and rates as text).

    Relative paths are written relative to `relative_to`, the folder of the file being
    written (default: the job file's folder).
    """
    base = Path(os.path.normpath(Path(relative_to).absolute())) if relative_to else spec.path.parent
    out = fields.dump(spec)
    for keys in PATH_KEYS:
        table = out if len(keys) == 1 else out.get(keys[0], {})
        if keys[-1] in table:
            table[keys[-1]] = _path_text(spec, ".".join(keys), table[keys[-1]], base)
    if spec.target.s3 is not None:
        out["target"]["repository"] = spec.target.s3.url
    if spec.mode == "immediate" and "schedule" in out:  # only its window and rpo apply
        for key in ("daily_at", "every", "days"):
            out["schedule"].pop(key, None)
        if not out["schedule"]:
            del out["schedule"]
    return out


def _write_checked(path: Path, text: str) -> JobSpec:
    """Validate `text` as the file at `path`, then replace the file atomically."""
    errors, spec = _check(text, path)
    if errors or spec is None:
        raise errors[0]
    jt.atomic_write(path, text)
    return spec


def _new(value: dict[str, Any], depth: int) -> Any:
    """A new table: `[table]` down to `depth` levels (1: [retention], 2: [retention.gfs]),
    inline below that (`weekly = { keep_weeks = 4, day = "sunday" }`)."""
    if depth <= 0:  # spaced as the CONTRACT writes it: { keep_weeks = 4, day = "sunday" }
        return tomlkit.parse(f"v = {jt.toml_value(value)}")["v"]
    table = tomlkit.table()
    for key, item in value.items():
        table[key] = _new(item, depth - 1) if isinstance(item, dict) else item
    return table


def _merge(table: Any, data: dict[str, Any], depth: int) -> None:
    """Make the tomlkit `table` hold `data`, editing in place: a key with its value
    unchanged keeps its text, a changed one keeps its place and its comment, keys not
    in `data` go, new ones are added; comment lines stay where they are."""
    for key in [k for k in table if k not in data]:
        del table[key]
    for key, value in data.items():
        old = table.get(key)
        if isinstance(value, dict):
            if isinstance(old, tomlkit.items.Table):  # not an inline table
                _merge(old, value, depth - 1)
            else:
                table[key] = _new(value, 0 if isinstance(old, tomlkit.items.InlineTable) else depth - 1)
        else:
            plain = old.unwrap() if hasattr(old, "unwrap") else old
            if old is None or plain != value or type(plain) is not type(value):
                table[key] = value


def _edit(path: Path, change: Callable[[tomlkit.TOMLDocument], None]) -> JobSpec:
    """Apply `change` to the parsed file (comments and layout kept), validate, write."""
    text = _read(path)
    try:
        doc = tomlkit.parse(text)
    except tomlkit.exceptions.ParseError:
        errors = validate_text(text, path)  # the one-line file:line message of the syntax error
        raise errors[0] if errors else JobFileError(path, None, "", "bad TOML") from None
    change(doc)
    return _write_checked(path, tomlkit.dumps(doc))


def save_job(spec: JobSpec, path: Path | str | None = None) -> JobSpec:
    """Write `spec` to `path` (default `spec.path`); returns the spec as loaded from there.

    An invalid spec raises `JobFileError` and leaves the file untouched. An existing
    file is edited in place (its comments and layout kept where the values did not
    change); a new one is written in the CONTRACT's layout.
    """
    dest = Path(path) if path is not None else spec.path
    data = job_to_dict(spec, relative_to=dest.parent)
    if dest.is_file():
        try:
            return _edit(dest, lambda doc: _merge(doc, data, 2))
        except JobFileError:
            pass  # an existing file that does not parse is replaced whole
    return _write_checked(dest, jt.render(data))


def update_retention(path: Path | str, policy: RetentionPolicy) -> JobSpec:
    """Set only the `[retention]` table (and `[retention.gfs]`) of a job file.

    Everything else, and the comments inside `[retention]`, stays as it was. The new
    text is validated before it replaces the file: a bad policy, or a file with errors
    outside `[retention]`, raises `JobFileError` and the file is untouched. (Errors
    inside `[retention]` are fixed by the edit, so the console can repair them.)
    """
    data = fields.dump(Retention.of(policy))

    def change(doc: tomlkit.TOMLDocument) -> None:
        if isinstance(doc.get("retention"), tomlkit.items.Table):
            _merge(doc["retention"], data, 1)
        else:
            doc.pop("retention", None)
            doc["retention"] = _new(data, 2)
    return _edit(Path(path), change)


def set_enabled(path: Path | str, enabled: bool) -> JobSpec:
    """Switch a job's schedule on or off, editing only the `enabled` value (however the
    key is written, `"enabled" = true` too); added before the first table when absent."""
    def change(doc: tomlkit.TOMLDocument) -> None:
        doc["enabled"] = enabled
    return _edit(Path(path), change)


def save_text(path: Path | str, text: str) -> list[JobFileError]:
    """The editor's save: write `text` atomically only when it has no errors."""
    path = Path(path)
    errors = validate_text(text, path)
    if not errors:
        jt.atomic_write(path, text)
    return errors


def template(name: str, source: str = "../primary", target: str = "../dr",
             source_jobs: tuple[str, ...] = ("Daily",)) -> str:
    """The text of a new job file (the console's "new job"), options commented.

    Valid once saved where `source` exists; raises ValueError for a name that cannot
    be a folder name.
    """
    try:
        safe_name(name, "job name")
    except BadName as exc:
        raise ValueError(str(exc)) from None
    return jt.template_text(name, source, target, list(source_jobs))



__all__ = ["job_to_dict", "save_job", "save_text", "set_enabled", "template",
           "update_retention"]
