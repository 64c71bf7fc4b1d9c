"""The stream between the source and target data movers.

A framed, versioned protocol: every frame is `type (1 byte) | length (4 bytes)
| payload`. Control frames carry JSON; block frames a small binary header plus
the stored (compressed) payload. The same frames travel over an in-process
channel (two bounded queues of encoded frames, so `transferred` counts the
same bytes as on a socket) or over TCP to `ferry mover`.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import select
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.errors import FerryError

PROTOCOL_VERSION = 1
_HEAD = struct.Struct("<BI")
_BLOCK = struct.Struct("<HQIB16s")  # disk index, block, raw length, flags, digest
STATE_ENTRY = struct.Struct("<HQ16s")  # disk index, block, digest of the target's latest point

# frame types
HELLO, BEGIN, DIGESTS, HAVE, BLOCK, STATE, COMMIT, DONE, ERROR, ABORT, BYE = range(1, 12)
RETAIN, CHECK = 12, 13
SWEEP = 14  # background retention of one machine: expired flags and the files they freed
PROVE = 15  # a remote target proves it holds a sample of blocks (stored payloads)
HISTORY, MAINTAIN = 16, 17  # the job stream of a remote run (engine.copy.jobsession)
REPAIR = 18  # damaged blocks of the target re-fetched from the source (engine/copy/repair.py)
NAMES = {v: k for k, v in dict(HELLO=HELLO, BEGIN=BEGIN, DIGESTS=DIGESTS, HAVE=HAVE, BLOCK=BLOCK,
                                STATE=STATE, COMMIT=COMMIT, DONE=DONE, ERROR=ERROR, ABORT=ABORT,
                                BYE=BYE, RETAIN=RETAIN, CHECK=CHECK, SWEEP=SWEEP,
                                PROVE=PROVE, HISTORY=HISTORY, MAINTAIN=MAINTAIN,
                                REPAIR=REPAIR).items()}
# the largest frame a source accepts from a target (a STATE answer lists every block of
# the latest point: 26 bytes each, so 1 GiB is ~40 M blocks); a mover accepts far less
# (engine.copy.frames.MAX_FRAME): a frame header is never trusted to size a buffer
SOURCE_MAX_FRAME = 1 << 30
PIPE_SIZE = 1 << 20  # pipes of `--stdio` / ssh (Linux default 64 KiB)


class StreamError(FerryError):
    """The peer went away, or spoke something this side does not understand."""


class TargetRefused(StreamError):
    """The target refused for a reason a retry cannot change (ERROR with "final")."""


def error_of(f: Frame) -> StreamError:
    """The exception an ERROR frame stands for."""
    try:
        doc = f.json()
    except ValueError:
        doc = {}
    msg = str(doc.get("message") or "target mover failed")
    return TargetRefused(msg) if doc.get("final") is True else StreamError(msg)


@dataclass
class Frame:
    """One message of a mover stream: its type and payload."""
    type: int
    # an in-process stream passes a BLOCK frame's buffer as is (a view into it)
    payload: bytes | bytearray | memoryview

    def json(self) -> dict[str, Any]:
        """The payload as a JSON object (its fields are checked where they are used)."""
        payload = self.payload
        obj = json.loads(bytes(payload) if isinstance(payload, memoryview) else payload)
        if not isinstance(obj, dict):
            raise ValueError("frame payload is not a JSON object")
        return obj


def encode(ftype: int, payload: bytes) -> bytes:
    return _HEAD.pack(ftype, len(payload)) + payload


def encode_json(ftype: int, obj: dict[str, Any]) -> bytes:
    return encode(ftype, json.dumps(obj).encode())


def encode_block(disk: int, block: int, raw: int, flags: int, digest: bytes,
                 payload: bytes) -> bytes:
    head = _BLOCK.pack(disk, block, raw, flags, digest)
    return _HEAD.pack(BLOCK, len(head) + len(payload)) + head + payload


def block_frame(disk: int, block: int, raw: int, flags: int, digest: bytes,
                payload_len: int) -> tuple[bytearray, memoryview]:
    """A BLOCK frame with room for a `payload_len`-byte payload, and the view to fill it
    through (the source mover seals straight into it)."""
    head = _BLOCK.pack(disk, block, raw, flags, digest)
    n = len(head) + payload_len
    buf = bytearray(_HEAD.size + n)
    _HEAD.pack_into(buf, 0, BLOCK, n)
    buf[_HEAD.size:_HEAD.size + len(head)] = head
    return buf, memoryview(buf)[_HEAD.size + len(head):]


def decode_block(payload: bytes | bytearray | memoryview
                 ) -> tuple[int, int, int, int, bytes, memoryview]:
    disk, block, raw, flags, digest = _BLOCK.unpack_from(payload, 0)
    return disk, block, raw, flags, digest, memoryview(payload)[_BLOCK.size:]


class Endpoint:
    """One side of a stream: send encoded frames, receive Frames. Counts bytes sent."""

    sent: int = 0
    busy: float = 0.0
    timeout: float | None = None  # default wait between frames (None = until the peer fails)  # seconds spent blocked in send (the 'stream' stage of the bottleneck)

    def send(self, data: bytes | bytearray) -> None:
        raise NotImplementedError

    def recv(self, timeout: float | None = None) -> Frame:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def send_json(self, ftype: int, obj: dict[str, Any]) -> None:
        self.send(encode_json(ftype, obj))

    def expect(self, ftype: int, timeout: float | None = None) -> Frame:
        f = self.recv(timeout)
        if f.type == ERROR:
            raise error_of(f)
        if f.type != ftype:
            raise StreamError(f"expected {NAMES.get(ftype)}, got {NAMES.get(f.type, f.type)}")
        return f


POLL = 0.1  # seconds between checks that the peer is still there


class QueueEndpoint(Endpoint):
    """In-process side: frames go through bounded queues (backpressure like a socket).

    No wait is blind: a full or empty queue is re-checked every POLL seconds
    for the peer having closed its side (a target mover thread that failed
    closes its endpoint on the way out), so one side's death wakes the other.
    `timeout` (None = until the peer fails) bounds each wait besides.
    """

    def __init__(self, out: queue.Queue[bytes | bytearray | None], inbox: queue.Queue[bytes | bytearray | None], mine: threading.Event,
                 peer: threading.Event, timeout: float | None = None):
        self.out, self.inbox = out, inbox
        self._mine, self._peer = mine, peer
        self.timeout = timeout
        self.sent, self.busy = 0, 0.0

    def send(self, data: bytes | bytearray) -> None:
        t0 = time.perf_counter()
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            if self._mine.is_set():
                raise StreamError("stream already closed")
            if self._peer.is_set():
                raise self._peer_gone()
            try:
                self.out.put(data, timeout=POLL)
                break
            except queue.Full:
                if deadline is not None and time.monotonic() >= deadline:
                    raise StreamError("timed out sending to the peer") from None
        self.busy += time.perf_counter() - t0
        self.sent += len(data)

    def _peer_gone(self) -> StreamError:
        """The peer closed: say why when its last frames include an ERROR."""
        while True:
            try:
                data = self.inbox.get_nowait()
            except queue.Empty:
                return StreamError("peer closed the stream")
            if data and _HEAD.unpack_from(data, 0)[0] == ERROR:
                return error_of(Frame(ERROR, data[_HEAD.size:]))

    def recv(self, timeout: float | None = None) -> Frame:
        limit = timeout if timeout is not None else self.timeout
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            try:
                data = self.inbox.get(timeout=POLL)
                break
            except queue.Empty:
                if self._peer.is_set() and self.inbox.empty():
                    raise StreamError("peer closed the stream") from None
                if deadline is not None and time.monotonic() >= deadline:
                    raise StreamError("timed out waiting for the peer") from None
        if data is None:
            raise StreamError("peer closed the stream")
        ftype, n = _HEAD.unpack_from(data, 0)
        if ftype == BLOCK:  # a view, not a copy: the frame is the receiver's now
            return Frame(ftype, memoryview(data)[_HEAD.size:_HEAD.size + n])
        return Frame(ftype, data[_HEAD.size:_HEAD.size + n])

    def close(self) -> None:
        self._mine.set()


def pipe(depth: int = 16, timeout: float | None = None) -> tuple[QueueEndpoint, QueueEndpoint]:
    """Two connected in-process endpoints (source side, target side)."""
    a: queue.Queue[bytes | bytearray | None] = queue.Queue(depth)
    b: queue.Queue[bytes | bytearray | None] = queue.Queue(depth)
    src_closed, dst_closed = threading.Event(), threading.Event()
    return (QueueEndpoint(a, b, src_closed, dst_closed, timeout),
            QueueEndpoint(b, a, dst_closed, src_closed, timeout))


class SocketEndpoint(Endpoint):
    """A TCP side of the stream (for `ferry mover` on the target host)."""

    FRAME_TIMEOUT = 300.0  # once a frame has begun, the rest must arrive within this

    def __init__(self, sock: socket.socket, timeout: float | None = None,
                 max_frame: int = SOURCE_MAX_FRAME):
        self.sock = sock
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _keepalive(sock)
        self.timeout = timeout
        self.max_frame = max_frame
        self.sent, self.busy = 0, 0.0
        self._head = bytearray(_HEAD.size)

    @classmethod
    def connect(cls, address: str, timeout: float = 10.0) -> SocketEndpoint:
        host, _, port = address.rpartition(":")
        try:
            sock = socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout)
        except (OSError, ValueError) as exc:
            raise StreamError(f"cannot reach target mover {address}: {exc}") from None
        sock.settimeout(None)
        return cls(sock)

    def send(self, data: bytes | bytearray) -> None:
        t0 = time.perf_counter()
        try:
            self.sock.settimeout(self.timeout or self.FRAME_TIMEOUT)
            self.sock.sendall(data)
        except TimeoutError:
            raise StreamError("timed out sending to the target mover") from None
        except OSError as exc:
            raise StreamError(f"stream to target mover broke: {exc}") from None
        self.busy += time.perf_counter() - t0
        self.sent += len(data)

    def recv(self, timeout: float | None = None) -> Frame:
        self.sock.settimeout(timeout if timeout is not None else self.timeout)
        try:
            if not self._read_into(memoryview(self._head)):
                raise StreamError("peer closed the stream")
            ftype, n = _HEAD.unpack(self._head)
            if n > self.max_frame:
                raise StreamError(f"a frame of {n} bytes is over the limit of {self.max_frame}")
            self.sock.settimeout(self.FRAME_TIMEOUT)
            payload = read_payload(n, self._read_into)
            if payload is None:
                raise StreamError("peer closed the stream mid-frame")
        except TimeoutError:
            raise StreamError("timed out waiting for the peer") from None
        except OSError as exc:
            raise StreamError(f"stream broke: {exc}") from None
        return Frame(ftype, payload)

    def _read_into(self, view: memoryview) -> bool:
        """Fill `view` from the socket (TLS decrypts straight into it: no buffer in
        between); False when the peer closed first (part of a frame is no frame)."""
        got = 0
        while got < len(view):
            n = self.sock.recv_into(view[got:])
            if not n:
                return False
            got += n
        return True

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class FdEndpoint(Endpoint):
    """A side of the stream over two pipes: `ferry mover --stdio` (its stdin and stdout)
    and the `ssh` client running it. Non-blocking descriptors and `select`, so every
    wait is bounded like a socket's (`timeout` between frames, FRAME_TIMEOUT within)."""

    FRAME_TIMEOUT = SocketEndpoint.FRAME_TIMEOUT

    def __init__(self, rfd: int, wfd: int, timeout: float | None = None,
                 max_frame: int = SOURCE_MAX_FRAME,
                 on_close: Callable[[], None] | None = None):
        self.rfd, self.wfd = rfd, wfd
        os.set_blocking(rfd, False)
        os.set_blocking(wfd, False)
        for fd in (rfd, wfd):  # a block frame in one write, not sixteen 64 KiB ones
            try:
                fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
            except OSError:
                pass  # not a pipe (a socket, a file), or over /proc/sys/fs/pipe-max-size
        self.timeout, self.max_frame = timeout, max_frame
        self.sent, self.busy = 0, 0.0
        self._head = bytearray(_HEAD.size)
        self._on_close = on_close
        self._closed = False

    def _fill(self, view: memoryview, timeout: float | None) -> None:
        """Read exactly len(view) bytes into it (a frame's payload straight from the
        pipe: no buffer in between, nothing of the next frame read ahead)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        got = 0
        while got < len(view):
            try:
                n = os.readv(self.rfd, [view[got:]])
            except BlockingIOError:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise StreamError("timed out waiting for the peer") from None
                select.select([self.rfd], [], [], left)
                continue
            except OSError as exc:
                raise StreamError(f"stream broke: {exc}") from None
            if not n:
                raise StreamError("peer closed the stream")
            got += n

    def recv(self, timeout: float | None = None) -> Frame:
        self._fill(memoryview(self._head), timeout if timeout is not None else self.timeout)
        ftype, n = _HEAD.unpack(self._head)
        if n > self.max_frame:
            raise StreamError(f"a frame of {n} bytes is over the limit of {self.max_frame}")
        payload = read_payload(n, self._filled)
        assert payload is not None  # _fill raises when the peer closes
        return Frame(ftype, payload)

    def _filled(self, view: memoryview) -> bool:
        self._fill(view, self.FRAME_TIMEOUT)
        return True

    def send(self, data: bytes | bytearray) -> None:
        t0 = time.perf_counter()
        view = memoryview(data)
        deadline = time.monotonic() + (self.timeout or self.FRAME_TIMEOUT)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StreamError("timed out sending to the peer")
            _, ready, _ = select.select([], [self.wfd], [], left)
            if not ready:
                continue
            try:
                n = os.write(self.wfd, view)
            except BlockingIOError:
                continue
            except OSError as exc:
                raise StreamError(f"stream broke: {exc}") from None
            view = view[n:]
        self.busy += time.perf_counter() - t0
        self.sent += len(data)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._on_close is not None:
            self._on_close()


DIRECT = 16 << 20  # a payload up to this size is read straight into its own buffer


def read_payload(n: int, fill: Callable[[memoryview], bool]) -> bytearray | None:
    """A frame's `n`-byte payload, read by `fill` (False: the peer closed first). Up to
    DIRECT it goes straight into one buffer of its size; a larger one (only a target's
    STATE answer) grows as its bytes arrive, so a frame header announcing 1 GiB costs
    nothing until the peer sends it."""
    if n <= DIRECT:
        buf = bytearray(n)
        return buf if not n or fill(memoryview(buf)) else None
    out = bytearray()
    while len(out) < n:
        part = bytearray(min(DIRECT, n - len(out)))
        if not fill(memoryview(part)):
            return None
        out += part
    return out


def _keepalive(sock: socket.socket) -> None:
    """TCP keepalive: a peer host that vanished is noticed in about two minutes, so a
    wait for an answer (which may take long: a merge) is woken by its failure."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for opt, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 6)):
            if hasattr(socket, opt):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, opt), value)
    except OSError:
        pass
