"""Chain column: one side (source or target) of a machine, each restore point a box."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import Label, Static

from console import format as fmt
from engine.model import MachineMeta, RestorePoint


class PointBox(Static):
    """One restore point: kind in the border, then time, size and GFS flags."""

    DEFAULT_CSS = """
    PointBox {
        height: 4;
        width: 1fr;
        border: round $primary;
        border-title-color: $primary;
        border-title-style: bold;
        padding: 0 1;
    }
    PointBox.-incremental { border: round $secondary; border-title-color: $secondary; }
    PointBox.-rollback { border: round $accent; border-title-color: $accent; }
    PointBox.-gfs { border: double $primary; }
    """

    def __init__(self, point: RestorePoint) -> None:
        kind = point.kind.value
        gfs = " ".join(point.gfs)
        lines = [fmt.when(point.time), fmt.size(point.size) + (f" · GFS {gfs}" if gfs else "")]
        super().__init__("\n".join(lines), markup=False, classes=f"-{kind}")
        self.point = point
        self.border_title = kind
        if gfs:
            self.add_class("-gfs")
            self.border_subtitle = gfs


class ChainColumn(VerticalScroll):
    """A titled, scrollable column of PointBoxes grouped by chain (oldest first)."""

    DEFAULT_CSS = """
    ChainColumn {
        width: 1fr;
        height: 1fr;
        border: round $panel;
        border-title-color: $text;
        padding: 0 1;
        scrollbar-size-vertical: 1;
    }
    ChainColumn:focus { border: round $primary; }
    ChainColumn > .chain-head { color: $text-muted; margin-top: 1; width: 1fr; }
    ChainColumn > .chain-empty { color: $text-muted; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "scroll_down", "Down", show=False, id="chain.down"),
        Binding("k", "scroll_up", "Up", show=False, id="chain.up"),
        Binding("g", "scroll_home", "Top", show=False, id="chain.top"),
        Binding("G", "scroll_end", "Bottom", show=False, id="chain.bottom"),
    ]

    can_focus = True

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = title

    def show(self, meta: MachineMeta | None, note: str = "") -> None:
        """Replace the column's content with `meta`'s chains."""
        self.remove_children()
        self.border_subtitle = ""
        if meta is None or not meta.points:
            self.mount(Label(note or "no restore points", classes="chain-empty"))
            return
        widgets: list[Static | Label] = []
        chains = meta.chains()
        self.border_subtitle = meta.method.value
        for number, chain in enumerate(chains, 1):
            size = fmt.size(sum(p.size for p in chain))
            widgets.append(Label(f"#{number} · {fmt.plural(len(chain), 'point')} · {size}",
                                 classes="chain-head"))
            widgets.extend(PointBox(p) for p in chain)
        self.mount_all(widgets)
