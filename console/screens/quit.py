"""Quit while runs of this console are active: leave them running, stop them, or stay.

`l` leaves them running in the background (the console's process lets go of the
terminal and finishes them headless; `ferry sessions` and any new console show
them), `s` stops them, `n`/Escape cancels. Cancel is focused first.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

LEAVE, STOP = "leave", "stop"


class QuitModal(ModalScreen[str | None]):
    """Dismisses with LEAVE, STOP or None (stay)."""

    DEFAULT_CSS = """
    QuitModal { align: center middle; }
    QuitModal > Vertical {
        width: 70; max-width: 100%; height: auto;
        border: thick $warning; background: $surface; padding: 1 2;
    }
    QuitModal .quit-title { text-style: bold; width: 1fr; }
    QuitModal .quit-body { margin: 1 0; width: 1fr; }
    QuitModal Horizontal { height: auto; align-horizontal: right; }
    QuitModal Button { margin-left: 1; min-width: 10; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("l", "answer('leave')", "Leave running", id="quit.leave"),
        Binding("s", "answer('stop')", "Stop them", id="quit.stop"),
        Binding("n", "answer(None)", "Cancel", id="quit.cancel"),
        Binding("escape", "answer(None)", "Cancel", show=False, id="quit.cancel-escape"),
    ]

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self._names = names

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Quit while runs are active?", classes="quit-title")
            yield Static(
                f"Running: {', '.join(self._names)}.\n"
                "Leave running: they go on in the background and finish on their own; "
                "ferry sessions or a new console shows them.\n"
                "Stop: each running machine stops at its next block and ends Failed "
                "('stopped by operator'); the next run continues from there.",
                classes="quit-body", markup=False)
            with Horizontal():
                yield Button("Cancel (n)", id="quit-cancel", variant="default")
                yield Button("Stop them (s)", id="quit-stop", variant="error")
                yield Button("Leave running (l)", id="quit-leave", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#quit-cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss({"quit-leave": LEAVE, "quit-stop": STOP}.get(event.button.id or ""))

    def action_answer(self, value: str | None) -> None:
        self.dismiss(value)
