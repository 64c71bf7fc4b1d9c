"""`?`/F1 help: the bundled `console/help.md`, plus the keys of the screen underneath."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Label, Markdown

HELP_FILE = Path(__file__).resolve().parent.parent / "help.md"


def keys_markdown(screen: Screen[object] | None) -> str:
    """A Markdown table of the keys active on `screen` (after keymap remaps)."""
    if screen is None:
        return ""
    rows = []
    seen: set[tuple[str, str]] = set()
    for active in screen.active_bindings.values():
        binding = active.binding
        if not binding.description or not binding.id:  # Ferry's own keys only
            continue
        display = screen.app.get_key_display(binding)
        item = (display, binding.description)
        if item in seen:
            continue
        seen.add(item)
        rows.append(f"| `{display}` | {binding.description} |")
    if not rows:
        return ""
    return "\n## Keys on this screen\n\n| key | action |\n|---|---|\n" + "\n".join(rows) + "\n"


class HelpScreen(ModalScreen[None]):
    """Help modal; Escape, `q`, `?` or F1 closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical {
        width: 100;
        max-width: 100%;
        height: 100%;
        max-height: 40;
        border: thick $primary;
        background: $surface;
    }
    HelpScreen VerticalScroll { height: 1fr; padding: 0 1; }
    HelpScreen .help-hint { color: $text-muted; height: 1; padding: 0 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="help.close"),
        Binding("q", "close", "Close", show=False, id="help.close-q"),
        Binding("question_mark", "close", "Close", show=False, id="help.close-question"),
        Binding("f1", "close", "Close", show=False, id="help.close-f1"),
        Binding("j", "scroll('down')", "Down", show=False, id="help.down"),
        Binding("k", "scroll('up')", "Up", show=False, id="help.up"),
        Binding("g", "scroll('home')", "Top", show=False, id="help.top"),
        Binding("G", "scroll('end')", "End", show=False, id="help.end"),
    ]

    def __init__(self, underneath: Screen[object] | None = None) -> None:
        super().__init__()
        self._underneath = underneath

    def compose(self) -> ComposeResult:
        try:
            text = HELP_FILE.read_text(encoding="utf-8")
        except OSError as exc:
            text = f"# Help\n\nThe help file could not be read: {exc}"
        text += keys_markdown(self._underneath)
        with Vertical():
            with VerticalScroll(id="help-scroll"):
                yield Markdown(text, id="help-text")
            yield Label("j/k scroll · g/G top/end · Escape or q closes", classes="help-hint")

    def on_mount(self) -> None:
        self.query_one("#help-scroll").focus()

    def action_scroll(self, direction: str) -> None:
        scroll = self.query_one("#help-scroll", VerticalScroll)
        {"down": scroll.scroll_down, "up": scroll.scroll_up, "home": scroll.scroll_home,
         "end": scroll.scroll_end}[direction](animate=False)

    def action_close(self) -> None:
        self.dismiss(None)
