"""Dead runs: a session whose process is gone is recorded as "interrupted".

The next run of the same job (holding the job lock, so nobody else does it at
the same time) records each such session in the job's history — its machines'
last known state, the unfinished ones Failed "interrupted" — keeps its journal
as the log and removes its state folder.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from engine.history import History, history_path
from engine.live import paths
from engine.live.client import SessionInfo, list_sessions
from engine.live.publisher import JOURNAL_FILE, log_path, move, remove_folder
from engine.model import Status

if TYPE_CHECKING:
    from engine.jobs.schema import JobSpec

log = logging.getLogger("ferry.live")

DONE = tuple(Status)


def _time(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text))
    except ValueError:
        return None


def interrupted_message(info: SessionInfo) -> str:
    s = info.snapshot
    return (f"interrupted: the process (pid {s.get('pid', '?')}, started by "
            f"{s.get('started_by', '?')}) ended before the run finished")


def record_interrupted(spec: JobSpec, info: SessionInfo) -> None:
    s = info.snapshot
    started = _time(s.get("started"))
    last = _time(s.get("updated")) or started
    if started is None or last is None:
        return
    tasks, tot = [], {"processed": 0, "read": 0, "transferred": 0, "written": 0}
    for m in info.machines:
        if not isinstance(m, dict) or not isinstance(m.get("machine"), str):
            continue
        done = m.get("state") in DONE
        row = {"machine": m["machine"], "status": m["state"] if done else Status.FAILED,
               "kind": str(m.get("kind", "")), "point": str(m.get("point", "")),
               "message": str(m.get("message", "")) if done else "interrupted",
               "duration_s": 0.0, "held_s": 0.0, "bottleneck": "", "attempts": 1}
        for k in tot:
            v = m.get(k, 0)
            row[k] = v if isinstance(v, int) else 0
            tot[k] += row[k]
        tasks.append(row)
    session = {"id": info.session, "job": spec.name, "status": Status.FAILED,
               "started": started.isoformat(), "finished": last.isoformat(),
               "duration_s": max(0.0, (last - started).total_seconds()),
               "message": interrupted_message(info), "dry_run": 0, **tot}
    History(history_path(spec)).record(session, tasks)


def reap(spec: JobSpec) -> list[str]:
    """Record and clear the interrupted sessions of `spec`'s job; their ids."""
    dirs: list[Path] = []
    if getattr(spec, "path", None):
        dirs.append(paths.jobs_sessions_dir(Path(spec.path).resolve().parent))
    dirs.append(paths.target_sessions_dir(spec))
    done = []
    for info in list_sessions(dirs, fresh=False):
        if info.alive or info.job != spec.name:
            continue
        try:
            known = {r["id"] for r in History(history_path(spec)).sessions(spec.name, 1000)}
            if info.session not in known:
                record_interrupted(spec, info)
            journal = info.folder / JOURNAL_FILE
            if journal.exists():
                dest = log_path(spec, info.session)
                dest.parent.mkdir(parents=True, exist_ok=True)
                move(journal, dest)
        except Exception as exc:  # noqa: BLE001 - a damaged leftover must not stop the run
            log.warning("interrupted session %s not recorded: %s", info.session, exc)
        remove_folder(info.folder)
        done.append(info.session)
    return done
