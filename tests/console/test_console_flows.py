"""Pilot tests of operator flows over the fixture backend (a scripted, threaded runner)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from console_fixtures import JOB, JOBS_DIR, StaticBackend
from console_helpers import DR_KEY, job_line, make_app, ready, screen_text, settle, wait_until

from console.clock import SystemClock
from console.run_model import DONE
from console.screens.confirm import ConfirmModal
from console.screens.live import LiveRunScreen
from console.screens.quit import QuitModal
from console.widgets.log_pane import LogPane
from console.widgets.machine_table import MachineTable
from engine import events as ev
from engine.copy.control import Stopped
from engine.model import Stats, Status


class ScriptedRunBackend(StaticBackend):
    """run_job emits a small run from a thread and honours hold/stop at every block."""

    def __init__(self, machines: tuple[str, ...] = ("db01", "web01", "web02"),
                 blocks: int = 40, delay: float = 0.01) -> None:
        super().__init__()
        self.machines, self.blocks, self.delay = machines, blocks, delay

    def run_job(self, spec: Any, sink: Callable[[ev.Event], None], control: Any) -> Any:
        sink(ev.RunStarted(JOB, "s-test", list(self.machines)))
        for m in self.machines:
            sink(ev.TaskQueued(JOB, m))
        total = self.blocks * 1024**2
        statuses = []
        for m in self.machines:
            sink(ev.TaskStarted(JOB, m, "incremental", total))
            status, message = "Success", ""
            stats = Stats()
            try:
                for block in range(1, self.blocks + 1):
                    control.checkpoint()
                    stats = Stats(processed=block * 1024**2, read=block * 512 * 1024,
                                  transferred=block * 256 * 1024)
                    sink(ev.TaskProgress(JOB, m, stats, total, rate=50.0 * 1024**2,
                                         bottleneck={"Source": 0.3, "Target": 0.7}))
                    time.sleep(self.delay)
            except Stopped as exc:
                status, message = "Failed", str(exc)
            sink(ev.TaskFinished(JOB, m, status, stats, "incremental", message=message))
            statuses.append(status)
        final = "Failed" if "Failed" in statuses else "Success"
        sink(ev.RunFinished(JOB, "s-test", final, 1.0))
        return type("Result", (), {"status": final})()


def live_app(**kwargs: Any) -> Any:
    kwargs.setdefault("backend", ScriptedRunBackend())
    return make_app(clock=SystemClock(), pump_interval=0.05, **kwargs)


def run(coro_fn: Callable[[], Any]) -> None:
    asyncio.run(coro_fn())


def test_start_hold_resume_finish() -> None:
    async def body() -> None:
        app = live_app(backend=ScriptedRunBackend(blocks=200))
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await pilot.press("s")  # DR copy is selected first
            await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen), what="live")
            session = app.sessions[DR_KEY]
            await wait_until(pilot, lambda: session.model.processed_total > 0, what="progress")
            await pilot.press("p")
            assert session.control.held and session.control.held_by == "operator"
            assert app.state_of(DR_KEY).label == "On hold (by operator)"
            await pilot.pause(0.2)
            before = session.model.processed_total
            await pilot.pause(0.3)
            assert session.model.processed_total == before  # nothing moves while held
            await wait_until(pilot, lambda: "on hold: operator" in screen_text(app),
                             what="rows on hold")
            await pilot.press("r")
            assert not session.control.held
            await wait_until(pilot, lambda: not session.active, timeout=20, what="finish")
            await pilot.pause(0.1)
            rows = session.model.rows.values()
            assert all(r.state == DONE and r.status == Status.SUCCESS for r in rows)
            assert app.store.last_status(DR_KEY) == Status.SUCCESS
            assert "Finished: Success" in screen_text(app)

    run(body)


def test_stop_asks_first_then_stops() -> None:
    async def body() -> None:
        app = live_app(backend=ScriptedRunBackend(blocks=400, delay=0.05))
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen))
            session = app.sessions[DR_KEY]
            await pilot.press("x")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            await pilot.press("enter")  # Cancel has the focus: Enter alone never confirms
            await settle(pilot)
            assert not session.control.stopped and isinstance(app.screen, LiveRunScreen)
            await pilot.press("x")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            await pilot.press("y")
            assert session.control.stopped
            await wait_until(pilot, lambda: not session.active, timeout=20, what="stopped")
            assert app.store.last_status(DR_KEY) == Status.FAILED

    run(body)


def test_quit_with_an_active_run_asks_and_stops_it() -> None:
    async def body() -> None:
        app = live_app(backend=ScriptedRunBackend(blocks=400, delay=0.05))
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen))
            session = app.sessions[DR_KEY]
            await pilot.press("q")
            await wait_until(pilot, lambda: isinstance(app.screen, QuitModal))
            await pilot.press("n")
            await settle(pilot)
            assert app.is_running and not session.control.stopped
            await pilot.press("q")
            await wait_until(pilot, lambda: isinstance(app.screen, QuitModal))
            await pilot.press("s")
            await pilot.pause(0.1)
            assert session.control.stopped and not app.leave_running
        assert app.return_code == 0
        assert session.thread_done.wait(30)  # the stopped run ends at its next block
        assert session.thread is not None and not session.thread.daemon

    run(body)


def test_quit_can_leave_the_run_going() -> None:
    async def body() -> None:
        app = live_app(backend=ScriptedRunBackend(blocks=60, delay=0.02))
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen))
            session = app.sessions[DR_KEY]
            await pilot.press("q")
            await wait_until(pilot, lambda: isinstance(app.screen, QuitModal))
            await pilot.press("l")
            await pilot.pause(0.1)
        assert app.return_code == 0 and app.leave_running
        assert not session.control.stopped
        assert session.thread_done.wait(30)  # it went on after the UI ended

    run(body)


def test_sighup_keeps_runs_and_exits() -> None:
    async def body() -> None:
        app = live_app(backend=ScriptedRunBackend(blocks=60, delay=0.02))
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen))
            session = app.sessions[DR_KEY]
            app.hang_up()
            await pilot.pause(0.1)
            assert not session.control.stopped
            assert any("console hung up at" in n for n in session.control.notes)
        assert app.return_code == 0
        assert session.thread_done.wait(30)

    run(body)


def test_schedule_toggle_writes_enabled_through_backend() -> None:
    async def body() -> None:
        backend = StaticBackend()
        app = make_app(backend=backend)
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await pilot.press("t")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            await pilot.press("y")
            await wait_until(pilot, lambda: backend.enabled_calls != [], what="write")
            await ready(pilot)
            assert backend.enabled_calls == [(JOBS_DIR / "dr-copy.toml", False)]
            assert job_line(app, "DR copy")[2] == "Disabled"
            await pilot.press("t")  # enabling needs no confirmation
            await wait_until(pilot, lambda: len(backend.enabled_calls) == 2, what="enable")
            await ready(pilot)
            assert job_line(app, "DR copy")[2] == "Idle"

    run(body)


def test_live_filter_and_vim_keys() -> None:
    async def body() -> None:
        backend = ScriptedRunBackend(machines=("db01", "web01", "web02", "app01"), blocks=3,
                                     delay=0.0)
        app = live_app(backend=backend)
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await pilot.press("s")
            session_done = lambda: DR_KEY in app.sessions and not app.sessions[DR_KEY].active  # noqa: E731
            await wait_until(pilot, session_done, what="run end")
            await settle(pilot)
            table = app.screen.query_one(MachineTable)
            assert table.row_count == 4
            await pilot.press("G")
            assert table.cursor_row == 3
            await pilot.press("g", "j")
            assert table.cursor_row == 1
            await pilot.press("slash", "w", "e", "b", "enter")
            await settle(pilot)
            assert table.row_count == 2 and table.has_focus
            await pilot.press("slash", "escape")
            await settle(pilot)
            assert table.row_count == 4

    run(body)


def test_log_follows_until_scrolled_up() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            session = app.new_session(DR_KEY)
            app.nav.open_live(DR_KEY)
            await ready(pilot)
            log = app.screen.query_one(LogPane)
            for i in range(60):
                session.sink(ev.LogLine(JOB, "info", f"line {i}"))
            app.pump()
            await ready(pilot)
            assert log.following and log.border_title == "Log · following"
            log.scroll_home(animate=False)
            await ready(pilot)
            assert not log.following and "paused" in str(log.border_title)
            y = log.scroll_y
            session.sink(ev.LogLine(JOB, "info", "new line"))
            app.pump()
            await ready(pilot)
            assert log.scroll_y == y  # the operator is reading: no jump
            log.focus()
            await pilot.press("G")
            await ready(pilot)
            assert log.following

    run(body)


def test_whatif_change_updates_timeline_and_saves() -> None:
    async def body() -> None:
        backend = StaticBackend()
        app = make_app(backend=backend)
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await pilot.press("w")
            await ready(pilot)
            await wait_until(pilot, lambda: getattr(app.screen, "result", None) is not None)
            screen = app.screen
            before = screen_text(app)
            assert "11 points" in before
            await pilot.press("backspace", "3")
            await wait_until(pilot, lambda: "short-term: newest 3 points" in screen_text(app),
                             what="recompute")
            assert "7 points" in screen_text(app)
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            await pilot.press("y")
            await wait_until(pilot, lambda: backend.saved != [], what="save")
            path, policy = backend.saved[0]
            assert path == JOBS_DIR / "dr-copy.toml" and policy.keep == 3
            assert policy.gfs is not None and policy.gfs.weekly.keep == 4
            assert screen is app.screen

    run(body)


def test_editor_shows_errors_at_their_lines_and_never_writes_invalid() -> None:
    from console_fixtures import JOB_TEXT

    from console.screens.editor import EditorScreen
    from console.widgets.job_editor import JobEditor

    async def body() -> None:
        backend = StaticBackend()
        app = make_app(backend=backend)
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            app.push_screen(EditorScreen(JOBS_DIR / "dr-copy.toml", JOB_TEXT, job_key=DR_KEY))
            await ready(pilot)
            editor = app.screen.query_one(JobEditor)
            editor.move_cursor((11, 8))  # after "keep = 7"
            await pilot.press("backspace", "1")
            await pilot.press("ctrl+s")
            await ready(pilot)
            assert backend.saved == []
            assert editor.error_lines == {11} and editor.cursor_location[0] == 11
            assert "line 12" in screen_text(app) or "dr-copy.toml:12" in screen_text(app)
            await pilot.press("f8")
            assert editor.cursor_location[0] == 11
            editor.move_cursor((11, 8))
            await pilot.press("backspace", "5", "ctrl+s")
            await ready(pilot)
            assert editor.error_lines == set() and len(backend.saved) == 1
            assert "keep = 5" in backend.saved[0][1]
            assert "saved" in screen_text(app)

    run(body)


def test_new_job_from_template() -> None:
    async def body() -> None:
        backend = StaticBackend()
        app = make_app(backend=backend)
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await pilot.press("n")
            await ready(pilot)
            await pilot.press(*"Lab 2", "enter")
            await ready(pilot)
            assert type(app.screen).__name__ == "EditorScreen"
            assert app.screen.path == JOBS_DIR / "lab-2.toml"
            await pilot.press("ctrl+s")
            await ready(pilot)
            assert backend.saved[0][0] == JOBS_DIR / "lab-2.toml"
            assert 'name = "Lab 2"' in backend.saved[0][1]

    run(body)


def test_history_tasks_follow_the_selected_session() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await pilot.press("h")
            await ready(pilot)
            assert "Tasks of 3" in screen_text(app)
            await pilot.press("j")
            await ready(pilot)
            text = screen_text(app)
            assert "Tasks of 2" in text and "Success" in text

    run(body)


def test_palette_switches_theme_and_help_opens() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            await pilot.press("question_mark")
            await ready(pilot)
            assert type(app.screen).__name__ == "HelpScreen"
            await wait_until(pilot, lambda: "Ferry console" in screen_text(app), what="help text")
            await pilot.press("escape")
            await ready(pilot)
            await pilot.press("f1")
            await ready(pilot)
            assert type(app.screen).__name__ == "HelpScreen"
            await pilot.press("q")
            await ready(pilot)
            assert type(app.screen).__name__ == "OverviewScreen"
            await pilot.press("ctrl+p")
            await ready(pilot)
            await pilot.press(*"Theme: ferry-light")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await ready(pilot)
            assert app.theme == "ferry-light"

    run(body)


def test_chain_view_switches_machines() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            app.nav.open_chain(DR_KEY, "db01")
            await ready(pilot)
            assert app.screen.machine == "db01"
            await pilot.press("right_square_bracket")
            await ready(pilot)
            assert app.screen.machine == "web01"
            text = screen_text(app)
            assert "rollback" in text and "incremental" in text

    run(body)


def test_thread_safety_of_sink_under_load() -> None:
    """Engine threads push while the UI pumps: every machine ends with its last value."""
    async def body() -> None:
        app = make_app(clock=SystemClock(), pump_interval=0.02)
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            session = app.new_session(DR_KEY)
            app.nav.open_live(DR_KEY)
            await ready(pilot)

            def producer(k: int) -> None:
                for i in range(1, 301):
                    session.sink(ev.TaskProgress(JOB, f"m{k:03d}", Stats(processed=i), 300,
                                                 1.0))

            threads = [threading.Thread(target=producer, args=(k,)) for k in range(50)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            await pilot.pause(0.2)
            assert len(session.model.rows) == 50
            assert all(r.processed == 300 for r in session.model.rows.values())
            assert app.screen.query_one(MachineTable).row_count == 50

    run(body)


def test_whatif_keys_are_not_typed_into_the_focused_field() -> None:
    """`W`, `[`, `]`, `{`, `}` move through the days while a form field has the focus;
    the sizes default to the real chains (no sizing model given to the backend)."""
    from console.screens.retention import RetentionScreen
    from console.widgets.size_chart import nice_ticks

    class Recording(StaticBackend):
        def __init__(self) -> None:
            super().__init__()
            self.sizings: list[Any] = []

        def simulate(self, spec: Any, policy: Any, start: Any, days: int, sizing: Any,
                     **what: Any) -> Any:
            self.sizings.append(sizing)
            return super().simulate(spec, policy, start, days, sizing, **what)

    async def body() -> None:
        backend = Recording()
        app = make_app(backend=backend)
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            app.nav.open_whatif(DR_KEY)
            await wait_until(pilot, lambda: isinstance(app.screen, RetentionScreen)
                             and app.screen.result is not None, what="preview")
            screen = app.screen
            keep = screen.query_one("#f-keep")
            assert keep.has_focus and backend.sizings == [None]
            last = screen.day_index
            await pilot.press("left_square_bracket", "left_square_bracket")
            assert screen.day_index == last - 2
            await pilot.press("right_square_bracket")
            assert screen.day_index == last - 1
            await pilot.press("W")
            worst = screen._worst_index(list(screen.result.days))
            assert screen.day_index == worst != last
            await pilot.press("left_curly_bracket")
            assert screen.day_index == max(0, worst - 30)
            assert keep.value == "7"  # nothing was typed into the field
            assert "real chains: full 12.0 GiB" in screen_text(app)
            assert "? Help" in screen_text(app).splitlines()[-1]  # the footer at 80x24
            await pilot.press("question_mark")
            await wait_until(pilot, lambda: type(app.screen).__name__ == "HelpScreen",
                             what="help over the what-if")
            await pilot.press("escape")
            await wait_until(pilot, lambda: app.screen is screen, what="back")
            assert keep.value == "7"
    run(body)
    assert nice_ticks(7.7) == [0, 2, 4, 6, 8] and nice_ticks(26.4) == [0, 10, 20, 30]
