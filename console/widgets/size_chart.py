"""Total repository size over the simulated days (textual-plotext), coloured from the theme."""

from __future__ import annotations

from collections.abc import Sequence

from textual.color import Color
from textual_plotext import PlotextPlot

GIB = 1024**3


class SizeChart(PlotextPlot):
    """Line of total size per day; the worst day and the selected day are marked."""

    DEFAULT_CSS = """
    SizeChart { height: 9; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._sizes: list[float] = []
        self._worst: int | None = None
        self._selected: int | None = None

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _t: self.replot())

    def _colour(self, variable: str) -> tuple[int, int, int]:
        value = self.app.theme_variables.get(variable, "")
        try:
            return Color.parse(value).rgb
        except Exception:
            return (128, 128, 128)

    def show(self, sizes: Sequence[int], worst: int | None, selected: int | None) -> None:
        self._sizes = [s / GIB for s in sizes]
        self._worst, self._selected = worst, selected
        self.replot()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title("Total size (GiB) per day")
        if self._sizes:
            xs = list(range(1, len(self._sizes) + 1))
            plt.plot(xs, self._sizes, marker="braille", color=self._colour("primary"))
            if self._selected is not None and 0 <= self._selected < len(xs):
                plt.vertical_line(self._selected + 1, color=self._colour("secondary"))
            if self._worst is not None and 0 <= self._worst < len(xs):
                plt.scatter([self._worst + 1], [self._sizes[self._worst]], marker="●",
                            color=self._colour("error"))
            plt.ylim(0, max(self._sizes) * 1.1 or 1)
            step = max(1, len(xs) // 4)
            ticks = list(range(1, len(xs) + 1, step))
            plt.xticks(ticks, [str(t) for t in ticks])
        self.refresh()
