"""The copy job's side of a remote mover: `[target] mover` addresses and how to reach them.

* `tls://host:port`: TLS 1.3; the mover's certificate must have the pinned
  `fingerprint` (no CA, no host name check: the pin is the identity); the job token
  from `token_env` goes in the HELLO.
* `ssh://user@host[:port]/abs/repo`: the OpenSSH client runs
  `ferry mover --stdio --repo /abs/repo` on the far side (an authorized_keys forced
  command usually fixes that command); `$FERRY_RSH` replaces `ssh` (e.g.
  `ssh -F /path/config`), like borg's BORG_RSH (`$FERRY_SSH`, its older name, still
  works). On a CPU with AES instructions the ciphers ssh would offer anyway are
  reordered AES-GCM first (`fast_ciphers`): OpenSSH's default prefers ChaCha20, which
  costs this stream about 1.6 times the CPU on both ends. A remote run opens its job
  stream first, then a stream per task; each ssh stream takes a handshake and the far
  side's start-up (~0.7 s here), so `warm` starts the first task's stream alongside
  the job stream and `connect` hands it out (`SPARE_AGE`). `Compression=no`: the
  blocks are compressed already (an option in `$FERRY_RSH` comes first and wins).
* `host:port`: plain frames, loopback addresses only.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

from engine.copy import transport as t

if TYPE_CHECKING:
    from engine.jobs.schema import JobSpec

_SSH = re.compile(r"ssh://(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?(?P<host>[A-Za-z0-9.-]+|"
                  r"\[[0-9A-Fa-f:]+\])(?::(?P<port>\d+))?(?P<path>/[^\s]*)")
_HOSTPORT = re.compile(r"(?P<host>[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):(?P<port>\d+)")
CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class MoverAddress:
    scheme: str  # "tls", "ssh" or "plain"
    host: str
    port: int | None
    user: str | None = None
    path: str | None = None


def parse_mover(text: str) -> MoverAddress:
    """A `[target] mover` value, checked (ValueError with the forms it takes)."""
    forms = ("expected tls://HOST:PORT, ssh://USER@HOST[:PORT]/ABS/REPO or (loopback only) "
             "HOST:PORT")
    if text.startswith("ssh://"):
        m = _SSH.fullmatch(text)
        if not m or ".." in m["path"].split("/"):
            raise ValueError(f"{forms}, got {text!r}")
        port = int(m["port"]) if m["port"] else None
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"{forms}, got {text!r}")
        return MoverAddress("ssh", m["host"].strip("[]"), port, m["user"], m["path"])
    scheme = "tls" if text.startswith("tls://") else "plain"
    m = _HOSTPORT.fullmatch(text.removeprefix("tls://"))
    if not m or not 0 < int(m["port"]) < 65536:
        raise ValueError(f"{forms}, got {text!r}")
    host = m["host"].strip("[]")
    if scheme == "plain":
        from engine.copy.server import is_loopback

        if not is_loopback(host):
            raise ValueError(f"a plain mover address is allowed on loopback only, not {host}: "
                             f"use tls://{text} (or ssh://) across hosts")
    return MoverAddress(scheme, host, int(m["port"]))


def connect(spec: JobSpec, spare: bool = True) -> t.Endpoint:
    """A stream to the job's remote mover (`[target] mover` is set); `spare`: one that
    `warm` started may be handed out."""
    if not spec.target.mover:
        raise t.StreamError("the job has no [target] mover")
    addr = parse_mover(spec.target.mover)
    if addr.scheme == "ssh" and spare:
        ready = _take_spare(spec.target.mover)
        if ready is not None:
            return ready
    if addr.scheme == "plain":
        return t.SocketEndpoint.connect(f"{addr.host}:{addr.port}")
    if addr.scheme == "tls":
        return connect_tls(addr, spec.target.fingerprint)
    return connect_ssh(addr)


# a spare ssh stream is handed out only this young: the far side's mover waits 30 s
# for its HELLO (engine.copy.target.TargetMover.hello_timeout)
SPARE_AGE = 10.0
_spares: dict[str, list[tuple[float, SshEndpoint]]] = {}
_spares_lock = threading.Lock()


def warm(spec: JobSpec) -> None:
    """Start one ssh:// stream ahead (nothing for other schemes): its handshake runs
    while the caller opens its own stream; the next `connect` takes it."""
    if not spec.target.mover or parse_mover(spec.target.mover).scheme != "ssh":
        return
    try:
        end = connect_ssh(parse_mover(spec.target.mover))
    except t.StreamError:
        return  # the stream that needs it reports the failure
    with _spares_lock:
        _spares.setdefault(spec.target.mover, []).append((time.monotonic(), end))


def _take_spare(mover: str) -> SshEndpoint | None:
    with _spares_lock:
        spares = _spares.get(mover, [])
        while spares:
            born, end = spares.pop(0)
            if time.monotonic() - born < SPARE_AGE and end.proc.poll() is None:
                return end
            end.close()
    return None


def drop_spares(spec: JobSpec) -> None:
    """Close the spare streams `warm` started and nobody took."""
    with _spares_lock:
        spares = _spares.pop(spec.target.mover or "", [])
    for _, end in spares:
        end.close()


def token_of(spec: JobSpec) -> str | None:
    """The job's mover token (tls:// only), from its environment variable."""
    if not spec.target.mover or not spec.target.mover.startswith("tls://"):
        return None
    name = spec.target.token_env
    value = os.environ.get(name or "")
    if not value:
        raise t.StreamError(f"the mover token variable {name} is not set")
    return value.strip()


def connect_tls(addr: MoverAddress, fingerprint: str | None) -> t.SocketEndpoint:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the pin below is the check (self-signed mover)
    where = f"{addr.host}:{addr.port}"
    try:
        raw = socket.create_connection((addr.host, addr.port), timeout=CONNECT_TIMEOUT)
        sock = ctx.wrap_socket(raw)
    except (OSError, ssl.SSLError) as exc:
        raise t.StreamError(f"cannot reach target mover tls://{where}: {exc}") from None
    der = sock.getpeercert(binary_form=True) or b""
    got = "sha256:" + hashlib.sha256(der).hexdigest()
    if got != fingerprint:
        sock.close()
        raise t.StreamError(f"target mover tls://{where} presents certificate {got}, not the "
                            f"pinned {fingerprint}: refusing to talk to it")
    sock.settimeout(None)
    return t.SocketEndpoint(sock)


class SshEndpoint(t.FdEndpoint):
    """The stream through an `ssh` child; its stderr names why a login failed."""

    def __init__(self, proc: subprocess.Popen[bytes]):
        if proc.stdin is None or proc.stdout is None or proc.stderr is None:
            raise ValueError("the ssh child needs stdin, stdout and stderr pipes")
        self.proc = proc
        self._stdin, self._stdout, self._stderr = proc.stdin, proc.stdout, proc.stderr
        self._err: list[bytes] = []
        self._reader = threading.Thread(target=self._drain, daemon=True, name="ferry-ssh-err")
        self._reader.start()
        super().__init__(self._stdout.fileno(), self._stdin.fileno(), on_close=self._stop)

    def _drain(self) -> None:
        for line in self._stderr:
            if len(self._err) < 50:
                self._err.append(line)

    def _why(self, exc: t.StreamError) -> t.StreamError:
        try:  # the stream ended: ssh is on its way out (a live one means a peer's fault)
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return exc
        self._reader.join(timeout=1)
        lines = [x.decode(errors="replace").strip() for x in self._err if x.strip()]
        return t.StreamError(f"{exc}: ssh exited {self.proc.returncode}"
                             + (f": {lines[-1]}" if lines else ""))

    def recv(self, timeout: float | None = None) -> t.Frame:
        try:
            return super().recv(timeout)
        except t.StreamError as exc:
            raise self._why(exc) from None

    def send(self, data: bytes | bytearray) -> None:
        try:
            super().send(data)
        except t.StreamError as exc:
            raise self._why(exc) from None

    def _stop(self) -> None:
        for f in (self._stdin, self._stdout):
            try:
                f.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def rsh() -> list[str]:
    """The ssh client command: `$FERRY_RSH` (the contract's name), else `$FERRY_SSH`."""
    return shlex.split(os.environ.get("FERRY_RSH") or os.environ.get("FERRY_SSH") or "ssh")


def ssh_command(addr: MoverAddress) -> list[str]:
    base = rsh()
    target = f"{addr.user}@{addr.host}" if addr.user else addr.host
    port = ["-p", str(addr.port)] if addr.port else []
    remote = f"ferry mover --stdio --repo {shlex.quote(addr.path or '')}"
    # blocks travel compressed already: ssh's zlib on top costs CPU on both ends for
    # nothing (a `-o Compression=yes` in $FERRY_RSH comes first, so it still wins)
    opts = [*port, "-o", "BatchMode=yes", "-o", f"ConnectTimeout={int(CONNECT_TIMEOUT)}",
            "-o", "Compression=no"]
    ciphers = fast_ciphers((*base, *opts), target) if cpu_has_aes() else None
    return [*base, *opts, *(["-c", ciphers] if ciphers else []), "--", target, remote]


def cpu_has_aes() -> bool:
    """Whether this CPU has AES instructions (x86 `aes`, arm64 `aes` feature)."""
    try:
        text = open("/proc/cpuinfo").read()  # noqa: SIM115 - one small read
    except OSError:
        return False
    return any(line.split(":", 1)[0].strip() in ("flags", "Features")
               and "aes" in line.split(":", 1)[1].split() for line in text.splitlines()
               if ":" in line)


@lru_cache(maxsize=16)
def fast_ciphers(cmd: tuple[str, ...], target: str) -> str | None:
    """The ciphers `cmd` would offer `target` (`ssh -G`: its config, options and defaults
    applied, nothing sent), AES-GCM ones first; None when there is nothing to reorder
    or ssh cannot say. Only the order changes: a cipher the configuration leaves out is
    never offered."""
    try:
        out = subprocess.run([*cmd, "-G", "--", target], capture_output=True, text=True,
                             timeout=CONNECT_TIMEOUT, stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    line = next((x for x in out.splitlines() if x.startswith("ciphers ")), "")
    offered = line.partition(" ")[2].strip().split(",") if line else []
    gcm = [c for c in offered if c.startswith("aes") and c.endswith("-gcm@openssh.com")]
    if not gcm or offered[:len(gcm)] == gcm:
        return None
    return ",".join(gcm + [c for c in offered if c not in gcm])


def connect_ssh(addr: MoverAddress) -> SshEndpoint:
    try:
        proc = subprocess.Popen(ssh_command(addr), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, bufsize=0)
    except OSError as exc:
        raise t.StreamError(f"cannot run ssh for the target mover: {exc}") from None
    return SshEndpoint(proc)
