"""Timeline of the restore points a retention preview keeps on one day, with reasons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from console import format as fmt
from engine.model import Kind
from engine.simulate import PreviewPoint

KIND_MARK: dict[str, str] = {Kind.FULL: "●", Kind.INCREMENTAL: "○", Kind.ROLLBACK: "◐"}
KIND_SHORT: dict[str, str] = {Kind.FULL: "full", Kind.INCREMENTAL: "incr", Kind.ROLLBACK: "roll"}


class KeptPoints(OptionList):
    """Two lines per point: `● 2026-12-30 22:00 full W 50.0 GiB` and `  └ reason`."""

    DEFAULT_CSS = """
    KeptPoints { height: 1fr; border: round $panel; scrollbar-size-vertical: 1; }
    KeptPoints:focus { border: round $primary; }
    KeptPoints > .kept-points--reason { color: $text-muted; }
    KeptPoints > .kept-points--gfs { color: $accent; text-style: bold; }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = OptionList.COMPONENT_CLASSES | {
        "kept-points--reason", "kept-points--gfs"}

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("j", "cursor_down", "Down", show=False, id="points.down"),
        Binding("k", "cursor_up", "Up", show=False, id="points.up"),
        Binding("g", "first", "First", show=False, id="points.first"),
        Binding("G", "last", "Last", show=False, id="points.last"),
    ]

    def show_points(self, points: Sequence[PreviewPoint]) -> None:
        reason_style = self.get_component_rich_style("kept-points--reason", partial=True)
        gfs_style = self.get_component_rich_style("kept-points--gfs", partial=True)
        options = []
        for index, point in enumerate(points):
            kind = point.kind
            flags = " ".join(point.gfs)
            line = Text.assemble(f"{KIND_MARK.get(kind, '·')} ", fmt.when(point.time),
                                 f" {KIND_SHORT.get(kind, kind):<4} ", (f"{flags:<5} ", gfs_style),
                                 fmt.size(point.size))
            line.append(f"\n  └ {point.reason}", reason_style)
            options.append(Option(line, id=str(index)))
        highlighted = self.highlighted
        self.clear_options()
        self.add_options(options)
        if options:
            self.highlighted = min(highlighted or 0, len(options) - 1)
