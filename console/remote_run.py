"""A run of another process (daemon, `ferry run`, another console) shown in this console.

`follow` attaches to the session's socket in a plain thread and pushes its
events — the snapshot replayed first, then the live stream — into the
`RunSession`'s buffer, exactly where a run of this console pushes its own, so
the same model and screens show it. The thread ends with the run (or its
process); `thread_done` tells the App's pump.
"""

from __future__ import annotations

import threading

from console.run_session import RunSession
from engine.events import LogLine, RunFinished
from engine.live.client import Attachment, RemoteControl


def follow(session: RunSession, attachment: Attachment, control: RemoteControl) -> None:
    """Start the thread that feeds `session` from `attachment`."""

    def run() -> None:
        finished = False
        try:
            for event in attachment.events():
                control.observe(event)
                session.buffer.push(event)
                finished = finished or isinstance(event, RunFinished)
        except Exception as exc:  # noqa: BLE001 - a bad stream ends the view, not the console
            session.buffer.push(LogLine(session.job, "error", f"live stream ended: {exc}"))
        finally:
            attachment.close()
            if not finished:
                session.buffer.push(LogLine(
                    session.job, "warning",
                    "the run's process went away before the run finished (interrupted)"
                    if not attachment.ended else "the run ended"))
            session.thread_done.set()

    threading.Thread(target=run, name=f"ferry-attach-{session.job}", daemon=True).start()
