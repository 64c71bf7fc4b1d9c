"""The stream endpoints read frames straight into their own buffers: frames cut at any
byte by the pipe or socket arrive whole and in order, a peer that closes mid-frame is
a StreamError, and a header announcing a huge frame costs nothing until its bytes come."""

from __future__ import annotations

import os
import resource
import socket
import threading

import pytest

from engine.copy import transport as t


def frames():
    return [t.encode(t.BLOCK, os.urandom(n)) for n in (0, 1, 4, 5, 4096, 65537, 1 << 20)] + \
        [t.encode_json(t.HELLO, {"version": 1})]


def dribble(write, data: bytes, sizes=(1, 3, 5, 7, 4093, 65536)) -> None:
    """Write `data` in pieces of changing sizes (headers split across writes too)."""
    pos, i = 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        write(data[pos:pos + n])
        pos += n
        i += 1


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as ls:
        a = socket.create_connection(ls.getsockname())
        b, _ = ls.accept()
    return a, b


def check(end: t.Endpoint, sent: list[bytes]) -> None:
    for data in sent:
        f = end.recv(timeout=10)
        assert bytes([f.type]) + len(f.payload).to_bytes(4, "little") + bytes(f.payload) == data


def test_pipe_frames_cut_anywhere_arrive_whole():
    r, w = os.pipe()
    end = t.FdEndpoint(r, os.pipe()[1], timeout=10)
    sent = frames()
    th = threading.Thread(target=lambda: (dribble(lambda b: os.write(w, b), b"".join(sent)),
                                          os.close(w)))
    th.start()
    check(end, sent)
    th.join()
    with pytest.raises(t.StreamError, match="closed"):
        end.recv(timeout=5)


def test_socket_frames_cut_anywhere_arrive_whole():
    a, b = tcp_pair()
    end = t.SocketEndpoint(b, timeout=10)
    sent = frames()
    th = threading.Thread(target=lambda: (dribble(a.sendall, b"".join(sent)), a.close()))
    th.start()
    check(end, sent)
    th.join()
    with pytest.raises(t.StreamError, match="closed"):
        end.recv(timeout=5)


@pytest.mark.parametrize("kind", ["pipe", "socket"])
def test_a_huge_announced_frame_costs_nothing_until_sent(kind):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    head = t._HEAD.pack(t.STATE, 900 << 20) + os.urandom(1000)  # then the peer goes
    if kind == "pipe":
        r, w = os.pipe()
        os.write(w, head)
        os.close(w)
        end: t.Endpoint = t.FdEndpoint(r, os.pipe()[1], timeout=10)
    else:
        a, b = tcp_pair()
        a.sendall(head)
        a.close()
        end = t.SocketEndpoint(b, timeout=10)
    with pytest.raises(t.StreamError, match="closed"):
        end.recv(timeout=5)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 100 << 10  # far below the 900 MiB announced


def test_a_mover_refuses_an_oversize_header_before_reading():
    r, w = os.pipe()
    os.write(w, t._HEAD.pack(t.BLOCK, 64 << 20))
    end = t.FdEndpoint(r, os.pipe()[1], timeout=5, max_frame=9 << 20)
    with pytest.raises(t.StreamError, match="over the limit"):
        end.recv()


def test_in_process_pipe_hands_block_frames_over_uncopied():
    """A BLOCK frame through the in-process pipe arrives as a view into the frame the
    source built (a recompressing copy sends ~1 GiB of them: a copy each cost the target
    thread ~1.5 % of the run with the GIL held); JSON frames still arrive as bytes."""
    src, dst = t.pipe(4)
    block = t.encode_block(0, 7, 1 << 20, 2, bytes(16), os.urandom(4096))
    src.send(block)
    src.send_json(t.HELLO, {"version": 1})
    f = dst.recv(timeout=5)
    assert isinstance(f.payload, memoryview) and f.payload.obj is block
    assert t.decode_block(f.payload)[:2] == (0, 7)
    assert bytes(t.decode_block(f.payload)[5]) == block[-4096:]
    hello = dst.recv(timeout=5)
    assert isinstance(hello.payload, bytes) and hello.json() == {"version": 1}
