"""Ferry's one error root, its exit codes, and the one line a user sees (never a
traceback). `exit_code` is the single switch from errors to exit codes (as restic's
main has): commands raise, `engine.cli.main` prints `one_line` and returns the code.
"""

from __future__ import annotations

import os
from enum import IntEnum


class ExitCode(IntEnum):
    """CONTRACT: 0 success, 1 Warning, 2 Failed or bad input, 3 held/locked and gave up
    waiting, 130 interrupted (Ctrl-C, as shells report SIGINT)."""

    OK = 0
    WARNING = 1
    FAILED = 2
    BUSY = 3
    INTERRUPTED = 130

    @classmethod
    def of_status(cls, status: str, gave_up_waiting: bool = False) -> ExitCode:
        """A finished session's code: its status, or BUSY when it failed only because a
        machine gave up waiting for a lock."""
        from engine.model import Status

        if status == Status.FAILED and gave_up_waiting:
            return cls.BUSY
        codes: dict[str, ExitCode] = {Status.SUCCESS: cls.OK, Status.WARNING: cls.WARNING}
        return codes.get(status, cls.FAILED)


class FerryError(Exception):
    """The root of the errors Ferry raises on purpose: the text is written for the user
    (one line, no paths of a remote peer, no secrets) and the class names the exit code."""

    exit_code: ExitCode = ExitCode.FAILED


class CommandError(FerryError):
    """A command refuses or fails as a whole; its text already names the command
    ("ferry run: job 'x' is already running"), so `engine.cli.main` prints it as is."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.FAILED):
        super().__init__(message)
        self.exit_code = exit_code


def exit_code(exc: BaseException) -> ExitCode:
    """The exit code for an error that ends a command."""
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(exc, FerryError):
        return ExitCode(exc.exit_code)
    return ExitCode.FAILED


def one_line(exc: BaseException) -> str:
    """A single line naming what failed; FERRY_DEBUG=1 also prints the traceback."""
    if os.environ.get("FERRY_DEBUG"):
        import traceback  # only when asked for (~4 ms a start)

        traceback.print_exception(exc)
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    ours = isinstance(exc, FerryError) or type(exc).__module__.startswith("engine.")
    if ours or isinstance(exc, (LookupError, ValueError)):
        return text
    return f"{type(exc).__name__}: {text}"
