"""Job editor: edit a job file; on save the engine validates it and every error is shown
at its line. An invalid file is never written."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, OptionList, TextArea
from textual.widgets.option_list import Option

from console.backend import error_line, error_text
from console.external_editor import edit_externally
from console.screens.confirm import ConfirmModal
from console.screens.prompt import PromptModal
from console.widgets.job_editor import JobEditor
from engine.jobs.load import JobFileError, JobSpec

if TYPE_CHECKING:
    from console.app import FerryConsole


class EditorScreen(Screen[None]):
    """A TOML editor for one job file, with a list of validation errors under it."""

    DEFAULT_CSS = """
    EditorScreen #editor-status { height: 1; padding: 0 1; background: $boost; }
    EditorScreen #editor-status.-bad { color: $error; text-style: bold; }
    EditorScreen #editor-errors {
        height: auto;
        max-height: 6;
        display: none;
        border: round $error;
        border-title-color: $error;
    }
    EditorScreen #editor-errors.-shown { display: block; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s,f2", "save", "Save", id="editor.save", priority=True),
        Binding("ctrl+t", "check", "Check", id="editor.check", priority=True),
        Binding("f8", "next_error", "Next error", id="editor.next-error"),
        Binding("ctrl+o", "external", "$EDITOR", id="editor.external", priority=True),
        # priority: the text area would otherwise eat Escape and the screen never closes
        Binding("escape", "close", "Back", id="editor.close", priority=True),
        # `?` is a character in here: F1 is the help key of the editor
        Binding("f1", "app.help", "Help", id="editor.help", priority=True),
    ]

    def __init__(self, path: Path, text: str, *, job_key: str | None = None,
                 is_new: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.job_key = job_key
        self.is_new = is_new
        self.saved_text = "" if is_new else text
        self._initial = text
        self.errors: list[JobFileError] = []
        self._note = ""  # stays on the status line until the text changes

    @property
    def ferry(self) -> FerryConsole:
        return self.app  # type: ignore[return-value]

    @property
    def modified(self) -> bool:
        return self.query_one(JobEditor).text != self.saved_text

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="≡")
        yield JobEditor(self._initial, id="editor")
        errors = OptionList(id="editor-errors")
        errors.border_title = "Errors"
        yield errors
        yield Label("", id="editor-status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = f"Edit · {self.path.name}" + (" (new)" if self.is_new else "")
        self.sub_title = str(self.path.parent)
        self.query_one(JobEditor).focus()
        self._update_status()
        if not self.is_new:  # an invalid file opens with its errors shown
            errors = self.ferry.backend.validate_text(self._initial, self.path)
            if errors:
                self.show_errors(errors)
                self._note = "the file on disk has errors"
                self._update_status()

    # ---- status and errors -------------------------------------------------------------------
    @on(TextArea.Changed)
    def _editor_changed(self) -> None:
        self._note = ""
        self._update_status()

    @on(TextArea.SelectionChanged)
    def _editor_moved(self) -> None:
        self._update_status()

    def _update_status(self, note: str = "") -> None:
        if note:
            self._note = note
        note = self._note
        editor = self.query_one(JobEditor)
        row, col = editor.cursor_location
        parts = [self.path.name, f"Ln {row + 1}, Col {col + 1}"]
        if self.modified:
            parts.append("modified")
        if self.errors:
            parts.append(f"{len(self.errors)} error{'s' if len(self.errors) != 1 else ''}"
                         " (F8 next)")
        if note:
            parts.append(note)
        status = self.query_one("#editor-status", Label)
        status.update(" · ".join(parts))
        status.set_class(bool(self.errors), "-bad")

    def show_errors(self, errors: list[JobFileError]) -> None:
        """List the errors, mark their lines and put the cursor on the first one."""
        self.errors = errors
        listing = self.query_one("#editor-errors", OptionList)
        listing.clear_options()
        for index, error in enumerate(errors):
            line, text = error_line(error), error_text(error)
            where = f"line {line}: " if line and f":{line}" not in text else ""
            listing.add_option(Option(f"{where}{text}", id=str(index)))
        listing.set_class(bool(errors), "-shown")
        editor = self.query_one(JobEditor)
        editor.mark_errors(line - 1 for e in errors if (line := error_line(e)))
        first = next((error_line(e) for e in errors if error_line(e)), None)
        if first:
            editor.goto_line(first - 1)
        self._update_status()

    @on(OptionList.OptionSelected, "#editor-errors")
    def _error_picked(self, event: OptionList.OptionSelected) -> None:
        index = int(event.option.id or 0)
        line = error_line(self.errors[index]) if index < len(self.errors) else None
        if line:
            self.query_one(JobEditor).goto_line(line - 1)

    # ---- actions -----------------------------------------------------------------------------
    def action_check(self) -> None:
        errors = self.ferry.backend.validate_text(self.query_one(JobEditor).text, self.path)
        self.show_errors(errors)
        if not errors:
            self.notify("No errors", title="Check", timeout=3)

    def action_save(self) -> None:
        text = self.query_one(JobEditor).text
        try:
            errors = self.ferry.backend.save_text(self.path, text)
        except OSError as exc:
            self.notify(f"{self.path}: {exc}", title="Cannot save", severity="error", timeout=10)
            return
        self.show_errors(errors)
        if errors:  # listed under the editor, lines marked, status line says "not written"
            self._update_status("not saved: the file was not written")
            return
        self.saved_text = text
        self._update_status("saved")
        self._after_save()

    def _after_save(self) -> None:
        was_new, self.is_new = self.is_new, False
        self.title = f"Edit · {self.path.name}"
        if was_new or self.job_key is None:
            self.notify(f"{self.path.name} created", title="Saved")
            self.ferry.reload_jobs()
            self.job_key = str(self.path)
            return
        try:
            spec = self.ferry.backend.load_job(self.path)
        except Exception as exc:  # valid text but the engine still refuses: show it
            self.notify(str(exc), title="Saved, but", severity="warning")
            self.ferry.reload_jobs()
            return
        self._warn_encryption(spec)
        self.ferry.job_saved(self.job_key, spec, f"{self.path.name} saved")

    def _warn_encryption(self, spec: JobSpec) -> None:
        """Switching encryption on or off starts a new full chain (the reference product
        does the same): say so when the save changed it."""
        entry = self.ferry.store.jobs.get(self.job_key or "")
        before = entry.spec.storage.encryption if entry is not None and entry.spec else None
        if before is None or before == spec.storage.encryption:
            return
        state = "on" if spec.storage.encryption else "off"
        keep = (" Keep the password safe: losing it loses the copy." if spec.storage.encryption
                else "")
        self.notify(f"Encryption {state}: the next run copies a new full chain; the old chain "
                    f"ages out by retention.{keep}", title="Encryption", severity="warning",
                    timeout=10)

    def action_next_error(self) -> None:
        lines = sorted({line for e in self.errors if (line := error_line(e))})
        if not lines:
            return
        editor = self.query_one(JobEditor)
        current = editor.cursor_location[0] + 1
        target = next((ln for ln in lines if ln > current), lines[0])
        editor.goto_line(target - 1)

    def load_edited(self, text: str, errors: list[JobFileError]) -> None:
        """Text edited elsewhere that did not validate: show it with its errors."""
        self.query_one(JobEditor).load_text(text)
        self.show_errors(errors)
        self._update_status("not saved: the file was not written")

    def action_external(self) -> None:
        """Edit the current text in $EDITOR (like `crontab -e`); it comes back here,
        validated, and is saved only when valid."""
        editor = self.query_one(JobEditor)
        edited = edit_externally(self.app, editor.text, self.path)
        if edited is None:
            return
        if edited != editor.text:
            editor.load_text(edited)
        self.action_save()

    def action_close(self) -> None:
        if not self.modified:
            self.app.pop_screen()
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.app.pop_screen()

        self.app.push_screen(ConfirmModal(
            "Discard changes?", f"{self.path.name} has unsaved changes.", yes="Discard"),
            answer)


def job_file_name(name: str) -> str:
    """`DR copy (EU)` -> `dr-copy-eu.toml`."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"{slug or 'job'}.toml"


def new_job_flow(app: FerryConsole) -> None:
    """Ask for a name, then open the engine's template for it in the editor (unsaved)."""

    def got_name(name: str | None) -> None:
        if not name:
            return
        try:
            text = app.backend.template(name)
        except ValueError as exc:  # not a usable name
            app.notify(str(exc), title="Cannot create a job", severity="error", timeout=10)
            return
        path = app.backend.jobs_dir / job_file_name(name)
        if path.exists():
            app.notify(f"{path.name} already exists; pick another name", severity="error")
            return
        app.push_screen(EditorScreen(path, text, is_new=True))

    app.push_screen(PromptModal("Name of the new job", placeholder="e.g. DR copy"), got_name)
