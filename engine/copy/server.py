"""`ferry mover`: a target data mover serving one repository to remote copy jobs.

Three ways in, all speaking the same frames to the same `TargetMover`:

* `--listen HOST:PORT`: TLS 1.3 with the certificate of `ferry mover init`; every
  stream starts with a HELLO carrying a job token (`ferry mover token add`), which
  limits it to its job (and, append-only, to adding points).
* `--listen HOST:PORT --plain`: no TLS, no token, loopback addresses only (tests,
  or an admin's own tunnel on the same host).
* `--stdio`: one stream on stdin/stdout, for an SSH forced command; the SSH key is
  the credential, `--job` and `--append-only` in the forced command bound it.

Every connection is hostile until its HELLO is accepted: a bounded number at once
(`--max-connections`, the rest are told so and closed), a TLS handshake and HELLO
within HELLO_TIMEOUT, then at most `--idle-timeout` seconds between frames.
Connections, sessions, points, retention actions and refusals are logged to stderr
and to `<repo>/.ferry/mover.log`.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import socketserver
import ssl
import sys
import threading
from pathlib import Path

from engine.copy import frames as fr
from engine.copy import moverauth
from engine.copy import transport as t
from engine.copy.guard import Floor
from engine.copy.target import Grant, TargetMover
from engine.repository.repository import Repository

log = logging.getLogger("ferry.mover")
HELLO_TIMEOUT = 10.0
IDLE_TIMEOUT = 600.0
MAX_CONNECTIONS = 16


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        srv: MoverServer = self.server  # type: ignore[assignment]
        sock, peer = self.request, self.client_address
        try:
            sock.settimeout(srv.hello_timeout)
            if srv.tls is not None:
                try:
                    sock = srv.tls.wrap_socket(sock, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    log.warning("refused %s: no TLS (%s)", peer[0], type(exc).__name__)
                    return
            end = t.SocketEndpoint(sock, timeout=srv.idle, max_frame=fr.MAX_FRAME)
            grant = None if srv.tls is not None else Grant(who="loopback")
            authorize = (lambda token, job: moverauth.authorize(srv.repo.path, token, job)) \
                if srv.tls is not None else None
            mover = TargetMover(srv.repo, end, remote=True, grant=grant, authorize=authorize,
                                policy=srv.floor, hello_timeout=srv.hello_timeout)
            mover.serve()
        finally:
            try:
                sock.close()
            except OSError:
                pass
            srv.release(peer)


_Request = socket.socket | tuple[bytes, socket.socket]  # socketserver's request type


def _sock(request: _Request) -> socket.socket:
    """The socket of a request (a TCP server's requests are sockets; the tuple is UDP's)."""
    return request if isinstance(request, socket.socket) else request[1]


def _host_port(address: object) -> tuple[str, int]:
    """(host, port) of an AF_INET/AF_INET6 server address (the latter has 4 fields)."""
    if not isinstance(address, tuple) or len(address) < 2:
        raise TypeError(f"not an internet address: {address!r}")
    return str(address[0]), int(address[1])


class MoverServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], repo: Path, *, tls: ssl.SSLContext | None,
                 idle: float = IDLE_TIMEOUT, max_connections: int = MAX_CONNECTIONS,
                 floor: Floor | None = None):
        self.repo = Repository(repo)
        self.tls, self.idle, self.floor = tls, idle, floor or Floor()
        self.max_connections = max_connections
        self.hello_timeout = HELLO_TIMEOUT  # TLS handshake and HELLO must be done by then
        self._count = 0
        self._lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: _Request, client_address: tuple[str, int]) -> None:
        """Refuse past the connection limit before any thread or buffer is spent."""
        with self._lock:
            full = self._count >= self.max_connections
            if not full:
                self._count += 1
        if full:
            log.warning("refused %s: %d connections already", client_address[0], self._count)
            try:
                if self.tls is None:
                    _sock(request).sendall(t.encode_json(t.ERROR, {"message": "too many connections"}))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        log.info("connection from %s", client_address[0])
        super().process_request(request, client_address)

    def release(self, peer: tuple[str, int]) -> None:
        with self._lock:
            self._count -= 1
        log.info("connection from %s closed", peer[0])

    def shutdown_request(self, request: _Request) -> None:  # the handler closes its (TLS) socket
        sock = _sock(request)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


def parse_listen(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not port.isdigit():
        raise ValueError(f"--listen wants HOST:PORT, got {text!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def setup_logging(repo: Path) -> None:
    """Mover log lines to stderr and to `<repo>/.ferry/mover.log` (what an admin needs
    after the fact: connections, sessions, points, retention, refusals)."""
    logger = logging.getLogger("ferry")
    if any(getattr(h, "_ferry_mover", False) for h in logger.handlers):
        return
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    path = Path(repo) / ".ferry" / "mover.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr),
                                       logging.FileHandler(path)]
    for h in handlers:
        h.setFormatter(fmt)
        h._ferry_mover = True  # type: ignore[attr-defined]
        logger.addHandler(h)
    logger.setLevel(logging.INFO)


def make_server(listen: str, repo: Path, *, plain: bool = False, idle: float = IDLE_TIMEOUT,
                max_connections: int = MAX_CONNECTIONS, floor: Floor | None = None
                ) -> MoverServer:
    """A mover server ready to serve (TLS unless `plain`, which is loopback only)."""
    host, port = parse_listen(listen)
    if plain:
        if not is_loopback(host):
            raise moverauth.AuthError(f"--plain serves loopback addresses only, not {host}; "
                                      f"use TLS (ferry mover init) across hosts")
        tls = None
    else:
        tls = moverauth.server_context(Path(repo))
    return MoverServer((host, port), Path(repo), tls=tls, idle=idle,
                       max_connections=max_connections, floor=floor)


def serve_mover(listen: str, repo: Path, *, plain: bool = False, idle: float = IDLE_TIMEOUT,
                max_connections: int = MAX_CONNECTIONS, floor: Floor | None = None) -> int:
    Path(repo).mkdir(parents=True, exist_ok=True)
    server = make_server(listen, repo, plain=plain, idle=idle, max_connections=max_connections,
                         floor=floor)
    setup_logging(repo)
    with server:
        host, port = _host_port(server.server_address)
        what = "plain (loopback)" if plain else f"TLS {moverauth.fingerprint(Path(repo))}"
        log.info("listening on %s:%s for %s, %s", host, port, repo, what)
        print(f"ferry mover listening on {host}:{port} for {repo}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            log.info("stopped (interrupted)")
            raise  # engine.cli.main: exit 130
    log.info("stopped")
    return 0


def serve_stdio(repo: Path, *, job: str | None = None, append_only: bool = False,
                idle: float = IDLE_TIMEOUT, floor: Floor | None = None) -> int:
    """One stream on stdin/stdout (an SSH forced command): the key is the credential."""
    Path(repo).mkdir(parents=True, exist_ok=True)
    setup_logging_file_only(repo)
    if job is not None:
        fr.name(job, "job name")
    out = sys.stdout.fileno()
    wfd = _dup_stdout(out)  # nothing else may write into the stream
    end = t.FdEndpoint(sys.stdin.fileno(), wfd, timeout=idle, max_frame=fr.MAX_FRAME)
    log.info("ssh session from %s", _ssh_peer())
    TargetMover(Repository(repo), end, remote=True, policy=floor,
                grant=Grant(job=job, append_only=append_only, who="ssh")).serve()
    return 0


def _dup_stdout(fd: int) -> int:
    """The stream's descriptor; fd 1 then points at stderr, so a stray print cannot
    corrupt the frames."""
    import os

    wfd = os.dup(fd)
    os.dup2(2, fd)
    return wfd


def _ssh_peer() -> str:
    import os

    return (os.environ.get("SSH_CLIENT") or "local").split(" ")[0]


def setup_logging_file_only(repo: Path) -> None:
    """`--stdio`: stderr goes back to the client's ssh, so the log goes to the file
    (and warnings also to stderr, which the client shows)."""
    logger = logging.getLogger("ferry")
    path = Path(repo) / ".ferry" / "mover.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    h = logging.FileHandler(path)
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(h)
    logger.setLevel(logging.INFO)
