"""Session log that follows the tail, stops following while the operator scrolls up,
keeps following across a resize, and can be narrowed to the lines matching a search."""

from __future__ import annotations

from collections import deque
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
        self._all: deque[str] = deque(maxlen=MAX_LINES)
        self.search = ""
        self._update_title()

    @property
    def following(self) -> bool:
        return self.is_vertical_scroll_end or self.max_scroll_y == 0

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self.following != self._following:
            self._following = self.following
            self._update_title()

    def on_resize(self) -> None:
        if self._following:  # a resize must not leave a following log behind the tail
            self.call_after_refresh(self.scroll_end, animate=False)

    def _update_title(self) -> None:
        title = "Log · following" if self._following else "Log · paused (G follows)"
        if self.search:
            title += f" · matching “{self.search}”"
        self.border_title = title
        self.set_class(not self._following, "-paused")

    def add_lines(self, lines: list[str]) -> None:
        if not lines:
            return
        self._all.extend(lines)
        if self.search:
            lines = [ln for ln in lines if self.search in ln.lower()]
        if lines:
            self.write_lines(lines)

    def set_search(self, text: str) -> None:
        """Show only the lines containing `text` (case-insensitive); '' shows all."""
        self.search = text.strip().lower()
        self.clear()
        lines = [ln for ln in self._all if not self.search or self.search in ln.lower()]
        if lines:
            self.write_lines(lines)
        elif self.search:
            self.write_line(f"(no log line matches “{self.search}”)")
        self._update_title()

    def action_follow(self) -> None:
        self.scroll_end(animate=False)
