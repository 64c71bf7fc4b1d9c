"""A run publishing itself: state folder, snapshot file, journal, control socket.

`<folder>/<session>/state.json` is rewritten (temp + rename, no fsync: it is
runtime state) at most every 0.5 s and only when something changed;
`journal.jsonl` gets every event but progress, appended in batches by the same
writer thread (capped at 32 MiB). Nobody watching costs one dict update per
event and a small file write every half second. When the run ends the folder
goes away and its journal is kept next to the job's history
(`<history folder>/logs/<session>.jsonl`) as the session's log.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import events as ev
from engine.copy.control import RunControl
from engine.history import history_path
from engine.live import codec, paths
from engine.live.server import ControlServer, Watcher
from engine.live.state import LiveState
from engine.units import now as wall_now
from engine.units import rfc3339

if TYPE_CHECKING:
    from engine.jobs.schema import JobSpec

log = logging.getLogger("ferry.live")

WRITE_EVERY = 0.5
MAX_JOURNAL = 32 << 20
STATE_FILE, JOURNAL_FILE = "state.json", "journal.jsonl"


def write_json(path: Path, obj: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, separators=(",", ":")))
    os.replace(tmp, path)


def log_path(spec: JobSpec, session: str) -> Path:
    """Where a finished session's journal (its log) is kept."""
    return history_path(spec).parent / "logs" / f"{session}.jsonl"


class Publisher:
    """Publishes one session; `push` is the sink the runner's events go through."""

    def __init__(self, spec: JobSpec, session: str, control: RunControl, started_by: str,
                 folder: Path | None = None):
        self.spec = spec
        self.control = control
        self.folder = (folder or paths.publish_dir(spec)) / session
        self.folder.mkdir(parents=True, exist_ok=False)
        os.chmod(self.folder, 0o700)
        pid = os.getpid()
        self.state = LiveState({
            "job": spec.name, "session": session, "job_file": str(Path(spec.path).resolve())
            if getattr(spec, "path", None) else "", "pid": pid,
            "pid_start": paths.process_start(pid), "started_by": started_by,
            "started": rfc3339(wall_now()), "socket": paths.socket_name(session),
            "state": "running"})
        self.watchers: list[Watcher] = []
        self._journal: list[bytes] = []
        self._journal_size = 0
        self._written = -1
        self._stop = threading.Event()
        self.server = ControlServer(self.state.head["socket"], control,
                                    lambda: set(self.state.machines), self.snapshot,
                                    self._attach, self._detach)
        self._write()
        self.writer = threading.Thread(target=self._writer, name="ferry-live-writer",
                                       daemon=True)
        self.writer.start()

    # ---- the sink ---------------------------------------------------------------------------
    def push(self, event: ev.Event) -> None:
        stamp = "" if isinstance(event, ev.TaskProgress) else rfc3339(wall_now()) or ""
        with self.state.lock:
            self.state.apply(event, stamp)
            if stamp:
                self._journal.append(codec.encode({"at": stamp, **codec.to_dict(event)}))
            for w in self.watchers:
                w.offer(event)

    def snapshot(self) -> dict[str, Any]:
        return self.state.snapshot(log=True)

    def _attach(self, watcher: Watcher) -> dict[str, Any]:
        with self.state.lock:  # no event between the snapshot and the stream is lost
            self.watchers.append(watcher)
            return self.state.snapshot(log=True)

    def _detach(self, watcher: Watcher) -> None:
        with self.state.lock:
            if watcher in self.watchers:
                self.watchers.remove(watcher)

    # ---- the writer -------------------------------------------------------------------------
    def _writer(self) -> None:
        while not self._stop.wait(WRITE_EVERY):
            self._write()

    def _write(self) -> None:
        try:
            with self.state.lock:
                lines, self._journal = self._journal, []
                version = self.state.version
                snap = self.state.snapshot() if version != self._written else None
            if lines and self._journal_size < MAX_JOURNAL:
                data = b"".join(lines)
                with open(self.folder / JOURNAL_FILE, "ab") as f:
                    f.write(data)
                self._journal_size += len(data)
            if snap is not None:
                snap["updated"] = rfc3339(wall_now())
                write_json(self.folder / STATE_FILE, snap)
                self._written = version
        except OSError as exc:  # a full disk must not stop the copy
            log.warning("live session state not written: %s", exc)

    # ---- the end ----------------------------------------------------------------------------
    def close(self) -> None:
        """The run is over: tell watchers, stop the socket, keep the journal as the log."""
        self._stop.set()
        self.writer.join(timeout=5)
        self._write()
        with self.state.lock:
            watchers = list(self.watchers)
        for w in watchers:
            w.end()
        self.server.close()
        journal = self.folder / JOURNAL_FILE
        try:
            if journal.exists():
                dest = log_path(self.spec, self.state.head["session"])
                dest.parent.mkdir(parents=True, exist_ok=True)
                move(journal, dest)
        except OSError as exc:
            log.warning("session log not kept: %s", exc)
        remove_folder(self.folder)


def move(src: Path, dest: Path) -> None:
    """A rename, or shutil's copy and delete across file systems (shutil, with bz2 and
    lzma, is imported only then: ~1.5 ms of every run's start-up otherwise)."""
    try:
        os.replace(src, dest)
    except OSError:
        import shutil

        shutil.move(str(src), dest)


def remove_folder(folder: Path) -> None:
    """Remove a state folder of plain files (shutil.rmtree for anything else), ignoring
    errors as rmtree(ignore_errors=True) does."""
    try:
        for entry in os.scandir(folder):
            os.unlink(entry.path)  # a sub-folder raises: rmtree below
        os.rmdir(folder)
    except OSError:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
