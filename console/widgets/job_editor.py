"""TOML job-file editor: TextArea with TOML highlighting that marks lines with errors."""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from rich.segment import Segment
from textual.strip import Strip
from textual.widgets import TextArea


class JobEditor(TextArea):
    """`TextArea.code_editor` for TOML that paints `error_lines` (0-based) with $error."""

    DEFAULT_CSS = """
    JobEditor { height: 1fr; border: round $panel; }
    JobEditor:focus { border: round $primary; }
    /* muted, with the normal text colour on top: the line stays readable (16 colours too) */
    JobEditor > .job-editor--error-line { background: $error-muted; color: $text; }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = TextArea.COMPONENT_CLASSES | {
        "job-editor--error-line"}

    def __init__(self, text: str, *, id: str | None = None) -> None:
        super().__init__(text, language="toml", theme="css", soft_wrap=False,
                         tab_behavior="indent", show_line_numbers=True, id=id)
        self.indent_width = 2
        self.error_lines: set[int] = set()

    def on_mount(self) -> None:
        if self.app.is_headless:
            self.cursor_blink = False  # deterministic snapshots

    def mark_errors(self, lines: Iterable[int]) -> None:
        self.error_lines = set(lines)
        self.refresh()

    def goto_line(self, line: int) -> None:
        """Put the cursor at the start of 0-based `line` and bring it into view."""
        line = max(0, min(line, self.document.line_count - 1))
        self.move_cursor((line, 0), center=True)
        self.focus()

    def _document_line(self, y: int) -> int | None:
        offset = y + int(self.scroll_offset.y)
        try:
            info = self.wrapped_document._offset_to_line_info[offset]
        except (AttributeError, IndexError):
            return offset if offset < self.document.line_count else None
        return info[0] if info is not None else None

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        if self.error_lines and self._document_line(y) in self.error_lines:
            style = self.get_component_rich_style("job-editor--error-line", partial=True)
            strip = Strip(Segment.apply_style(strip, post_style=style), strip.cell_length)
        return strip
