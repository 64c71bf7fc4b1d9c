"""Per-machine actions: hold / resume / stop one machine, retry failed machines, active full."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from console_fixtures import JOB, StaticBackend
from console_helpers import DR_KEY, make_app, ready, screen_text, wait_until

from console.clock import SystemClock
from console.run_model import DONE
from console.screens.confirm import ConfirmModal
from console.screens.live import LiveRunScreen
from console.widgets.machine_table import MachineTable
from engine import events as ev
from engine.copy.control import Stopped
from engine.model import Stats, Status

MACHINES = ("db01", "web01", "web02")


class MachineRunBackend(StaticBackend):
    """run_job runs each machine in turn and checks that machine's control at every
    block, as the engine's source mover does (`control.for_machine(m).checkpoint`)."""

    def __init__(self, blocks: int = 60, delay: float = 0.01) -> None:
        super().__init__()
        self.blocks, self.delay = blocks, delay
        self.gate = threading.Event()  # the first machine waits here after its first block
        self.runs: list[list[str] | None] = []
        self.full_requests: list[list[str]] = []

    def run_job(self, spec: Any, sink: Callable[[ev.Event], None], control: Any,
                only: list[str] | None = None) -> Any:
        self.runs.append(only)
        machines = [m for m in MACHINES if only is None or m in only]
        sink(ev.RunStarted(JOB, f"s-{len(self.runs)}", machines))
        for m in machines:
            sink(ev.TaskQueued(JOB, m))
        total, statuses = self.blocks * 1024**2, []
        for m in machines:
            sink(ev.TaskStarted(JOB, m, "incremental", total))
            mine = control.for_machine(m)
            status, message, stats = "Success", "", Stats()
            try:
                for block in range(1, self.blocks + 1):
                    if mine.checkpoint(lambda by, m=m: sink(ev.TaskOnHold(
                            JOB, m, f"held by {by}", "operator"))):
                        sink(ev.TaskResumed(JOB, m))
                    stats = Stats(processed=block * 1024**2, read=block * 1024**2)
                    sink(ev.TaskProgress(JOB, m, stats, total, rate=1e8))
                    if m == machines[0] and block == 1:
                        self.gate.wait(30)  # the test steers, then lets the run go on
                    time.sleep(self.delay)
            except Stopped as exc:
                status, message = "Failed", str(exc)
            sink(ev.TaskFinished(JOB, m, status, stats, "incremental", message=message))
            statuses.append(status)
        final = "Failed" if "Failed" in statuses else "Success"
        sink(ev.RunFinished(JOB, f"s-{len(self.runs)}", final, 1.0))
        return type("Result", (), {"status": final})()

    def request_active_full(self, spec: Any, machines: list[str]) -> None:
        self.full_requests.append(list(machines))


def _app(backend: MachineRunBackend) -> Any:
    return make_app(backend=backend, clock=SystemClock(), pump_interval=0.05)


def run(body: Callable[[], Any]) -> None:
    asyncio.run(body())


async def _select_machine(pilot: Any, name: str) -> None:
    table = pilot.app.screen.query_one(MachineTable)
    await wait_until(pilot, lambda: table.row_count == len(MACHINES), what="rows")
    await pilot.press("g")
    while pilot.app.screen.highlighted_machine() != name:
        await pilot.press("j")


def test_hold_and_resume_one_machine_while_the_others_go_on() -> None:
    async def body() -> None:
        backend = MachineRunBackend(blocks=40)
        app = _app(backend)
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen), what="live")
            session = app.sessions[DR_KEY]
            await _select_machine(pilot, "web01")
            await pilot.press("P")
            backend.gate.set()
            assert session.control.is_held("web01") and not session.control.held, [
                n.message for n in app._notifications]
            rows = session.model.rows
            await wait_until(pilot, lambda: rows["db01"].state == DONE, timeout=20,
                             what="db01 done while web01 is held")
            await wait_until(pilot, lambda: "on hold (operator)" in screen_text(app),
                             what="web01 shown on hold")
            assert rows["db01"].status == Status.SUCCESS and rows["web01"].state != DONE
            assert app.state_of(DR_KEY).label == "Running (1 on hold)"
            await pilot.press("R")
            assert not session.control.is_held("web01")
            await wait_until(pilot, lambda: not session.active, timeout=20, what="finish")
            assert {r.status for r in rows.values()} == {Status.SUCCESS}

    run(body)


def test_stop_one_machine_then_retry_the_failed_ones() -> None:
    async def body() -> None:
        backend = MachineRunBackend(blocks=60)
        app = _app(backend)
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await pilot.press("f")  # the last run (history) had no failed machine: says why
            await pilot.pause(0.05)
            assert backend.runs == []
            assert any("no machine failed in its last run" in n.message
                       for n in app._notifications)
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen), what="live")
            session = app.sessions[DR_KEY]
            await _select_machine(pilot, "web01")
            await pilot.press("X")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="ask")
            await wait_until(pilot, lambda: "Stop web01 of DR copy?" in screen_text(app),
                             what="the dialog names the machine")
            await pilot.press("y")
            backend.gate.set()
            assert session.control.is_stopped("web01") and not session.control.stopped
            await wait_until(pilot, lambda: not session.active, timeout=20, what="finish")
            rows = session.model.rows
            assert rows["web01"].status == Status.FAILED
            assert rows["db01"].status == rows["web02"].status == Status.SUCCESS
            await pilot.press("f")  # retry failed machines: a new run of web01 only
            await wait_until(pilot, lambda: len(backend.runs) == 2, what="retry run")
            backend.gate.set()
            assert backend.runs == [None, ["web01"]]
            retry = app.sessions[DR_KEY]
            await wait_until(pilot, lambda: not retry.active, timeout=20, what="retry end")
            assert set(retry.model.rows) == {"web01"}

    run(body)


def test_active_full_for_a_machine_asks_then_requests() -> None:
    async def body() -> None:
        backend = MachineRunBackend()
        app = make_app(backend=backend)
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await pilot.press("j", "j")  # DR copy -> db01 -> web01
            await pilot.press("a")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="ask")
            await wait_until(pilot, lambda: "Active full for web01 of DR copy?" in
                             screen_text(app), what="the dialog names the machine")
            await pilot.press("n")
            await pilot.pause(0.05)
            assert backend.full_requests == []
            await pilot.press("a")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="ask")
            await pilot.press("y")
            await wait_until(pilot, lambda: backend.full_requests != [], what="request")
            assert backend.full_requests == [["web01"]]
            await pilot.press("k", "k", "a")  # on the job row: every machine
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal), what="ask")
            await wait_until(pilot, lambda: "all 3 machines" in screen_text(app), what="all")
            await pilot.press("y")
            await wait_until(pilot, lambda: len(backend.full_requests) == 2, what="request")
            assert backend.full_requests[1] == ["db01", "web01", "web02"]

    run(body)


def test_machine_keys_with_nothing_running_say_why() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await pilot.press("j", "j", "p")
            await pilot.pause(0.05)
            texts = [n.message for n in app._notifications]
            assert any("DR copy is not running: nothing to hold" in t for t in texts), texts

    run(body)
