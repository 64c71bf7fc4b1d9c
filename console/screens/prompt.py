"""Ask for one line of text (e.g. a new job's name); Enter accepts, Escape cancels."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label


class PromptModal(ModalScreen[str | None]):
    """Dismisses with the text entered, or None when cancelled."""

    DEFAULT_CSS = """
    PromptModal { align: center middle; }
    PromptModal > Vertical {
        width: 60;
        max-width: 100%;
        height: auto;
        border: thick $primary;
        background: $surface;
        padding: 1 2;
    }
    PromptModal Label { margin-bottom: 1; }
    PromptModal .prompt-hint { color: $text-muted; margin: 1 0 0 0; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="prompt.cancel"),
    ]

    def __init__(self, question: str, value: str = "", placeholder: str = "",
                 password: bool = False) -> None:
        super().__init__()
        self._question, self._value, self._placeholder = question, value, placeholder
        self._password = password  # masked, never pre-filled, taken as typed (no strip)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self._question)
            yield Input("" if self._password else self._value, placeholder=self._placeholder,
                        password=self._password, id="prompt-input")
            yield Label("Enter accepts · Escape cancels", classes="prompt-hint")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value if self._password else event.value.strip()
        event.input.value = ""  # a password does not stay in the widget
        self.dismiss(text or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
