"""An SSH hang-up (SIGHUP) never stops a copy.

The process lets go of the terminal — its standard input, output and error
become /dev/null, so no write blocks or fails on the dead terminal — and
finishes its runs headless; the session's history message says who hung up and
when, and `ferry sessions` (or any console) attaches to the run meanwhile.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable
from typing import Protocol

from engine.units import now as wall_now

log = logging.getLogger("ferry.live")


def let_go_of_terminal() -> None:
    """Point fds 0, 1 and 2 at /dev/null (what a hung-up terminal leaves behind)."""
    fd = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1, 2):
        try:
            os.dup2(fd, target)
        except OSError:
            pass
    if fd > 2:
        os.close(fd)


def hangup_note(who: str) -> str:
    return f"{who} hung up at {wall_now():%Y-%m-%d %H:%M:%S}; the run went on headless"


class Noted(Protocol):
    """A run that can be told why its terminal went away (a `RunControl`)."""

    def note(self, text: str) -> None: ...


def keep_running_on_hangup(notes: Callable[[], Iterable[Noted]], who: str = "terminal",
                           then: Callable[[], None] | None = None) -> bool:
    """Install the SIGHUP handler (main thread only; False elsewhere).

    `notes()` gives the controls of the runs going on at that moment (each gets a
    `note`); `then` runs after the terminal is let go (e.g. the console's exit).
    """
    if threading.current_thread() is not threading.main_thread():
        return False

    def on_hangup(_signum: int, _frame: object) -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        let_go_of_terminal()
        text = hangup_note(who)
        log.warning(text)
        for control in notes():
            control.note(text)
        if then is not None:
            then()

    try:
        signal.signal(signal.SIGHUP, on_hangup)
    except (ValueError, OSError):
        return False
    return True
