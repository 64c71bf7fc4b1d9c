"""The session's Unix socket: control requests and attached watchers.

Abstract-namespace socket (Linux): no file to go stale, it vanishes with the
process, and no path-length limit. Only the session's own user and root may
connect (SO_PEERCRED). A connection sends one request line (bounded, 5 s):

    {"op": "snapshot"}                       -> {"ok": true, "snapshot": {...}}
    {"op": "hold"|"resume"|"stop", "machine": "", "by": "operator"}
                                             -> {"ok": true} | {"ok": false, "error": "..."}
    {"op": "attach"}                         -> {"snapshot": {...}} then {"events": [...]}
                                                lines, {"end": true} when the run is over

An attached watcher gets its events batched every 0.1 s with progress coalesced
to the newest per machine, so a slow console never slows the copy; one that falls
more than MAX_PENDING events behind is dropped (it can attach again).
"""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

from engine import events as ev
from engine.copy.control import RunControl
from engine.live import codec

log = logging.getLogger("ferry.live")

MAX_REQUEST = 64 << 10
REQUEST_WAIT = 5.0
BATCH_EVERY = 0.1
MAX_PENDING = 50_000


def peer_uid(conn: socket.socket) -> int:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    uid: int = struct.unpack("3i", creds)[1]
    return uid


def read_line(conn: socket.socket, limit: int = MAX_REQUEST) -> bytes:
    """One newline-terminated line (without it); bounded in size (the caller sets the wait)."""
    buf = bytearray()
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
        if b"\n" in buf:
            return bytes(buf[:buf.index(b"\n")])
        if len(buf) > limit:
            raise codec.CodecError("request too long")


class Watcher:
    """One attached client: a coalescing queue drained by its own sender thread."""

    def __init__(self, conn: socket.socket):
        self.conn = conn
        self.cond = threading.Condition()
        self.pending: list[ev.Event] = []  # encoded by the sender, outside the engine's path
        self.progress_at: dict[str, int] = {}
        self.closed = False
        self.ended = False

    def offer(self, event: ev.Event) -> None:
        with self.cond:
            if self.closed:
                return
            if isinstance(event, ev.TaskProgress):
                at = self.progress_at.get(event.machine)
                if at is not None:
                    self.pending[at] = event
                    return
                self.progress_at[event.machine] = len(self.pending)
            elif machine := getattr(event, "machine", ""):
                self.progress_at.pop(machine, None)  # keep order around it
            if len(self.pending) >= MAX_PENDING:
                self.closed = True  # too slow: drop it rather than grow without bound
            else:
                self.pending.append(event)
            if isinstance(event, ev.RunFinished):
                self.ended = True
                self.cond.notify_all()

    def end(self) -> None:
        with self.cond:
            self.ended = True
            self.cond.notify_all()

    def serve(self, first: dict[str, Any]) -> None:
        try:
            self.conn.sendall(codec.encode(first))
            while True:
                with self.cond:
                    if not self.ended and not self.closed:
                        self.cond.wait(BATCH_EVERY)
                    batch, self.pending = self.pending, []
                    self.progress_at.clear()
                    done = self.ended or self.closed
                events = [codec.to_dict(e) for e in batch]
                if events:
                    self.conn.sendall(codec.encode({"events": events}))
                if done:
                    if self.ended:
                        self.conn.sendall(codec.encode({"end": True}))
                    return
        except OSError:
            pass
        finally:
            with self.cond:
                self.closed = True
            self.conn.close()


class ControlServer:
    """Accepts connections on the session's socket until `close()`."""

    def __init__(self, name: str, control: RunControl, machines: Callable[[], set[str]],
                 snapshot: Callable[[], dict[str, Any]],
                 attach: Callable[[Watcher], dict[str, Any]],
                 detach: Callable[[Watcher], None]):
        self.name = name
        self.control = control
        self.machines = machines
        self.snapshot = snapshot
        self.attach, self.detach = attach, detach
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind("\0" + name)
        self.sock.listen(16)
        self.sock.settimeout(0.5)
        self._closing = threading.Event()
        self.thread = threading.Thread(target=self._accept, name="ferry-live-socket",
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self._closing.set()
        try:  # a connection wakes the accept() at once, instead of its 0.5 s poll running out
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as wake:
                wake.settimeout(0.5)
                wake.connect("\0" + self.name)
        except OSError:
            pass
        self.thread.join(timeout=2)
        self.sock.close()

    def _accept(self) -> None:
        me = os.getuid()
        while not self._closing.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                if peer_uid(conn) not in (me, 0):
                    conn.close()
                    continue
            except OSError:
                conn.close()
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True,
                             name="ferry-live-conn").start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(REQUEST_WAIT)
            request = codec.decode_line(read_line(conn))
            op = request.get("op")
            if op == "attach":
                conn.settimeout(30)  # a watcher that stops reading for 30 s is dropped
                watcher = Watcher(conn)
                first = self.attach(watcher)
                try:
                    watcher.serve({"snapshot": first})
                finally:
                    self.detach(watcher)
                return
            reply = self.answer(op, request)
            conn.sendall(codec.encode(reply))
        except (OSError, codec.CodecError) as exc:
            log.debug("live request refused: %s", exc)
        finally:
            conn.close()

    def answer(self, op: object, request: dict[str, Any]) -> dict[str, Any]:
        if op == "snapshot":
            return {"ok": True, "snapshot": self.snapshot()}
        if op not in ("hold", "resume", "stop"):
            return {"ok": False, "error": f"unknown request {str(op)[:40]!r}"}
        try:
            machine = codec.text(request.get("machine", ""), "machine")
            by = codec.text(request.get("by", "") or "operator", "by")[:200]
        except codec.CodecError as exc:
            return {"ok": False, "error": str(exc)}
        if machine and machine not in self.machines():
            return {"ok": False, "error": f"no machine {machine!r} in this run"}
        if op == "hold":
            self.control.hold(by, machine or None)
        elif op == "resume":
            self.control.resume(machine or None)
        else:
            reason = "stopped by operator" if by == "operator" else by
            self.control.stop(reason, machine or None)
        return {"ok": True}
