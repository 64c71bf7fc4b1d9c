"""Turning any exception into the one line a user sees (never a traceback)."""

from __future__ import annotations

import os
import traceback


def one_line(exc: BaseException) -> str:
    """A single line naming what failed; FERRY_DEBUG=1 also prints the traceback."""
    if os.environ.get("FERRY_DEBUG"):
        traceback.print_exception(exc)
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename else ""
        return f"{where}{exc.strerror}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    ours = type(exc).__module__.startswith("engine.")  # engine errors are written for users
    if ours or isinstance(exc, (LookupError, ValueError)):
        return text
    return f"{type(exc).__name__}: {text}"
