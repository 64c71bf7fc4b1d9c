"""Ferry's operations console: the Textual App and its one state store.

State lives in `self.store` (console/store.py) and nowhere else: the job
entries, the machines read from the repositories, the last run per job, and
every `RunSession`. Thread workers read the disk and post messages; the App's
handlers apply them to the store and tell the screens (`JobChanged`); screens
read the store and call the App's methods. Engine threads only push events into
a session's buffer, which a timer (`pump`) drains on the UI thread in batches.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.notifications import SeverityLevel

from console.backend import Backend
from console.clock import Clock, SystemClock
from console.commands import FerryCommands
from console.following import Following
from console.keymap import load_keymap
from console.messages import (
    JobChanged,
    JobDataLoaded,
    JobSaved,
    JobsChanged,
    JobsLoaded,
    LiveSessionsFound,
    RunEnded,
)
from console.navigation import Navigator
from console.records import JobEntry, MachineInfo
from console.run_model import as_status
from console.run_session import RunSession
from console.screens.confirm import ConfirmModal
from console.screens.help import HelpScreen
from console.screens.live import LiveRunScreen
from console.screens.overview import OverviewScreen
from console.screens.quit import LEAVE, STOP, QuitModal
from console.steering import Steering
from console.store import JobState, Store
from console.themes import DEFAULT_THEME, NO_COLOR_THEME, THEMES_DIR, load_themes
from engine.copy.control import RunControl
from engine.copy.runner import SessionResult
from engine.events import LogLine
from engine.jobs.load import JobSpec
from engine.live.hangup import hangup_note, let_go_of_terminal
from engine.model import Status

LIVE_SCAN_EVERY = 1.0  # seconds between looks for runs of other processes


class FerryConsole(App[int], inherit_bindings=False):
    """The operations console (`ferry`, `ferry console --jobs DIR`)."""

    CSS_PATH = "app.tcss"
    TITLE = "Ferry"
    COMMANDS = App.COMMANDS | {FerryCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", show=False, id="app.quit"),
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
        self.store = Store()
        self.jobs_error = ""
        self._states: dict[str, JobState] = {}
        self._watch_hangup = watch_hangup
        self._hung_up = False
        self.leave_running = False  # quit chose "leave them running in the background"
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
        self.user_keymap: dict[str, str] = {}  # binding id -> keys, as the keymap file set
        self.steering = Steering(self)
        self.nav = Navigator(self)
        self.following = Following(self)

    # ---- life cycle --------------------------------------------------------------------------
    def on_mount(self) -> None:
        from console.bindings import binding_ids  # imports every screen; keep start-up lazy

        keymap = load_keymap(self._keymap_file, known_ids=binding_ids())
        self.startup_messages.extend(keymap.errors)
        if keymap.keymap:
            self.user_keymap = keymap.keymap
            self.set_keymap(keymap.keymap)
        self.push_screen(OverviewScreen())
        self.load_jobs()
        self.set_interval(self.pump_interval, self.pump, name="pump")
        self.set_interval(LIVE_SCAN_EVERY, self.scan_live, name="live-scan")
        for text in self.startup_messages:
            self.notify(text, title="Start-up", severity="warning", timeout=10)
        if self._watch_hangup and not self.is_headless:
            loop = asyncio.get_running_loop()

            def on_sighup(_signum: int, _frame: object) -> None:
                # A plain handler, not loop.add_signal_handler: after a hang-up the loop
                # itself may be stuck in Textual's shutdown, writing to the dead terminal.
                signal.signal(signal.SIGHUP, signal.SIG_IGN)
                let_go_of_terminal()
                self._keep_runs_headless()
                loop.call_soon_threadsafe(self.exit, 0)

            try:
                signal.signal(signal.SIGHUP, on_sighup)
            except (ValueError, OSError):  # not the main thread
                pass

    def hang_up(self) -> None:
        """SIGHUP (the SSH session dropped): the runs go on headless, the UI exits.

        The runs are plain threads of this process, so they outlive the App; the
        entry point waits for them. A watchdog thread also ends the process once
        they are done, in case Textual's shutdown got stuck on the dead terminal.
        """
        self._keep_runs_headless()
        self.exit(0)

    def local_runs(self) -> list[RunSession]:
        return [s for s in list(self.sessions.values()) if s.local and s.active]

    def _keep_runs_headless(self) -> None:
        """Note the hang-up in each run's history and start the exit watchdog once."""
        running = self.local_runs()
        note = hangup_note("console")
        for session in running:
            if isinstance(session.control, RunControl):
                session.control.note(note)
        if not self.is_headless and not self._hung_up:
            self._hung_up = True
            threading.Thread(target=_exit_watchdog, args=(running,), daemon=False,
                             name="ferry-hangup").start()

    async def action_quit(self) -> None:
        active = self.local_runs()
        if not active:
            self.exit(0)
            return

        def answer(choice: str | None) -> None:
            if choice == STOP:
                for session in active:
                    if session.control is not None:
                        session.control.stop()
                    session.model.stop_requested = True
                self.notify("Stopping the runs at their next block…", title="Quit")
                self.exit(0)
            elif choice == LEAVE:
                self.leave_running = True
                self.exit(0)

        self.push_screen(QuitModal([s.job for s in active]), answer)

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.screen.dismiss(None)
            return
        self.push_screen(HelpScreen(self.screen))

    # ---- the store ---------------------------------------------------------------------------
    @property
    def jobs(self) -> dict[str, JobEntry]:
        return self.store.jobs

    @property
    def machines(self) -> dict[str, list[MachineInfo]]:
        return self.store.machines

    @property
    def sessions(self) -> dict[str, RunSession]:
        return self.store.sessions

    def state_of(self, key: str) -> JobState:
        return self.store.state_of(key)

    def machine_info(self, key: str, machine: str) -> MachineInfo | None:
        return self.store.machine_info(key, machine)

    def main_screen(self) -> OverviewScreen | None:
        return next((s for s in self.screen_stack if isinstance(s, OverviewScreen)), None)

    def current_job_key(self) -> str | None:
        """The job the operator is looking at (screen's job, else the overview's selection)."""
        key = getattr(self.screen, "job_key", None)
        if key:
            return str(key)
        main = self.main_screen()
        return main.selected_job() if main is not None else None

    def job_changed(self, key: str) -> None:
        """Tell every screen that shows `key` to refresh."""
        self._states[key] = self.state_of(key)
        for screen in self.screen_stack:
            screen.post_message(JobChanged(key))

    # ---- loading (workers read, handlers write the store) ------------------------------------
    def reload_jobs(self) -> None:
        self.load_jobs()

    @work(thread=True, exclusive=True, group="jobs", exit_on_error=False, description="jobs")
    def load_jobs(self) -> None:
        try:
            entries = self.backend.discover()
        except Exception as exc:
            self.post_message(JobsLoaded([], error=str(exc)))
            return
        self.post_message(JobsLoaded(entries))
        for entry in entries:
            if entry.spec is not None:
                self.post_message(self._read_job(entry.key, entry.spec))

    @work(thread=True, group="job-data", exit_on_error=False, description="job data")
    def load_job_data(self, key: str, spec: JobSpec) -> None:
        self.post_message(self._read_job(key, spec))

    def _read_job(self, key: str, spec: JobSpec) -> JobDataLoaded:
        """Chains, last run and next start of one job (blocking: worker threads only)."""
        errors: list[str] = []
        try:
            machines = self.backend.machines(spec)
        except Exception as exc:
            machines, errors = [], [str(exc)]
        try:
            last = self.backend.last_run(spec)
        except Exception as exc:
            last = None
            errors.append(f"history: {exc}")
        try:
            upcoming = self.backend.next_run(spec, self.clock.now())
        except Exception:
            upcoming = None
        return JobDataLoaded(key, machines, last, upcoming, "; ".join(errors))

    def on_jobs_loaded(self, message: JobsLoaded) -> None:
        self.store.set_jobs(message.entries)
        self.jobs_error = message.error
        if message.error:
            self.notify(message.error, title="Jobs", severity="error", timeout=10)
        for screen in self.screen_stack:
            screen.post_message(JobsChanged(message.error))
        self.scan_live()  # runs of other processes, at once rather than at the next tick

    def on_job_data_loaded(self, message: JobDataLoaded) -> None:
        key = message.job_key
        if key not in self.store.jobs:
            return
        self.store.machines[key] = message.machines
        self.store.machine_errors[key] = message.error
        if message.last_run is not None:
            self.store.last_runs[key] = message.last_run
            session = self.store.sessions.get(key)
            if session is not None and message.last_run.session.id == session.model.session:
                self.store.finished.pop(key, None)  # the history has caught up
        if message.next_run is not None:
            self.store.next_runs[key] = message.next_run
        else:
            self.store.next_runs.pop(key, None)
        self.job_changed(key)

    # ---- the pump: engine events -> models -> screens ----------------------------------------
    def pump(self) -> None:
        now = self.clock.monotonic()
        for key, session in list(self.sessions.items()):
            was_active = session.active
            if not session.pump(now):
                continue
            if was_active and not session.active and session.remote is not None:
                self.following.ended(key, session)
            self.sync_live(session)
            if session.model.status is not None:
                self.store.finished[key] = session.model.status
            state = self.state_of(key)
            if state != self._states.get(key):
                self.job_changed(key)
            main = self.main_screen()
            if main is not None:
                main.sync_job(key)

    # ---- run control -------------------------------------------------------------------------
    def spec_or_say(self, key: str) -> JobSpec | None:
        """The job's spec, or None after saying its file is not valid."""
        entry = self.jobs.get(key)
        if entry is None or entry.spec is None:
            self.notify(f"{entry.name if entry else key}: the job file is not valid; "
                        "press e to fix it", severity="error")
            return None
        return entry.spec

    def new_session(self, key: str, control: RunControl | None = None) -> RunSession:
        """Register a session for `key` without starting a worker (tests script its events)."""
        entry = self.jobs.get(key)
        session = RunSession(key, entry.spec if entry else None, control)
        self.sessions[key] = session
        self._states[key] = self.state_of(key)
        return session

    def start_job(self, key: str, only: list[str] | None = None) -> None:
        """Start a run of the job (`only`: just those machines, a retry)."""
        spec = self.spec_or_say(key)
        if spec is None:
            return
        current = self.sessions.get(key)
        if current is None or not current.active:
            self.following.follow_new(self.following.running_elsewhere(spec))
            current = self.sessions.get(key)
        if current is not None and current.active:
            by = "" if current.local else f" (started by {current.started_by})"
            self.notify(f"{current.job} is already running{by}: showing that run",
                        severity="warning")
            self.nav.open_live(key)
            return
        control = self.backend.make_control()
        session = self.new_session(key, control)

        def run() -> None:
            result: SessionResult | None = None
            error = ""
            try:
                result = self.backend.run_job(spec, session.sink, control, only=only) \
                    if only else self.backend.run_job(spec, session.sink, control)
            except Exception as exc:  # noqa: BLE001 - said in the console, not a traceback
                error = str(exc) or type(exc).__name__
            finally:
                session.thread_done.set()
                self.post_message(RunEnded(key, result, error))

        # A plain thread, not a Textual worker: the run must outlive the UI (quit with
        # "leave running", a hang-up); the entry point waits for it.
        session.thread = threading.Thread(target=run, name=f"ferry-run-{session.job}",
                                          daemon=False)
        session.thread.start()
        what = f" (retry: {', '.join(only)})" if only else ""
        self.notify(f"{session.job}: started{what}", title="Run")
        self.job_changed(key)
        self.nav.open_live(key)

    def on_run_ended(self, message: RunEnded) -> None:
        key = message.job_key
        session = self.sessions.get(key)
        if session is None:
            return
        self.pump()
        session.ended = True
        if message.result is not None:
            session.result = message.result
            status = as_status(session.result.status)
            self.store.finished[key] = status
            levels: dict[Status, SeverityLevel] = {Status.SUCCESS: "information",
                                                   Status.WARNING: "warning"}
            severity = levels.get(status, "error")
            self.notify(f"{session.job}: {status}", title="Run finished", severity=severity)
        else:
            session.error = message.error or "the run ended without a result"
            self.store.finished[key] = Status.FAILED
            session.model.apply(LogLine(job=session.job, level="error",
                                        text=f"run failed: {session.error}"),
                                self.clock.monotonic())
            self.notify(f"{session.job}: {session.error}", title="Run failed",
                        severity="error", timeout=15)
        self.sync_live(session)
        self.job_changed(key)
        entry = self.jobs.get(key)
        if entry is not None and entry.spec is not None:
            self.load_job_data(key, entry.spec)  # new points, new history row

    # ---- runs of other processes (console/following.py) -----------------------------------
    @work(thread=True, exclusive=True, group="live-scan", exit_on_error=False,
          description="live sessions")
    def scan_live(self) -> None:
        infos = self.following.scan()
        if infos is not None:
            self.post_message(LiveSessionsFound(infos))

    def on_live_sessions_found(self, message: LiveSessionsFound) -> None:
        self.following.follow_new(message.sessions)

    def sync_live(self, session: RunSession) -> None:
        for screen in self.screen_stack:
            if isinstance(screen, LiveRunScreen) and screen.session is session:
                screen.sync()

    # ---- schedule ----------------------------------------------------------------------------
    def toggle_schedule(self, key: str) -> None:
        spec = self.spec_or_say(key)
        if spec is None:
            return
        enabled = not spec.enabled
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
            self.job_saved(message.job_key, message.spec, message.text, message.title)

    def job_saved(self, key: str, spec: JobSpec | None, text: str,
                   title: str = "Saved") -> None:
        entry = self.jobs.get(key)
        if entry is not None and spec is not None:
            entry.spec, entry.error, entry.errors = spec, "", []
            self.load_job_data(key, spec)
        self.notify(text, title=title)
        self.job_changed(key)

    def switch_theme(self, name: str) -> None:
        self.theme = name
        self.notify(f"Theme: {name}", title="Theme", timeout=3)


def _exit_watchdog(sessions: list[RunSession], grace: float = 1.5) -> None:
    """After a hang-up: wait for the runs to finish (headless, however long they take),
    give the normal exit `grace` seconds, then end the process — nobody is left to see
    a shutdown stuck on the dead terminal."""
    for session in sessions:
        session.thread_done.wait()
    time.sleep(grace)
    os._exit(0)
