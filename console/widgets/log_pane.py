"""Session log that follows the tail, and stops following while the operator scrolls up."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.widgets import Log

MAX_LINES = 5000


class LogPane(Log):
    """A capped `Log` whose border title says whether it follows new lines."""

    DEFAULT_CSS = """
    LogPane {
        height: 6;
        border: round $panel;
        border-title-color: $text-muted;
        padding: 0 1;
        scrollbar-size-vertical: 1;
    }
    LogPane:focus { border: round $primary; }
    LogPane.-paused { border-title-color: $warning; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "scroll_down", "Down", show=False, id="log.down"),
        Binding("k", "scroll_up", "Up", show=False, id="log.up"),
        Binding("g", "scroll_home", "Top", show=False, id="log.top"),
        Binding("G", "follow", "Follow", show=False, id="log.follow"),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(max_lines=MAX_LINES, auto_scroll=True, id=id)
        self._following = True
        self._update_title()

    @property
    def following(self) -> bool:
        return self.is_vertical_scroll_end or self.max_scroll_y == 0

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self.following != self._following:
            self._following = self.following
            self._update_title()

    def _update_title(self) -> None:
        self.border_title = "Log · following" if self._following else "Log · paused (G follows)"
        self.set_class(not self._following, "-paused")

    def add_lines(self, lines: list[str]) -> None:
        if lines:
            self.write_lines(lines)

    def action_follow(self) -> None:
        self.scroll_end(animate=False)
