"""Ferry's operations console: the Textual App that owns all console state.

State lives here and nowhere else: the job entries, the machines read from the
repositories, the last status per job, and every `RunSession`. Screens show it
and call the App's methods; thread workers only post messages; engine threads
only push events into a session's buffer, which a timer (`pump`) drains on the
UI thread in batches.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

from textual import on, work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from console.backend import Backend, EngineUnavailable, JobEntry, MachineInfo
from console.clock import Clock, SystemClock
from console.commands import FerryCommands
from console.keymap import load_keymap
from console.messages import JobChanged, JobSaved
from console.run_session import JobState, RunSession, job_state
from console.screens.confirm import ConfirmModal
from console.screens.help import HelpScreen
from console.screens.live import LiveRunScreen
from console.screens.main import MainScreen
from console.themes import DEFAULT_THEME, NO_COLOR_THEME, THEMES_DIR, load_themes


class FerryConsole(App[int], inherit_bindings=False):
    """The operations console (`ferry`, `ferry console --jobs DIR`)."""

    CSS_PATH = "app.tcss"
    TITLE = "Ferry"
    COMMANDS = App.COMMANDS | {FerryCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True, id="app.quit-ctrl"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("f1", "help", "Help", show=False, id="app.help-f1"),
        Binding("ctrl+p", "command_palette", "Palette", show=False, priority=True,
                id="app.palette"),
        Binding("ctrl+c", "help_quit", "How to quit", show=False, system=True, id="app.ctrl-c"),
    ]

    def __init__(
        self,
        jobs_dir: Path | str | None = None,
        *,
        backend: Backend | None = None,
        clock: Clock | None = None,
        themes_dir: Path | None = None,
        keymap_file: Path | None = None,
        pump_interval: float = 0.25,
        theme: str | None = None,
        watch_hangup: bool = True,
    ) -> None:
        super().__init__()
        self.backend = backend or Backend(jobs_dir)
        self.clock: Clock = clock or SystemClock()
        self.pump_interval = pump_interval
        self.jobs: dict[str, JobEntry] = {}
        self.machines: dict[str, list[MachineInfo]] = {}
        self.statuses: dict[str, str] = {}
        self.sessions: dict[str, RunSession] = {}
        self._states: dict[str, JobState] = {}
        self._watch_hangup = watch_hangup
        self._hung_up = False
        self.startup_messages: list[str] = []
        loaded = load_themes(themes_dir or THEMES_DIR)
        self.startup_messages.extend(loaded.errors)
        self.ferry_themes = [t.name for t in loaded.themes]
        for t in loaded.themes:
            self.register_theme(t)
        wanted = theme or (NO_COLOR_THEME if os.environ.get("NO_COLOR") is not None
                           else DEFAULT_THEME)
        if wanted in self.available_themes:
            self.theme = wanted
        elif loaded.themes:
            self.theme = loaded.themes[0].name
        self._keymap_file = keymap_file

    # ---- life cycle --------------------------------------------------------------------------
    def on_mount(self) -> None:
        from console.bindings import binding_ids  # imports every screen; keep start-up lazy

        keymap = load_keymap(self._keymap_file, known_ids=binding_ids())
        self.startup_messages.extend(keymap.errors)
        if keymap.keymap:
            self.set_keymap(keymap.keymap)
        self.push_screen(MainScreen())
        self.set_interval(self.pump_interval, self.pump, name="pump")
        for text in self.startup_messages:
            self.notify(text, title="Start-up", severity="warning", timeout=10)
        if self._watch_hangup and not self.is_headless:
            loop = asyncio.get_running_loop()

            def on_sighup(_signum: int, _frame: object) -> None:
                # A plain handler, not loop.add_signal_handler: after a hang-up the loop
                # itself may be stuck in Textual's shutdown, writing to the dead terminal.
                self._stop_runs_and_watch()
                loop.call_soon_threadsafe(self.exit, 0)

            try:
                signal.signal(signal.SIGHUP, on_sighup)
            except (ValueError, OSError):  # not the main thread
                pass

    def hang_up(self) -> None:
        """SIGHUP (the SSH session dropped): stop runs so they end consistently, then exit.

        The terminal is gone, so Textual's own shutdown can block writing to it; a
        watchdog thread lets the runs finish their current block (locks released,
        history written) and then ends the process if the normal exit got stuck.
        """
        self._stop_runs_and_watch()
        self.exit(0)

    def _stop_runs_and_watch(self) -> None:
        """Stop every run (thread-safe flags only) and start the exit watchdog once."""
        running = [s for s in list(self.sessions.values()) if s.worker is not None and s.active]
        for session in running:
            if session.control is not None:
                session.control.stop()
        if not self.is_headless and not self._hung_up:
            self._hung_up = True
            threading.Thread(target=_exit_watchdog, args=(running,), daemon=True,
                             name="ferry-hangup").start()

    async def action_quit(self) -> None:
        active = [s for s in self.sessions.values() if s.active]
        if not active:
            self.exit(0)
            return

        def answer(yes: bool | None) -> None:
            if yes:
                for session in active:
                    if session.control is not None:
                        session.control.stop()
                self.exit(0)

        names = ", ".join(s.job for s in active)
        self.push_screen(ConfirmModal(
            "Quit while runs are active?",
            f"Running: {names}.\nQuitting stops them; their tasks end as Failed "
            "('stopped by operator') and the next run continues where they left off.",
            yes="Stop and quit"), answer)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
            return
        self.push_screen(HelpScreen(self.screen))

    # ---- state -------------------------------------------------------------------------------
    def set_jobs(self, entries: list[JobEntry]) -> None:
        self.jobs = {e.key: e for e in entries}

    def state_of(self, key: str) -> JobState:
        entry = self.jobs.get(key)
        return job_state(entry.spec if entry else None, self.sessions.get(key))

    def machine_info(self, key: str, machine: str) -> MachineInfo | None:
        return next((m for m in self.machines.get(key, []) if m.name == machine), None)

    def main_screen(self) -> MainScreen | None:
        for screen in self.screen_stack:
            if isinstance(screen, MainScreen):
                return screen
        return None

    def current_job_key(self) -> str | None:
        """The job the operator is looking at (screen's job, else the tree's selection)."""
        key = getattr(self.screen, "job_key", None)
        if key:
            return str(key)
        main = self.main_screen()
        return main.selected_job() if main is not None else None

    def job_changed(self, key: str, spec: Any | None = None) -> None:
        """Tell every screen that shows `key` to refresh."""
        self._states[key] = self.state_of(key)
        for screen in self.screen_stack:
            screen.post_message(JobChanged(key, spec))

    # ---- the pump: engine events -> models -> screens ----------------------------------------
    def pump(self) -> None:
        now = self.clock.monotonic()
        for key, session in list(self.sessions.items()):
            if not session.pump(now):
                continue
            for screen in self.screen_stack:
                if isinstance(screen, LiveRunScreen) and screen.session is session:
                    screen.sync()
            state = self.state_of(key)
            if state != self._states.get(key):
                if session.model.status:
                    self.statuses[key] = session.model.status
                self.job_changed(key)

    # ---- run control -------------------------------------------------------------------------
    def _spec(self, key: str) -> Any | None:
        entry = self.jobs.get(key)
        if entry is None or entry.spec is None:
            self.notify(f"{entry.name if entry else key}: the job file is not valid; "
                        "press e to fix it", severity="error")
            return None
        return entry.spec

    def new_session(self, key: str, control: Any | None = None) -> RunSession:
        """Register a session for `key` without starting a worker (tests script its events)."""
        entry = self.jobs.get(key)
        session = RunSession(key, entry.spec if entry else None, control)
        self.sessions[key] = session
        self._states[key] = self.state_of(key)
        return session

    def start_job(self, key: str) -> None:
        spec = self._spec(key)
        if spec is None:
            return
        current = self.sessions.get(key)
        if current is not None and current.active:
            self.notify(f"{current.job} is already running", severity="warning")
            self.open_live(key)
            return
        try:
            control = self.backend.make_control()
        except EngineUnavailable as exc:
            self.notify(str(exc), title="Cannot start", severity="error", timeout=10)
            return
        session = self.new_session(key, control)

        def run() -> Any:
            try:
                return self.backend.run_job(spec, session.sink, control)
            finally:
                session.thread_done.set()

        session.worker = self.run_worker(
            run,
            name=f"run:{key}", group=f"run:{key}", thread=True, exit_on_error=False,
            description=f"run {session.job}")
        self.notify(f"{session.job}: started", title="Run")
        self.job_changed(key)
        self.open_live(key)

    @on(Worker.StateChanged)
    def _run_worker_changed(self, event: Worker.StateChanged) -> None:
        name = event.worker.name or ""
        if not name.startswith("run:") or event.state not in (
                WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
            return
        key = name[4:]
        session = self.sessions.get(key)
        if session is None:
            return
        self.pump()
        session.ended = True
        if event.state == WorkerState.SUCCESS:
            session.result = event.worker.result
            status = str(getattr(session.result, "status", "") or session.model.status)
            status = getattr(status, "value", status)
            self.statuses[key] = str(status)
            severity = {"Success": "information", "Warning": "warning"}.get(str(status), "error")
            self.notify(f"{session.job}: {status}", title="Run finished", severity=severity)
        else:
            error = event.worker.error
            session.error = str(error) if error else "cancelled"
            self.statuses[key] = "Failed"
            session.model.apply(_log_event(session.job, f"run failed: {session.error}"),
                                self.clock.monotonic())
            self.notify(f"{session.job}: {session.error}", title="Run failed",
                        severity="error", timeout=15)
        for screen in self.screen_stack:
            if isinstance(screen, LiveRunScreen) and screen.session is session:
                screen.sync()
        self.machines.pop(key, None)
        self.job_changed(key)

    def _active(self, key: str) -> RunSession | None:
        session = self.sessions.get(key)
        if session is None or not session.active:
            name = self.jobs[key].name if key in self.jobs else key
            self.notify(f"{name} is not running", severity="warning")
            return None
        return session

    def hold_job(self, key: str) -> None:
        session = self._active(key)
        if session is None or session.control is None:
            return
        if session.held_by_operator:
            self.notify(f"{session.job} is already on hold", severity="warning")
            return
        session.control.hold("operator")
        self.notify(f"{session.job}: on hold (operator); r resumes", title="Hold")
        self.job_changed(key)
        self._sync_live(session)

    def resume_job(self, key: str) -> None:
        session = self._active(key)
        if session is None or session.control is None:
            return
        if not session.held_by_operator:
            held = session.model.held_rows()
            text = (f"{len(held)} machine(s) wait for a source lock; they resume by themselves"
                    if held else f"{session.job} is not on hold")
            self.notify(text, severity="warning")
            return
        session.control.resume()
        self.notify(f"{session.job}: resumed", title="Resume")
        self.job_changed(key)
        self._sync_live(session)

    def stop_job(self, key: str) -> None:
        session = self._active(key)
        if session is None or session.control is None:
            return

        def answer(yes: bool | None) -> None:
            if yes and session.control is not None:
                session.control.stop()
                self.notify(f"{session.job}: stopping…", title="Stop", severity="warning")
                self.job_changed(key)
                self._sync_live(session)

        self.push_screen(ConfirmModal(
            f"Stop {session.job}?",
            "Running tasks end as Failed ('stopped by operator'); restore points already "
            "copied stay. The next run continues from there.", yes="Stop run"), answer)

    def _sync_live(self, session: RunSession) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, LiveRunScreen) and screen.session is session:
                screen.sync()

    # ---- schedule ----------------------------------------------------------------------------
    def toggle_schedule(self, key: str) -> None:
        spec = self._spec(key)
        if spec is None:
            return
        enabled = not bool(getattr(spec, "enabled", True))
        if enabled:
            self._set_schedule(key, True)
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self._set_schedule(key, False)

        self.push_screen(ConfirmModal(
            f"Disable the schedule of {spec.name}?",
            "The job file gets enabled = false: the daemon stops starting it. "
            "You can still start it by hand.", yes="Disable"), answer)

    @work(thread=True, group="schedule", exit_on_error=False)
    def _set_schedule(self, key: str, enabled: bool) -> None:
        entry = self.jobs[key]
        try:
            spec = self.backend.set_enabled(entry.path, enabled)
        except Exception as exc:
            self.post_message(JobSaved(key, None, "", error=f"{entry.name}: {exc}"))
            return
        self.post_message(JobSaved(
            key, spec, f"{entry.name}: schedule {'enabled' if enabled else 'disabled'}"))

    def on_job_saved(self, message: JobSaved) -> None:
        if message.error:
            self.notify(message.error, title="Not saved", severity="error", timeout=10)
        else:
            self._job_saved(message.job_key, message.spec, message.text)

    def _job_saved(self, key: str, spec: Any, text: str) -> None:
        entry = self.jobs.get(key)
        if entry is not None:
            entry.spec, entry.error = spec, ""
        self.notify(text, title="Saved")
        self.job_changed(key, spec)

    # ---- navigation --------------------------------------------------------------------------
    def open_live(self, key: str) -> None:
        session = self.sessions.get(key)
        if session is None:
            name = self.jobs[key].name if key in self.jobs else key
            self.notify(f"{name} has not run in this console; press s to start it",
                        severity="warning")
            return
        for screen in self.screen_stack:
            if isinstance(screen, LiveRunScreen) and screen.session is session:
                while self.screen is not screen:
                    self.pop_screen()
                return
        self.push_screen(LiveRunScreen(session))

    def open_chain(self, key: str, machine: str | None) -> None:
        from console.screens.chain import ChainScreen

        if self._spec(key) is None:
            return
        self.push_screen(ChainScreen(key, machine))

    def open_whatif(self, key: str) -> None:
        from console.screens.retention import RetentionScreen

        if self._spec(key) is not None:
            self.push_screen(RetentionScreen(key))

    def open_history(self, key: str) -> None:
        from console.screens.history import HistoryScreen

        if self._spec(key) is not None:
            self.push_screen(HistoryScreen(key))

    def open_editor(self, key: str) -> None:
        from console.screens.editor import EditorScreen

        entry = self.jobs.get(key)
        if entry is None:
            return
        try:
            text = entry.path.read_text(encoding="utf-8")
        except OSError as exc:
            self.notify(f"{entry.path}: {exc}", severity="error")
            return
        self.push_screen(EditorScreen(entry.path, text, job_key=key))

    def new_job(self) -> None:
        from console.screens.editor import new_job_flow

        new_job_flow(self)

    def switch_theme(self, name: str) -> None:
        self.theme = name
        self.notify(f"Theme: {name}", title="Theme", timeout=3)

    def reload_jobs(self) -> None:
        main = self.main_screen()
        if main is not None:
            main.action_reload()

    def screen_for(self, kind: type[Screen[Any]]) -> Screen[Any] | None:
        return next((s for s in self.screen_stack if isinstance(s, kind)), None)


def _exit_watchdog(sessions: list[RunSession], grace: float = 1.5,
                   limit: float = 120.0) -> None:
    """Wait for stopped runs to end (bounded), give the normal exit `grace` seconds, then
    end the process: after a hang-up nobody is left to see a stuck shutdown."""
    deadline = time.monotonic() + limit
    for session in sessions:
        session.thread_done.wait(max(0.0, deadline - time.monotonic()))
    time.sleep(grace)
    os._exit(0)


def _log_event(job: str, text: str) -> Any:
    from engine.events import LogLine

    return LogLine(job=job, level="error", text=text)
