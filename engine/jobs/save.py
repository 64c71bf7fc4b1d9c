"""Writing job files: back to TOML, retention and schedule switches, the editor's save.

Every write is validated before it atomically replaces the file (temp, fsync,
rename), so Ferry never leaves a job file invalid on disk; the edits that touch one
table or one key (`update_retention`, `set_enabled`) keep the rest, comments
included. Reading and validating is `engine.jobs.load`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import schedule as sched
from engine.jobs import text as jt
from engine.jobs.load import JobFileError, JobSpec, _check, _read, validate_text
from engine.model import RetentionPolicy
from engine.repository.repository import BadName, safe_name
from engine.schedule import DEFAULT_DAILY_AT

if TYPE_CHECKING:  # imported where used: plain folder jobs never load the S3 code
    from engine.objstore.location import S3Location


def _s3_target(loc: S3Location) -> dict[str, str]:
    """`[target]` of an object storage job: the URL and the options that differ from the defaults."""
    from engine.objstore.location import S3Location

    out = {"repository": loc.url}
    default = S3Location(loc.bucket, loc.prefix)
    for key in ("endpoint", "region", "access_key_env", "secret_key_env"):
        if getattr(loc, key) != getattr(default, key):
            out[key] = getattr(loc, key)
    return out


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


def _retention_dict(policy: RetentionPolicy) -> dict[str, Any]:
    out: dict[str, Any] = {"keep": policy.keep, "unit": policy.unit,
                           "deleted_items_days": policy.deleted_items_days}
    if policy.min_points_days_mode != 3:
        out["min_points"] = policy.min_points_days_mode
    if policy.gfs is not None:
        g = policy.gfs
        gfs: dict[str, Any] = {}
        if g.weekly:
            gfs["weekly"] = {"keep_weeks": g.weekly.keep, "day": g.weekly.at}
        if g.monthly:
            gfs["monthly"] = {"keep_months": g.monthly.keep, "week": g.monthly.at}
        if g.yearly:
            gfs["yearly"] = {"keep_years": g.yearly.keep, "month": g.yearly.at}
        gfs["method"] = g.method
        out["gfs"] = gfs
    return out


def window_value(window: list[str]) -> list[str] | dict[str, list[str]]:
    """The job file's form of a normalised window list: a list, or a weekday table."""
    if not any(" " in w for w in window):
        return list(window)
    table: dict[str, list[str]] = {}
    for w in window:  # a table is per weekday, so an every-day window goes on each day
        day, _, hours = w.rpartition(" ")
        for d in [day] if day else list(sched.WEEKDAYS):
            table.setdefault(d, []).append(hours)
    return {d: table[d] for d in sched.WEEKDAYS if d in table}


def job_to_dict(spec: JobSpec, relative_to: Path | None = None) -> dict[str, Any]:
    """The job as TOML-ready data (every setting explicit, durations and rates as text).

    Relative paths are written relative to `relative_to`, the folder of the file being
    written (default: the job file's folder).
    """
    base = Path(os.path.normpath(Path(relative_to).absolute())) if relative_to else spec.path.parent
    out: dict[str, Any] = {"name": spec.name, "mode": spec.mode, "enabled": spec.enabled}
    if spec.history is not None:
        out["history"] = _path_text(spec, "history", spec.history, base)
    out["source"] = {"repository": _path_text(spec, "source.repository", spec.source_repository, base),
                     "jobs": list(spec.source_jobs), "machines": list(spec.machines)}
    out["target"] = {"repository": _path_text(spec, "target.repository", spec.target_repository, base)}
    if spec.target_s3 is not None:
        out["target"] = _s3_target(spec.target_s3)
    if spec.target_mover:
        out["target"]["mover"] = spec.target_mover
    s = spec.schedule
    schedule: dict[str, Any] = {}
    if spec.mode != "immediate":
        if s.every is not None:
            schedule["every"] = jt.fmt_duration(s.every)
        else:
            schedule["daily_at"] = s.daily_at or DEFAULT_DAILY_AT
        if s.days:
            schedule["days"] = list(s.days)
    if s.window:
        schedule["window"] = window_value(s.window)
    if s.rpo is not None:
        schedule["rpo"] = jt.fmt_duration(s.rpo)
    if schedule:
        out["schedule"] = schedule
    out["retention"] = _retention_dict(spec.retention)
    st = spec.storage
    out["storage"] = {"compression": st.compression, "health_check": st.health_check,
                      "compact": st.compact}
    if st.encryption:
        out["storage"]["encryption"] = True
    if st.password_env:
        out["storage"]["password_env"] = st.password_env
    if st.password_file:
        out["storage"]["password_file"] = _path_text(spec, "storage.password_file",
                                                     st.password_file, base)
    if st.password_command:
        out["storage"]["password_command"] = st.password_command
    if st.immutable_days:
        out["storage"]["immutable_days"] = st.immutable_days
    tr = spec.transport
    out["transport"] = {"wan_acceleration": tr.wan_acceleration, "parallel_tasks": tr.parallel_tasks,
                        "rate_limit": jt.fmt_rate(tr.rate_limit), "retries": tr.retries,
                        "retry_wait": jt.fmt_duration(tr.retry_wait)}
    if spec.inventory is not None:
        inv = {k: v for k, v in spec.inventory.items() if v is not None}
        if isinstance(inv.get("timeout"), (int, float)):
            inv["timeout"] = jt.fmt_duration(inv["timeout"])
        out["inventory"] = inv
    return out


def _write_checked(path: Path, text: str) -> JobSpec:
    """Validate `text` as the file at `path`, then replace the file atomically."""
    errors, spec = _check(text, path)
    if errors or spec is None:
        raise errors[0]
    jt.atomic_write(path, text)
    return spec


def save_job(spec: JobSpec, path: Path | str | None = None) -> JobSpec:
    """Write `spec` to `path` (default `spec.path`); returns the spec as loaded from there.

    An invalid spec raises `JobFileError` and leaves the file untouched. The file is
    rewritten whole, so comments are lost (`update_retention` keeps them).
    """
    dest = Path(path) if path is not None else spec.path
    return _write_checked(dest, jt.render(job_to_dict(spec, relative_to=dest.parent)))


def update_retention(path: Path | str, policy: RetentionPolicy) -> JobSpec:
    """Replace only the `[retention]` table (and `[retention.gfs]`) of a job file.

    Everything else, comments included, stays as it was. The new text is validated
    before it replaces the file: a bad policy, or a file with errors outside
    `[retention]`, raises `JobFileError` and the file is untouched. (Errors inside
    `[retention]` are fixed by the rewrite, so the console can repair them.)
    """
    path = Path(path)
    text = _read(path)
    block = "\n".join(jt.render_table("retention", _retention_dict(policy), 1)) + "\n"
    return _write_checked(path, jt.replace_table(text, "retention", block))


def set_enabled(path: Path | str, enabled: bool) -> JobSpec:
    """Switch a job's schedule on or off, editing only the `enabled` line."""
    path = Path(path)
    text = jt.set_top_level_key(_read(path), "enabled", "true" if enabled else "false")
    return _write_checked(path, text)


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
