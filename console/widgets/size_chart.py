"""Total repository size over the simulated days (textual-plotext), coloured from the theme."""

from __future__ import annotations

import math
from collections.abc import Sequence

from textual.color import Color
from textual_plotext import PlotextPlot

GIB = 1024**3
MIB = 1024**2


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Evenly spaced round ticks from 0 covering `top`: a step of 1, 2, 2.5 or 5 x 10^k."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    n = math.ceil(top / step - 1e-9)
    return [round(i * step, 6) for i in range(n + 1)]


def tick_label(value: float) -> str:
    return f"{value:g}"


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
        self._unit = "GiB"

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _t: self.replot())

    def _colour(self, variable: str) -> tuple[int, int, int]:
        value = self.app.theme_variables.get(variable, "")
        try:
            return Color.parse(value).rgb
        except Exception:
            return (128, 128, 128)

    def show(self, sizes: Sequence[int], worst: int | None, selected: int | None) -> None:
        self._unit = "GiB" if max(sizes, default=0) >= GIB else "MiB"
        self._sizes = [s / (GIB if self._unit == "GiB" else MIB) for s in sizes]
        self._worst, self._selected = worst, selected
        self.replot()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(f"Total size ({self._unit}) per day")
        if self._sizes:
            xs = list(range(1, len(self._sizes) + 1))
            plt.plot(xs, self._sizes, marker="braille", color=self._colour("primary"))
            if self._selected is not None and 0 <= self._selected < len(xs):
                plt.vertical_line(self._selected + 1, color=self._colour("secondary"))
            if self._worst is not None and 0 <= self._worst < len(xs):
                plt.scatter([self._worst + 1], [self._sizes[self._worst]], marker="●",
                            color=self._colour("error"))
            yticks = nice_ticks(max(self._sizes))
            plt.ylim(0, yticks[-1])
            plt.yticks(yticks, [tick_label(t) for t in yticks])
            step = max(1, len(xs) // 4)
            ticks = list(range(1, len(xs) + 1, step))
            plt.xticks([float(t) for t in ticks], [str(t) for t in ticks])
        self.refresh()
