"""A session's timestamped log, kept in its history (what the admin reads the next morning).

The runner passes every event it emits through `SessionLog.add`; the lines an admin
needs after the fact (starts, holds, results, retention actions, warnings) are kept
with the run's clock, and `History.record` stores them with the session. Progress
events are not kept. The log is bounded (`MAX_LINES` lines of `MAX_TEXT` characters):
a run that says more keeps its first lines and one line saying how many were dropped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from engine import events as ev
from engine.model import Status
from engine.units import fmt_duration, fmt_size

MAX_LINES = 5000
MAX_TEXT = 500


def describe(event: ev.Event) -> tuple[str, str, str, str] | None:
    """(level, machine, kind, text) for an event worth keeping; None for the others.

    `kind` is "retention" for retention actions (counted per machine in the console's
    session detail), else "log".
    """
    if isinstance(event, ev.LogLine):
        return event.level, event.machine, "log", event.text
    if isinstance(event, ev.RunStarted):
        what = "dry run" if event.dry_run else "session"
        n = len(event.machines)
        return "info", "", "log", f"{what} {event.session} started: {n} machine" + \
            ("" if n == 1 else "s")
    if isinstance(event, ev.TaskStarted):
        if event.kind == "none":
            return None  # "up to date" is said once, by the task itself
        return "info", event.machine, "log", \
            f"{event.machine}: copying {event.kind} ({fmt_size(event.total)})"
    if isinstance(event, ev.TaskOnHold):
        return "warning", event.machine, "log", \
            f"{event.machine}: on hold ({event.by}): {event.reason}"
    if isinstance(event, ev.TaskResumed):
        return "info", event.machine, "log", f"{event.machine}: resumed"
    if isinstance(event, ev.TaskFinished):
        if event.kind == "none" and event.status == Status.SUCCESS:
            return None  # "up to date" is said once
        level = Status(event.status).level
        s = event.stats
        parts = [event.status, event.kind or "-", f"took {fmt_duration(event.duration_s)}",
                 f"read {fmt_size(s.read)}", f"sent {fmt_size(s.transferred)}"]
        if event.held_s:
            parts.append(f"held {fmt_duration(event.held_s)}")
        if event.bottleneck:
            parts.append(f"bottleneck {event.bottleneck}")
        text = f"{event.machine}: {' · '.join(parts)}"
        return level, event.machine, "log", text + (f": {event.message}" if event.message else "")
    if isinstance(event, ev.RetentionAction):
        words = " ".join(w for w in (event.action, event.point, event.detail) if w)
        return "info", event.machine, "retention", f"{event.machine}: retention: {words}"
    if isinstance(event, ev.RunFinished):
        level = Status(event.status).level
        text = f"session ended {event.status} after {fmt_duration(event.duration_s)}"
        return level, "", "log", text + (f": {event.message}" if event.message else "")
    return None


class SessionLog:
    """Collects a session's log lines (thread-safe: tasks emit from their threads)."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.lines: list[dict[str, str]] = []
        self.dropped = 0
        self._lock = threading.Lock()

    def add(self, event: ev.Event) -> None:
        item = describe(event)
        if item is None:
            return
        level, machine, kind, text = item
        with self._lock:
            if len(self.lines) >= MAX_LINES - 1:
                self.dropped += 1
                return
            self.lines.append({"time": self.clock().isoformat(timespec="seconds"),
                               "level": level, "machine": machine[:MAX_TEXT], "kind": kind,
                               "text": " ".join(text.split())[:MAX_TEXT]})

    def rows(self, last: ev.Event | None = None) -> list[dict[str, str]]:
        """The lines to store: the drop notice, then `last` (the session's end, recorded
        before it is emitted), at the end."""
        with self._lock:
            out = list(self.lines)
            now = self.clock().isoformat(timespec="seconds")
            if self.dropped:
                out.append({"time": now, "level": "warning", "machine": "", "kind": "log",
                            "text": f"{self.dropped} more log lines were not kept"})
            end = describe(last) if last is not None else None
            if end is not None:
                level, machine, kind, text = end
                out.append({"time": now, "level": level, "machine": machine, "kind": kind,
                            "text": text[:MAX_TEXT]})
            return out


__all__ = ["MAX_LINES", "MAX_TEXT", "SessionLog", "describe"]
