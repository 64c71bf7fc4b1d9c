"""The stream between the source and target data movers.

A framed, versioned protocol: every frame is `type (1 byte) | length (4 bytes)
| payload`. Control frames carry JSON; block frames a small binary header plus
the stored (compressed) payload. The same frames travel over an in-process
channel (two bounded queues of encoded frames, so `transferred` counts the
same bytes as on a socket) or over TCP to `ferry mover`.
"""

from __future__ import annotations

import json
import queue
import socket
import struct
import time
from dataclasses import dataclass

PROTOCOL_VERSION = 1
_HEAD = struct.Struct("<BI")
_BLOCK = struct.Struct("<HQIB16s")  # disk index, block, raw length, flags, digest
STATE_ENTRY = struct.Struct("<HQ16s")  # disk index, block, digest of the target's latest point

# frame types
HELLO, BEGIN, DIGESTS, HAVE, BLOCK, STATE, COMMIT, DONE, ERROR, ABORT, BYE = range(1, 12)
RETAIN, CHECK = 12, 13
NAMES = {v: k for k, v in dict(HELLO=HELLO, BEGIN=BEGIN, DIGESTS=DIGESTS, HAVE=HAVE, BLOCK=BLOCK,
                                STATE=STATE, COMMIT=COMMIT, DONE=DONE, ERROR=ERROR, ABORT=ABORT,
                                BYE=BYE, RETAIN=RETAIN, CHECK=CHECK).items()}


class StreamError(Exception):
    """The peer went away, or spoke something this side does not understand."""


@dataclass
class Frame:
    type: int
    payload: bytes

    def json(self) -> dict:
        return json.loads(self.payload)


def encode(ftype: int, payload: bytes) -> bytes:
    return _HEAD.pack(ftype, len(payload)) + payload


def encode_json(ftype: int, obj: dict) -> bytes:
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


def decode_block(payload: bytes) -> tuple[int, int, int, int, bytes, memoryview]:
    disk, block, raw, flags, digest = _BLOCK.unpack_from(payload, 0)
    return disk, block, raw, flags, digest, memoryview(payload)[_BLOCK.size:]


class Endpoint:
    """One side of a stream: send encoded frames, receive Frames. Counts bytes sent."""

    sent: int = 0
    busy: float = 0.0  # seconds spent blocked in send (the 'stream' stage of the bottleneck)

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def recv(self, timeout: float | None = None) -> Frame:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def send_json(self, ftype: int, obj: dict) -> None:
        self.send(encode_json(ftype, obj))

    def expect(self, ftype: int, timeout: float | None = None) -> Frame:
        f = self.recv(timeout)
        if f.type == ERROR:
            raise StreamError(f.json().get("message", "target mover failed"))
        if f.type != ftype:
            raise StreamError(f"expected {NAMES.get(ftype)}, got {NAMES.get(f.type, f.type)}")
        return f


class QueueEndpoint(Endpoint):
    """In-process side: frames go through bounded queues (backpressure like a socket)."""

    def __init__(self, out: queue.Queue, inbox: queue.Queue):
        self.out, self.inbox = out, inbox
        self.sent, self.busy = 0, 0.0

    def send(self, data: bytes) -> None:
        t0 = time.perf_counter()
        self.out.put(data)
        self.busy += time.perf_counter() - t0
        self.sent += len(data)

    def recv(self, timeout: float | None = None) -> Frame:
        try:
            data = self.inbox.get(timeout=timeout)
        except queue.Empty:
            raise StreamError("timed out waiting for the peer") from None
        if data is None:
            raise StreamError("peer closed the stream")
        ftype, n = _HEAD.unpack_from(data, 0)
        return Frame(ftype, data[_HEAD.size:_HEAD.size + n])

    def close(self) -> None:
        self.out.put(None)


def pipe(depth: int = 16) -> tuple[QueueEndpoint, QueueEndpoint]:
    """Two connected in-process endpoints (source side, target side)."""
    a: queue.Queue = queue.Queue(depth)
    b: queue.Queue = queue.Queue(depth)
    return QueueEndpoint(a, b), QueueEndpoint(b, a)


class SocketEndpoint(Endpoint):
    """A TCP side of the stream (for `ferry mover` on the target host)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sent, self.busy = 0, 0.0
        self._file = sock.makefile("rb", buffering=1 << 20)

    @classmethod
    def connect(cls, address: str, timeout: float = 10.0) -> SocketEndpoint:
        host, _, port = address.rpartition(":")
        try:
            sock = socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout)
        except (OSError, ValueError) as exc:
            raise StreamError(f"cannot reach target mover {address}: {exc}") from None
        sock.settimeout(None)
        return cls(sock)

    def send(self, data: bytes) -> None:
        t0 = time.perf_counter()
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise StreamError(f"stream to target mover broke: {exc}") from None
        self.busy += time.perf_counter() - t0
        self.sent += len(data)

    def recv(self, timeout: float | None = None) -> Frame:
        self.sock.settimeout(timeout)
        try:
            head = self._file.read(_HEAD.size)
            if len(head) < _HEAD.size:
                raise StreamError("peer closed the stream")
            ftype, n = _HEAD.unpack(head)
            payload = self._file.read(n)
            if len(payload) < n:
                raise StreamError("peer closed the stream mid-frame")
        except TimeoutError:
            raise StreamError("timed out waiting for the peer") from None
        except OSError as exc:
            raise StreamError(f"stream broke: {exc}") from None
        return Frame(ftype, payload)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
