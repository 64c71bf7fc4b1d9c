"""Every binding the console defines, by id (for keymap validation, help and tests)."""

from __future__ import annotations

from functools import cache

from textual.binding import Binding
from textual.dom import DOMNode


def binding_owners() -> list[type[DOMNode]]:
    """Every console class that declares BINDINGS."""
    from console.app import FerryConsole
    from console.screens.chain import ChainScreen
    from console.screens.confirm import ConfirmModal
    from console.screens.editor import EditorScreen
    from console.screens.help import HelpScreen
    from console.screens.history import HistoryScreen
    from console.screens.live import LiveRunScreen
    from console.screens.overview import OverviewScreen
    from console.screens.prompt import PromptModal
    from console.screens.retention import RetentionScreen
    from console.screens.session import SessionScreen
    from console.widgets.chain_view import ChainColumn
    from console.widgets.filter_bar import FilterBar
    from console.widgets.log_pane import LogPane
    from console.widgets.vim_table import VimDataTable

    return [FerryConsole, OverviewScreen, LiveRunScreen, ChainScreen, RetentionScreen,
            EditorScreen, HistoryScreen, SessionScreen, HelpScreen, ConfirmModal, PromptModal,
            VimDataTable, FilterBar, LogPane, ChainColumn]


def own_bindings(owner: type[DOMNode]) -> list[Binding]:
    """The Binding objects declared by `owner` itself (not inherited)."""
    raw = owner.__dict__.get("BINDINGS", [])
    return [b for b in raw if isinstance(b, Binding)]


@cache
def default_keys() -> dict[str, str]:
    """binding id -> its default key string."""
    out: dict[str, str] = {}
    for owner in binding_owners():
        for binding in own_bindings(owner):
            if binding.id:
                out.setdefault(binding.id, binding.key)
    return out


def binding_ids() -> set[str]:
    return set(default_keys())
