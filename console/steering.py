"""Steering a job's run from the console: hold, resume, stop, retry, active full.

What the operator asks of a run (this console's or another process's, through its
`RunControl`): each action checks that it makes sense now (the run is going, the
machine is part of it and not finished), asks before it stops anything, and says
what happened. The App owns the state; this only reads it and calls back.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from console import format as fmt
from console.messages import JobSaved
from console.run_model import TaskState
from console.run_session import RunSession
from console.screens.confirm import ConfirmModal
from engine.jobs.load import JobSpec
from engine.live.client import LiveError
from engine.model import Status

if TYPE_CHECKING:
    from console.app import FerryConsole


class Steering:
    """The run actions of one console (`app.steering`)."""

    def __init__(self, app: FerryConsole) -> None:
        self.app = app

    def _active(self, key: str, verb: str) -> RunSession | None:
        """The job's live session, or None after saying why nothing can be done."""
        session = self.app.sessions.get(key)
        if session is None or not session.active:
            self.app.notify(f"{self.app.store.name(key)} is not running: nothing to {verb} "
                            "(s starts it)", severity="warning")
            return None
        return session

    def _run_machine(self, session: RunSession, machine: str, verb: str) -> bool:
        """True when `machine` is a machine of the run still going (else says why)."""
        row = session.model.rows.get(machine)
        if row is None:
            self.app.notify(f"{machine} is not part of this run of {session.job}",
                            severity="warning")
            return False
        if row.state == TaskState.DONE:
            self.app.notify(f"{machine} has finished ({row.status}): nothing to {verb}",
                            severity="warning")
            return False
        return True

    def _act(self, session: RunSession, action: Callable[[], None]) -> bool:
        """Run a control action; a run of another process may refuse or be gone."""
        try:
            action()
        except LiveError as exc:
            self.app.notify(str(exc), severity="error", timeout=10)
            return False
        return True

    def hold(self, key: str, machine: str | None = None) -> None:
        """Hold the run, or only `machine` of it (it pauses at its next block)."""
        session = self._active(key, "hold")
        if session is None or session.control is None:
            return
        control = session.control
        if machine:
            if not self._run_machine(session, machine, "hold"):
                return
            if self._act(session, lambda: control.hold("operator", machine)):
                self.app.notify(f"{session.job} · {machine}: on hold (operator) at its next "
                                "block; the others go on; r resumes it", title="Hold")
                self.app.job_changed(key)
                self.app.sync_live(session)
            return
        if session.held_by_operator:
            self.app.notify(f"{session.job} is already on hold", severity="warning")
            return
        if not self._act(session, lambda: control.hold("operator")):
            return
        self.app.notify(f"{session.job}: on hold (operator); r resumes", title="Hold")
        self.app.job_changed(key)
        self.app.sync_live(session)

    def resume(self, key: str, machine: str | None = None) -> None:
        """Resume `machine` if it is held on its own, else the whole run."""
        session = self._active(key, "resume")
        if session is None or session.control is None:
            return
        control = session.control
        if machine and not session.held_by_operator:  # one machine (harmless if not held)
            if self._run_machine(session, machine, "resume") and \
                    self._act(session, lambda: control.resume(machine)):
                self.app.notify(f"{session.job} · {machine}: resumed", title="Resume")
                self.app.job_changed(key)
                self.app.sync_live(session)
            return
        held = session.model.held_rows()
        operator_held = [r for r in held if r.hold_by == "operator"]
        if not session.held_by_operator and not operator_held:
            text = (f"{len(held)} machine(s) wait for a source lock; they resume by themselves"
                    if held else f"{session.job} is not on hold")
            self.app.notify(text, severity="warning")
            return
        if not self._act(session, control.resume):
            return
        self.app.notify(f"{session.job}: resumed", title="Resume")
        self.app.job_changed(key)
        self.app.sync_live(session)

    def stop(self, key: str, machine: str | None = None) -> None:
        """Stop the run, or only `machine` (after asking)."""
        session = self._active(key, "stop")
        if session is None or session.control is None:
            return
        if machine is not None and not self._run_machine(session, machine, "stop"):
            return
        control = session.control

        def answer(yes: bool | None) -> None:
            if not yes:
                return
            if machine:
                if self._act(session, lambda: control.stop(machine=machine)):
                    self.app.notify(f"{session.job} · {machine}: stopping…", title="Stop",
                                    severity="warning")
                    self.app.job_changed(key)
                    self.app.sync_live(session)
                return
            if self._act(session, control.stop):
                session.model.stop_requested = True
                self.app.notify(f"{session.job}: stopping…", title="Stop", severity="warning")
            self.app.job_changed(key)
            self.app.sync_live(session)

        if machine:
            self.app.push_screen(ConfirmModal(f"Stop {machine} of {session.job}?",
                                              STOP_MACHINE_WORDS.format(machine=machine),
                                              yes="Stop machine"), answer)
            return
        self.app.push_screen(ConfirmModal(f"Stop {session.job}?", STOP_WORDS, yes="Stop run"),
                             answer)

    def failed_machines(self, key: str) -> list[str]:
        """The machines that ended Failed in the job's newest run (this console's, else the
        history's)."""
        session = self.app.sessions.get(key)
        if session is not None and not session.active and session.model.rows:
            return sorted(m for m, r in session.model.rows.items()
                          if r.status == Status.FAILED)
        last = self.app.store.last_runs.get(key)
        if last is None:
            return []
        return sorted(t.machine for t in last.tasks if t.status == Status.FAILED)

    def retry(self, key: str, machine: str | None = None) -> None:
        """Run `machine` again, or every machine that failed in the newest run."""
        session = self.app.sessions.get(key)
        if session is not None and session.active:
            self.app.notify(f"{session.job} is running: retry when it has ended",
                            severity="warning")
            return
        machines = [machine] if machine else self.failed_machines(key)
        if not machines:
            self.app.notify(f"{self.app.store.name(key)}: no machine failed in its last run; "
                            "select a machine to copy it again", severity="warning")
            return
        self.app.start_job(key, only=machines)

    def active_full(self, key: str, machine: str | None = None) -> None:
        """"Active full now": the next copy of `machine` (or of every machine) is a full."""
        spec = self.app.spec_or_say(key)
        if spec is None:
            return
        names = [machine] if machine else [m.name for m in self.app.store.machines.get(key, [])]
        if not names:
            self.app.notify(f"{spec.name} has no machines yet", severity="warning")
            return
        size = sum(i.source_points[-1].logical_size for i in self.app.store.machines.get(key, [])
                   if i.name in names and i.source_points)
        who = names[0] if len(names) == 1 else f"all {len(names)} machines"

        def answer(yes: bool | None) -> None:
            if yes:
                self.app.run_worker(partial(self._request_full, key, spec, names), thread=True,
                                    group="active-full", exit_on_error=False)

        self.app.push_screen(ConfirmModal(
            f"Active full for {who} of {spec.name}?",
            f"The next run copies {who} as a full: every block is read from the source "
            f"and sent again (about {fmt.size(size)} before compression) and starts a new "
            "chain on the target; the older points age out by retention. Nothing starts now.",
            yes="Request full"), answer)

    def _request_full(self, key: str, spec: JobSpec, names: list[str]) -> None:
        try:
            self.app.backend.request_active_full(spec, names)
        except Exception as exc:
            self.app.post_message(JobSaved(key, None, "", error=f"{spec.name}: {exc}"))
            return
        what = names[0] if len(names) == 1 else f"{len(names)} machines"
        self.app.post_message(JobSaved(key, spec, f"{spec.name}: the next run copies a full "
                                       f"of {what}", title="Active full"))


STOP_MACHINE_WORDS = (
    "{machine} stops at its next block and ends Failed ('stopped by operator'), without "
    "retries; the other machines go on. Its restore points already copied stay; the next "
    "run continues from there.")

STOP_WORDS = (
    "Each running machine stops at its next block and ends Failed ('stopped by "
    "operator'); a machine already past its last block finishes as it would have, "
    "and the log says so. Queued machines do not start. Restore points already "
    "copied stay; the next run continues from there.")
