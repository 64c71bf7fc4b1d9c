"""Where the console goes: the live run, chains, what-if, history, the job editor.

Each screen is opened by one method here (the keys, the palette and the tests all
call these), after checking that the job can be shown: a job file that is not
valid opens only in the editor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from console.records import JobEntry
from console.screens.live import LiveRunScreen

if TYPE_CHECKING:
    from console.app import FerryConsole


class Navigator:
    """The screens of one console (`app.nav`)."""

    def __init__(self, app: FerryConsole) -> None:
        self.app = app

    def open_live(self, key: str) -> None:
        session = self.app.sessions.get(key)
        if session is None:
            self.app.notify(f"{self.app.store.name(key)} is not running; s starts it, h shows its "
                        "history", severity="warning")
            return
        for screen in self.app.screen_stack:
            if isinstance(screen, LiveRunScreen) and screen.session is session:
                while self.app.screen is not screen:
                    self.app.pop_screen()
                return
        self.app.push_screen(LiveRunScreen(session))

    def open_chain(self, key: str, machine: str | None) -> None:
        from console.screens.chain import ChainScreen

        if self.app.spec_or_say(key) is None:
            return
        self.app.push_screen(ChainScreen(key, machine))

    def open_whatif(self, key: str) -> None:
        from console.screens.retention import RetentionScreen

        if self.app.spec_or_say(key) is not None:
            self.app.push_screen(RetentionScreen(key))

    def open_history(self, key: str | None) -> None:
        """One job's history, or every job's (`key` None)."""
        from console.screens.history import HistoryScreen

        if key is None or self.app.spec_or_say(key) is not None:
            self.app.push_screen(HistoryScreen(key))

    def _job_text(self, key: str) -> tuple[JobEntry, str] | None:
        """The job's entry and its file's text, or None after saying why it cannot be read."""
        entry = self.app.jobs.get(key)
        if entry is None:
            return None
        try:
            return entry, entry.path.read_text(encoding="utf-8")
        except OSError as exc:
            self.app.notify(f"{entry.path}: {exc}", severity="error")
            return None

    def open_editor(self, key: str) -> None:
        from console.screens.editor import EditorScreen

        if (found := self._job_text(key)) is not None:
            entry, text = found
            self.app.push_screen(EditorScreen(entry.path, text, job_key=key))

    def edit_external(self, key: str) -> None:
        """`E`: the job file in $EDITOR; saved when valid, else back in the built-in
        editor with the errors shown (nothing written)."""
        from console.external_editor import edit_externally
        from console.screens.editor import EditorScreen

        if (found := self._job_text(key)) is None:
            return
        entry, text = found
        edited = edit_externally(self.app, text, entry.path)
        if edited is None or edited == text:
            return
        errors = self.app.backend.save_text(entry.path, edited)
        if not errors:
            self.app.job_saved(key, self.app.backend.load_job(entry.path),
                               f"{entry.path.name} saved")
            return
        screen = EditorScreen(entry.path, text, job_key=key)
        self.app.push_screen(screen, wait_for_dismiss=False)
        self.app.call_after_refresh(screen.load_edited, edited, errors)

    def new_job(self) -> None:
        from console.screens.editor import new_job_flow

        new_job_flow(self.app)
