"""`ferry mover`: a target data mover serving one repository over TCP.

Each connection is one machine's stream (HELLO ... BYE), served in its own
thread by the same `TargetMover` the in-process path uses.
"""

from __future__ import annotations

import socketserver
import sys
from pathlib import Path

from engine.copy.target import TargetMover
from engine.copy.transport import SocketEndpoint
from engine.repository.repository import Repository


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        end = SocketEndpoint(self.request)
        try:
            TargetMover(self.server.repo, end).serve()  # type: ignore[attr-defined]
        finally:
            end.close()


class MoverServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], repo: Path):
        super().__init__(address, _Handler)
        self.repo = Repository(repo)


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"--listen wants HOST:PORT, got {text!r}")
    return host or "127.0.0.1", int(port)


def serve_mover(listen: str, repo: Path) -> int:
    Path(repo).mkdir(parents=True, exist_ok=True)
    with MoverServer(parse_listen(listen), repo) as server:
        host, port = server.server_address[:2]
        print(f"ferry mover listening on {host}:{port} for {repo}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    print("ferry mover stopped", file=sys.stderr)
    return 0
