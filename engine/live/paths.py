"""Where live sessions are kept, and who a session's process is.

The state folder sits next to the job files (`<jobs folder>/.ferry/sessions/`),
so `ferry sessions --jobs DIR` and a console on DIR find every run of DIR's jobs;
when that folder is not writable, under the target repository's `.ferry/`
(which `ferry sessions` also looks in).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.jobs.schema import JobSpec

SESSIONS = Path(".ferry") / "sessions"


def jobs_sessions_dir(jobs_dir: Path) -> Path:
    return Path(jobs_dir) / SESSIONS


def target_sessions_dir(spec: JobSpec) -> Path:
    return Path(spec.target.repository) / SESSIONS


def publish_dir(spec: JobSpec) -> Path:
    """The folder a run of `spec` publishes its sessions in (created)."""
    candidates = []
    path = getattr(spec, "path", None)
    if path:
        candidates.append(jobs_sessions_dir(Path(path).resolve().parent))
    candidates.append(target_sessions_dir(spec))
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK | os.X_OK):
                return folder
        except OSError:
            continue
    raise OSError(f"no writable folder for the live session (tried {candidates[-1]})")


def search_dirs(jobs_dir: Path, specs: Iterable[JobSpec]) -> list[Path]:
    """Every folder where sessions of the jobs of `jobs_dir` may be published."""
    out = [jobs_sessions_dir(jobs_dir)]
    for spec in specs:
        d = target_sessions_dir(spec)
        if d not in out:
            out.append(d)
    return out


def process_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc), None when it is gone.

    With the pid it names one process for good: a pid reused by a later process
    has another start time, so a dead run is never taken for a live one.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    try:
        return int(stat.rsplit(")", 1)[1].split()[19])
    except (IndexError, ValueError):
        return None


def is_alive(pid: int, start: int | None) -> bool:
    return pid > 0 and start is not None and process_start(pid) == start


def socket_name(session: str) -> str:
    """The abstract Unix socket name of a session (no file, gone with its process)."""
    return f"ferry-live/{os.getuid()}/{session}"
