"""Throughput chart: read vs transferred bytes/s as two scrolling sparklines.

Both rows share one scale with a zero baseline, so their heights compare
directly (the gap between them is what dedup and compression saved). One
column per sample, newest on the right.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Label

from console import format as fmt

BLOCKS = " ▁▂▃▄▅▆▇█"


def spark_text(data: Sequence[float], width: int, peak: float) -> str:
    """The newest `width` samples as block characters scaled to `peak` (zero baseline)."""
    if width <= 0:
        return ""
    tail = list(data)[-width:]
    peak = peak or 1.0
    chars = [BLOCKS[min(8, max(0, round(v / peak * 8)))] if v > 0 else "·" for v in tail]
    return " " * (width - len(chars)) + "".join(chars)


class SparkRow(Widget):
    """One sparkline row; colour comes from its `spark-row--bar` component class."""

    DEFAULT_CSS = """
    SparkRow { height: 1; width: 1fr; }
    SparkRow > .spark-row--bar { color: $primary; }
    SparkRow.-transferred > .spark-row--bar { color: $accent; }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"spark-row--bar"}

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.data: list[float] = []
        self.peak = 1.0

    def set_data(self, data: Sequence[float], peak: float) -> None:
        self.data, self.peak = list(data), peak
        self.refresh()

    def render(self) -> Text:
        return Text(spark_text(self.data, self.size.width, self.peak),
                    style=self.get_component_rich_style("spark-row--bar", partial=True), no_wrap=True)


class ThroughputChart(Vertical):
    """Read and transferred rates, labelled, with the latest value on the right."""

    DEFAULT_CSS = """
    ThroughputChart { height: 2; }
    ThroughputChart > Horizontal { height: 1; }
    ThroughputChart .tp-name { width: 12; color: $text-muted; }
    ThroughputChart .tp-value { width: 13; text-align: right; }
    """

    def compose(self) -> ComposeResult:
        with Horizontal():
            yield Label("Read", classes="tp-name")
            yield SparkRow(id="tp-read")
            yield Label("-", id="tp-read-value", classes="tp-value")
        with Horizontal():
            yield Label("Transferred", classes="tp-name")
            yield SparkRow(id="tp-xfer", classes="-transferred")
            yield Label("-", id="tp-xfer-value", classes="tp-value")

    def set_samples(self, read: Sequence[float], transferred: Sequence[float]) -> None:
        peak = max([*read, *transferred, 1.0])
        self.query_one("#tp-read", SparkRow).set_data(read, peak)
        self.query_one("#tp-xfer", SparkRow).set_data(transferred, peak)
        self.query_one("#tp-read-value", Label).update(fmt.rate(read[-1] if read else 0))
        self.query_one("#tp-xfer-value", Label).update(
            fmt.rate(transferred[-1] if transferred else 0))
