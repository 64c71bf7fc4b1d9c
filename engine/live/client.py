"""Finding, asking and attaching to live sessions from any process.

`list_sessions(dirs)` reads the state folders; a session whose process is gone
(pid + start time no longer match) is "interrupted", never "running". A live
one is asked for a fresh snapshot over its socket (1 s), falling back to the
state file. `request` sends hold / resume / stop; `Attachment` streams events.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine import events as ev
from engine.errors import FerryError
from engine.live import codec, paths
from engine.live.publisher import STATE_FILE
from engine.live.server import read_line
from engine.live.state import replay

ASK_WAIT = 1.0
MAX_STATE_FILE = 16 << 20


class LiveError(FerryError):
    """A session could not be reached or refused the request: one line."""


@dataclass
class SessionInfo:
    """A published run as another process sees it."""
    folder: Path
    snapshot: dict[str, Any]
    alive: bool
    machines: list[dict[str, Any]] = field(default_factory=list)

    @property
    def job(self) -> str:
        return str(self.snapshot.get("job", ""))

    @property
    def session(self) -> str:
        return str(self.snapshot.get("session", ""))

    @property
    def job_file(self) -> str:
        return str(self.snapshot.get("job_file", ""))

    @property
    def socket(self) -> str:
        return str(self.snapshot.get("socket", ""))

    @property
    def state(self) -> str:
        return "running" if self.alive else "interrupted"

    def to_json(self) -> dict[str, Any]:
        """CONTRACT `ferry sessions --json`, one session."""
        s = self.snapshot
        control = c if isinstance(c := s.get("control"), dict) else {}
        return {"job": self.job, "session": self.session, "pid": s.get("pid", 0),
                "started_by": s.get("started_by", ""), "started": s.get("started", ""),
                "updated": s.get("updated", ""), "state": self.state,
                "job_file": self.job_file,
                "held_by": control.get("held_by", "") if control.get("held") else "",
                "machines": [{"machine": m.get("machine", ""), "state": m.get("state", ""),
                              "held_by": m.get("held_by", ""), "kind": m.get("kind", ""),
                              "total": m.get("total", 0), "processed": m.get("processed", 0),
                              "read": m.get("read", 0), "transferred": m.get("transferred", 0),
                              "message": m.get("message", "")}
                             for m in self.machines if isinstance(m, dict)]}


def read_state(folder: Path) -> dict[str, Any] | None:
    path = folder / STATE_FILE
    try:
        if path.stat().st_size > MAX_STATE_FILE:
            return None
        snap = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return snap if isinstance(snap, dict) and isinstance(snap.get("job"), str) else None


def _connect(name: str, wait: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(wait)
    try:
        sock.connect("\0" + name)
    except OSError:
        sock.close()
        raise
    return sock


def ask(name: str, request: dict[str, Any], wait: float = ASK_WAIT) -> dict[str, Any]:
    """One request to a session's socket; its answer (raises OSError/CodecError)."""
    with _connect(name, wait) as sock:
        sock.sendall(codec.encode(request))
        return codec.decode_line(read_line(sock, codec.MAX_LINE))


def list_sessions(dirs: Iterable[Path], fresh: bool = True) -> list[SessionInfo]:
    """Every session published in `dirs`, live or interrupted, oldest first."""
    out: list[SessionInfo] = []
    seen: set[Path] = set()
    for d in dirs:
        try:
            folders = sorted(p for p in Path(d).iterdir() if p.is_dir())
        except OSError:
            continue
        for folder in folders:
            real = folder.resolve()
            if real in seen:
                continue
            seen.add(real)
            snap = read_state(folder)
            if snap is None:
                continue
            pid = p if isinstance(p := snap.get("pid"), int) else 0
            start = st if isinstance(st := snap.get("pid_start"), int) else None
            alive = paths.is_alive(pid, start)
            if alive and fresh and isinstance(snap.get("socket"), str):
                try:
                    answer = ask(snap["socket"], {"op": "snapshot"})
                    if isinstance(answer.get("snapshot"), dict):
                        snap = {**answer["snapshot"], "updated": snap.get("updated", "")}
                except (OSError, codec.CodecError):
                    alive = paths.is_alive(pid, start)  # it may have just ended
            machines = ms if isinstance(ms := snap.get("machines"), list) else []
            out.append(SessionInfo(folder, snap, alive, machines))
    out.sort(key=lambda s: str(s.snapshot.get("started", "")))
    return out


def control(info: SessionInfo, op: str, machine: str = "", by: str = "operator") -> None:
    """Send hold / resume / stop to a live session; LiveError with one line otherwise."""
    if not info.alive:
        raise LiveError(f"{info.job}: session {info.session} was interrupted "
                        f"(its process is gone)")
    try:
        answer = ask(info.socket, {"op": op, "machine": machine, "by": by}, wait=5.0)
    except (OSError, codec.CodecError) as exc:
        raise LiveError(f"{info.job}: session {info.session} did not answer ({exc})") from None
    if not answer.get("ok"):
        raise LiveError(f"{info.job}: {str(answer.get('error', 'refused'))[:300]}")


class Attachment:
    """A stream of a live session's events: its snapshot replayed, then what happens.

    `events()` yields decoded events until the run ends or the connection drops;
    `close()` (any thread) ends it.
    """

    def __init__(self, info: SessionInfo, wait: float = ASK_WAIT):
        self.info = info
        self.sock = _connect(info.socket, wait)
        self.sock.sendall(codec.encode({"op": "attach"}))
        self.sock.settimeout(None)
        self.ended = False  # the run finished (not merely the connection dropped)
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    def events(self) -> Iterator[ev.Event]:
        buf = bytearray()
        try:
            while not self._closed.is_set():
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    return
                buf += chunk
                while b"\n" in buf:
                    cut = buf.index(b"\n")
                    line, buf = bytes(buf[:cut]), buf[cut + 1:]
                    yield from self._message(codec.decode_line(line))
                    if self.ended:
                        return
                if len(buf) > codec.MAX_LINE:
                    raise codec.CodecError("line too long")
        except OSError:
            return

    def _message(self, msg: dict[str, Any]) -> list[ev.Event]:
        if isinstance(msg.get("snapshot"), dict):
            return replay(msg["snapshot"])
        if msg.get("end"):
            self.ended = True
            return []
        out = []
        for item in msg.get("events") or []:
            if isinstance(item, dict):
                out.append(codec.from_dict(item))
        return out


class RemoteControl:
    """The `RunControl` surface for a session running in another process.

    Reads (held, stopped) come from the session's own events, fed in by the
    watcher through `observe`; actions go over the socket.
    """

    def __init__(self, info: SessionInfo):
        self.info = info
        self._held = False
        self.held_by = ""
        self._stopped = False
        self.held_machines: dict[str, str] = {}

    @property
    def held(self) -> bool:
        return self._held

    @property
    def stopped(self) -> bool:
        return self._stopped

    def observe(self, event: ev.Event) -> None:
        if not isinstance(event, ev.OperatorAction):
            return
        if event.action == "hold":
            if event.machine:
                self.held_machines[event.machine] = event.by
            else:
                self._held, self.held_by = True, event.by
        elif event.action == "resume":
            if event.machine:
                self.held_machines.pop(event.machine, None)
            else:
                self._held, self.held_by = False, ""
                self.held_machines.clear()
        elif event.action == "stop" and not event.machine:
            self._stopped = True

    def hold(self, by: str = "operator", machine: str | None = None) -> None:
        control(self.info, "hold", machine or "", by)
        if not machine:
            self._held, self.held_by = True, by

    def resume(self, machine: str | None = None) -> None:
        control(self.info, "resume", machine or "")
        if not machine:
            self._held, self.held_by = False, ""

    def stop(self, reason: str = "operator", machine: str | None = None) -> None:
        by = "operator" if reason in ("operator", "stopped by operator") else reason
        control(self.info, "stop", machine or "", by)
        if not machine:
            self._stopped = True
