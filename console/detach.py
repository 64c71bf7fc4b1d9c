"""Runs outlive the console: a tiny supervisor so "leave running" gives the shell back.

A shell waits for the process it started, so a console that keeps copying after
its UI is gone must not be that process. `supervise()` forks once at start-up
(before any thread exists): the parent only waits — for the console to exit
(its exit code goes to the shell) or to go to the background (`to_background`
writes one byte on a pipe), then returns at once. The child runs the console;
going to the background it lets go of the terminal (fds 0-2 to /dev/null),
starts its own session (no controlling terminal, so no hang-up reaches it) and
finishes its runs headless.
"""

from __future__ import annotations

import os
import signal
import sys

_pipe_w: int | None = None


def supervise() -> None:
    """Fork; returns in the child (the console). The parent never returns."""
    global _pipe_w
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        _pipe_w = w
        return
    os.close(w)
    # the console is in raw mode: Ctrl-C/Ctrl-Z are keys there, never signals for us
    for sig in (signal.SIGINT, signal.SIGTSTP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    try:
        byte = os.read(r, 1)
    except OSError:
        byte = b""
    if byte == b"d":
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


def to_background(message: str) -> None:
    """Say `message` on the terminal, let go of it, and give the shell its prompt back."""
    global _pipe_w
    from engine.live.hangup import let_go_of_terminal

    try:
        print(message, file=sys.stderr, flush=True)
    except OSError:
        pass
    let_go_of_terminal()
    try:
        os.setsid()
    except OSError:
        pass
    if _pipe_w is not None:
        try:
            os.write(_pipe_w, b"d")
        except OSError:
            pass
        os.close(_pipe_w)
        _pipe_w = None
