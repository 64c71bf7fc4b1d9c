"""A run's live state, kept up to date from its own events (cheap: dict updates).

`LiveState.apply` runs in the engine's sink on every event; `snapshot()` is what
the state file, `ferry sessions` and an attaching console read. `replay()` turns
a snapshot back into events, so a client builds its view with the same code
that consumes a live stream.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from engine import events as ev
from engine.live import codec
from engine.model import Stats, Status

LOG_TAIL = 200  # log lines an attaching console gets at once

QUEUED, RUNNING, ON_HOLD = "queued", "running", "on hold"


def _machine(name: str) -> dict[str, Any]:
    return {"machine": name, "state": QUEUED, "held_by": "", "hold_reason": "", "kind": "",
            "total": 0, "processed": 0, "read": 0, "transferred": 0, "written": 0,
            "rate": 0.0, "bottleneck": {}, "message": ""}


class LiveState:
    """The snapshot of one session; `apply` and `snapshot` take `lock` (re-entrant, so
    the publisher can hold it across an apply and the fan-out to attached clients)."""

    def __init__(self, head: dict[str, Any]):
        self.lock = threading.RLock()
        self.head = dict(head)  # job, session, pid, start, started_by, started, ...
        self.machines: dict[str, dict[str, Any]] = {}
        # the newest progress event per machine, kept as is: applying one costs a dict
        # store (the hot path: ~10 per second per task); snapshot() unpacks it
        self.progress: dict[str, ev.TaskProgress] = {}
        self.control: dict[str, Any] = {"held": False, "held_by": "", "stopping": "",
                                        "held_machines": {}, "stopping_machines": {}}
        self.log: deque[dict[str, Any]] = deque(maxlen=LOG_TAIL)
        self.finished: dict[str, Any] | None = None
        self.version = 0  # bumped on every change: the writer skips unchanged snapshots

    def apply(self, event: ev.Event, at: str = "") -> None:
        with self.lock:
            self.version += 1
            if type(event) is ev.TaskProgress:
                self.progress[event.machine] = event
                return
            self._apply(event, at)

    def _apply(self, e: ev.Event, at: str) -> None:
        if isinstance(e, ev.RunStarted):
            self.head["session"] = e.session
            for m in e.machines:
                self.machines.setdefault(m, _machine(m))
            return
        if isinstance(e, ev.RunFinished):
            self.finished = {"status": e.status, "duration_s": e.duration_s,
                             "message": e.message}
            return
        if isinstance(e, ev.LogLine):
            self.log.append({"at": at, "level": e.level, "text": e.text, "machine": e.machine})
            return
        if isinstance(e, ev.OperatorAction):
            self._control(e)
            return
        name = getattr(e, "machine", "")
        if not name:
            return
        row = self.machines.setdefault(name, _machine(name))
        if isinstance(e, ev.TaskQueued):
            row["state"] = QUEUED
        elif isinstance(e, ev.TaskStarted):
            row.update(state=RUNNING, kind=e.kind, total=e.total)
        elif isinstance(e, ev.TaskOnHold):
            row.update(state=ON_HOLD, held_by=e.by, hold_reason=e.reason, rate=0.0)
        elif isinstance(e, ev.TaskResumed):
            row.update(state=RUNNING, held_by="", hold_reason="")
        elif isinstance(e, ev.TaskFinished):
            self.progress.pop(name, None)
            row.update(state=e.status, kind=e.kind or row["kind"], held_by="", hold_reason="",
                       rate=0.0, message=e.message, processed=e.stats.processed,
                       read=e.stats.read, transferred=e.stats.transferred,
                       written=e.stats.written, duration_s=e.duration_s, point=e.point,
                       bottleneck_name=e.bottleneck)

    def _control(self, e: ev.OperatorAction) -> None:
        c = self.control
        if e.action == "hold":
            if e.machine:
                c["held_machines"][e.machine] = e.by
            else:
                c["held"], c["held_by"] = True, e.by
        elif e.action == "resume":
            if e.machine:
                c["held_machines"].pop(e.machine, None)
            else:
                c["held"], c["held_by"], c["held_machines"] = False, "", {}
        elif e.action == "stop":
            if e.machine:
                c["stopping_machines"].setdefault(e.machine, e.by)
            else:
                c["stopping"] = c["stopping"] or e.by

    def snapshot(self, log: bool = False) -> dict[str, Any]:
        with self.lock:
            snap = {**self.head, "control": {**self.control,
                                             "held_machines": dict(self.control["held_machines"]),
                                             "stopping_machines": dict(
                                                 self.control["stopping_machines"])},
                    "machines": [self._row(m) for m in self.machines.values()],
                    "finished": self.finished}
            if log:
                snap["log"] = list(self.log)
            return snap


    def _row(self, m: dict[str, Any]) -> dict[str, Any]:
        row = {**m, "bottleneck": dict(m["bottleneck"])}
        p = self.progress.get(m["machine"])
        if p is not None:
            if row["state"] == QUEUED:
                row["state"] = RUNNING
            row.update(total=p.total or row["total"], processed=p.stats.processed,
                       read=p.stats.read, transferred=p.stats.transferred,
                       written=p.stats.written, rate=0.0 if row["state"] == ON_HOLD
                       else p.rate, bottleneck=dict(p.bottleneck), to_read=p.to_read,
                       disks=dict(p.disks))
        return row


def replay(snap: dict[str, Any]) -> list[ev.Event]:
    """Events that rebuild a snapshot's state in a fresh consumer (validated)."""
    job = codec.text(snap.get("job"), "job")
    machines = snap.get("machines")
    if not isinstance(machines, list) or len(machines) > codec.MAX_ITEMS:
        raise codec.CodecError("machines: not a list")
    out: list[ev.Event] = [ev.RunStarted(job, codec.text(snap.get("session"), "session"),
                                         [codec.text(m.get("machine"), "machine")
                                          for m in machines if isinstance(m, dict)])]
    for line in snap.get("log") or []:
        if isinstance(line, dict):
            out.append(ev.LogLine(job, codec.text(line.get("level", "info")),
                                  codec.text(line.get("text", "")),
                                  codec.text(line.get("machine", ""))))
    for m in machines:
        if not isinstance(m, dict):
            continue
        name, state = codec.text(m.get("machine")), codec.text(m.get("state"))
        stats = Stats(**{k: codec.count(m.get(k, 0), k)
                         for k in ("processed", "read", "transferred", "written")})
        total, kind = codec.count(m.get("total", 0)), codec.text(m.get("kind", ""))
        if state == QUEUED:
            out.append(ev.TaskQueued(job, name))
            continue
        if state in tuple(Status):
            out.append(ev.TaskFinished(job, name, state, stats, kind, codec.text(
                m.get("point", "")), codec.number(m.get("duration_s", 0.0)), 0.0,
                codec.text(m.get("bottleneck_name", "")), codec.text(m.get("message", ""))))
            continue
        out.append(ev.TaskStarted(job, name, kind, total))
        bottleneck = m.get("bottleneck") or {}
        disks = m.get("disks") or {}
        out.append(ev.TaskProgress(job, name, stats, total, codec.number(m.get("rate", 0.0)),
                                   {codec.text(k): codec.number(v)
                                    for k, v in bottleneck.items()}
                                   if isinstance(bottleneck, dict) else {},
                                   codec.count(m.get("to_read", 0)),
                                   {codec.text(k): codec.number(v) for k, v in disks.items()}
                                   if isinstance(disks, dict) else {}))
        if state == ON_HOLD:
            out.append(ev.TaskOnHold(job, name, codec.text(m.get("hold_reason", "")),
                                     codec.text(m.get("held_by", "")) or "operator"))
    control = snap.get("control") or {}
    if isinstance(control, dict):
        if control.get("held"):
            out.append(ev.OperatorAction(job, "hold", "", codec.text(control.get("held_by",
                                                                                 ""))))
        for m, by in (control.get("held_machines") or {}).items():
            out.append(ev.OperatorAction(job, "hold", codec.text(m), codec.text(by)))
        if control.get("stopping"):
            out.append(ev.OperatorAction(job, "stop", "", codec.text(control["stopping"])))
        for m, by in (control.get("stopping_machines") or {}).items():
            out.append(ev.OperatorAction(job, "stop", codec.text(m), codec.text(by)))
    fin = snap.get("finished")
    if isinstance(fin, dict):
        out.append(ev.RunFinished(job, codec.text(snap.get("session")),
                                  codec.text(fin.get("status")),
                                  codec.number(fin.get("duration_s", 0.0)),
                                  codec.text(fin.get("message", ""))))
    return out
