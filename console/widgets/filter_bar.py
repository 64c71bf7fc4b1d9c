"""`/` filter input for lists: type to filter, Enter keeps it, Escape clears it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input


class FilterBar(Input):
    """A one-line, borderless filter; hidden until `open()`; the filter sticks after Enter."""

    DEFAULT_CSS = """
    FilterBar {
        display: none;
        height: 1;
        border: none;
        padding: 0 1;
        background: $boost;
    }
    FilterBar.-open { display: block; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "clear_filter", "Clear filter", id="filter.clear"),
        Binding("enter", "keep_filter", "Keep filter", id="filter.keep"),
    ]

    @dataclass
    class Applied(Message):
        """The filter text changed (or was cleared)."""

        bar: FilterBar
        text: str

        @property
        def control(self) -> FilterBar:
            return self.bar

    def __init__(self, *, id: str | None = None, placeholder: str = "filter…") -> None:
        super().__init__(placeholder=placeholder, id=id, compact=True)
        self._return_to: Widget | None = None

    def open(self) -> None:
        self._return_to = self.screen.focused
        self.add_class("-open")
        self.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Applied(self, event.value))

    def action_clear_filter(self) -> None:
        self.value = ""
        self.remove_class("-open")
        self.post_message(self.Applied(self, ""))
        self._give_back_focus()

    def action_keep_filter(self) -> None:
        if not self.value:
            self.remove_class("-open")
        self._give_back_focus()

    def _give_back_focus(self) -> None:
        if self._return_to is not None and self._return_to is not self:
            self._return_to.focus()
        else:
            self.screen.focus_next()
