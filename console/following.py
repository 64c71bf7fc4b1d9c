"""Runs of other processes: the daemon's, a `ferry run`'s, a console's that hung up.

A scan each second (`FerryConsole.scan_live`, a thread worker) lists the live sessions
of the jobs' state folders; each one not followed yet is attached to and shown like the
console's own run (`console.remote_run.follow`); one whose process is gone is said once.
The App owns the state; this reads it and calls back, on the UI thread.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from console.run_session import RunSession
from engine.jobs.load import JobSpec
from engine.live.client import SessionInfo

if TYPE_CHECKING:
    from console.app import FerryConsole


class Following:
    """The sessions of other processes one console follows (`app.following`)."""

    def __init__(self, app: FerryConsole) -> None:
        self.app = app
        self.seen: set[str] = set()  # sessions followed, or said to be interrupted

    def scan(self) -> list[SessionInfo] | None:
        """Every job's live sessions (in a worker thread); None when the folder is broken."""
        specs = [e.spec for e in list(self.app.store.jobs.values()) if e.spec is not None]
        try:
            return self.app.backend.live_sessions(specs)
        except Exception:  # noqa: BLE001 - a broken state folder must not break the console
            return None

    def running_elsewhere(self, spec: JobSpec) -> list[SessionInfo]:
        try:
            return self.app.backend.live_sessions([spec])
        except Exception:  # noqa: BLE001
            return []

    def key_of(self, info: SessionInfo) -> str | None:
        jobs = self.app.store.jobs
        for key, entry in jobs.items():
            if info.job_file and str(entry.path.resolve()) == info.job_file:
                return key
        return next((k for k, e in jobs.items() if e.name == info.job), None)

    def follow_new(self, infos: list[SessionInfo]) -> None:
        """Attach to every live session of another process not followed yet."""
        from console.remote_run import follow

        app = self.app
        for info in infos:
            if not info.alive and info.session not in self.seen:
                self.seen.add(info.session)  # said once
                app.notify(f"{info.job}: the run started {info.snapshot.get('started', '?')} "
                           f"by {info.snapshot.get('started_by', '?')} was interrupted (its "
                           "process is gone); its next run records it in the history",
                           title="Interrupted", severity="warning", timeout=15)
                continue
            if not info.alive or info.session in self.seen or \
                    info.snapshot.get("pid") == os.getpid():
                continue
            key = self.key_of(info)
            if key is None:
                continue
            current = app.sessions.get(key)
            if current is not None and current.active:
                continue
            try:
                attachment = app.backend.attach(info)
            except OSError:
                continue  # it may have just ended; the next scan tells
            control = app.backend.remote_control(info)
            entry = app.jobs.get(key)
            session = RunSession(key, entry.spec if entry else None, control, remote=info)
            app.sessions[key] = session
            app.store.finished.pop(key, None)
            self.seen.add(info.session)
            follow(session, attachment, control)
            app.job_changed(key)

    def ended(self, key: str, session: RunSession) -> None:
        """A followed run ended: its status stays shown, its new points are read."""
        app = self.app
        if session.model.status is not None:
            app.store.finished[key] = session.model.status
        entry = app.jobs.get(key)
        if entry is not None and entry.spec is not None:
            app.load_job_data(key, entry.spec)
