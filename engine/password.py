"""Where an encryption password comes from: an environment variable, a 0600 file or a command.

The password itself never goes into a job file, a log line, history, JSON, an
error message or any file Ferry writes: only the *source* (the variable's name,
the file's path, the command) is kept and shown. `Password` hides its bytes from
repr/str so that a stray f-string or traceback cannot print it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from engine.errors import FerryError

MAX_PASSWORD = 4096  # bytes; a longer "password" is a mistake (a key file, a binary)
COMMAND_TIMEOUT = 30.0  # seconds a password_command may take


class PasswordError(FerryError):
    """No usable password (missing, unreadable, wrong mode, wrong password): one line."""


class SourceKind(StrEnum):
    ENV = "env"
    FILE = "file"
    COMMAND = "command"


class Password:
    """The secret bytes; never printed."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes):
        self._value = value

    def bytes(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return "Password(***)"

    __str__ = __repr__


@dataclass(frozen=True)
class PasswordSource:
    """Where to read the password: `kind` and the variable name, file path or command."""

    kind: SourceKind
    value: str

    def describe(self) -> str:
        return {SourceKind.ENV: f"environment variable {self.value}",
                SourceKind.FILE: f"password file {self.value}",
                SourceKind.COMMAND: "password_command"}[self.kind]

    def read(self) -> Password:
        """The password; PasswordError (naming the source, never the secret) when unusable."""
        if self.kind == SourceKind.ENV:
            value = os.environ.get(self.value)
            if not value:
                raise PasswordError(f"the encryption password is not set: environment variable "
                                    f"{self.value} is empty or missing")
            return _checked(value.encode(), self)
        if self.kind == SourceKind.FILE:
            return _checked(_read_file(Path(self.value)), self)
        return _checked(_run_command(self.value), self)


def _checked(raw: bytes, src: PasswordSource) -> Password:
    if raw.endswith(b"\r\n"):
        raw = raw[:-2]
    elif raw.endswith(b"\n"):
        raw = raw[:-1]
    if not raw:
        raise PasswordError(f"the encryption password from {src.describe()} is empty")
    if len(raw) > MAX_PASSWORD:
        raise PasswordError(f"the encryption password from {src.describe()} is longer than "
                            f"{MAX_PASSWORD} bytes")
    return Password(raw)


def _read_file(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise PasswordError(f"password file {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PasswordError(f"password file {path}: not a regular file")
        if st.st_mode & 0o077:
            raise PasswordError(f"password file {path}: mode {stat.S_IMODE(st.st_mode):04o} lets "
                                f"others read it; it must be 0600 (chmod 600 {path})")
        data = os.read(fd, MAX_PASSWORD + 3)
    finally:
        os.close(fd)
    return data


def _run_command(command: str) -> bytes:
    import shlex
    import subprocess  # only for password_command (subprocess costs ~4 ms a start)

    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise PasswordError(f"password_command cannot be parsed: {exc}") from None
    if not argv:
        raise PasswordError("password_command is empty")
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, timeout=COMMAND_TIMEOUT, check=False)
    except FileNotFoundError:
        raise PasswordError(f"password_command: {argv[0]}: command not found") from None
    except subprocess.TimeoutExpired:
        raise PasswordError(f"password_command: {argv[0]} took longer than "
                            f"{COMMAND_TIMEOUT:.0f} s") from None
    except OSError as exc:
        raise PasswordError(f"password_command: {argv[0]}: {exc.strerror}") from None
    if proc.returncode != 0:  # its output may hold half a secret: never shown
        raise PasswordError(f"password_command: {argv[0]} exited with status {proc.returncode}")
    return proc.stdout[:MAX_PASSWORD + 3]


DEFAULT_ENV = "FERRY_PASSWORD"


def cli_source(env: str | None, file: Path | None) -> PasswordSource:
    """The read paths' `--password-env NAME` (default FERRY_PASSWORD) / `--password-file`."""
    if file is not None:
        return PasswordSource(SourceKind.FILE, str(file))
    return PasswordSource(SourceKind.ENV, env or DEFAULT_ENV)
