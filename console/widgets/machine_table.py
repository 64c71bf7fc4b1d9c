"""Per-machine rows of a live run, updated by row key, one changed cell at a time.

Columns have fixed widths so an update never re-measures the table, and each
row remembers the text of its cells so only cells whose text changed are sent
to `update_cell`. Rows scrolled out of view are not updated at all: they are
marked stale and brought up to date when they scroll into view, so the cost
of a tick follows the rows on screen, not the machines in the run.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.text import Text
from textual.widgets.data_table import RowDoesNotExist

from console import format as fmt
from console.run_model import DONE, ON_HOLD, RUNNING, MachineRow, RunModel
from console.widgets.vim_table import VimDataTable
from engine.model import Status

# Essential columns first (at 80 columns machine, state, progress, read, sent and the
# note stay on screen); the note takes the width left over, the rest follow it.
COLUMNS: list[tuple[str, str, int]] = [
    ("machine", "Machine", 12),
    ("state", "State", 17),
    ("progress", "Progress", 11),
    ("read", "Read", 9),
    ("transferred", "Sent", 9),
    ("note", "Note", 0),  # 0: what is left of the width (at least NOTE_MIN)
    ("rate", "Rate", 11),
    ("eta", "ETA", 7),
    ("processed", "Processed", 10),
]
NOTE_MIN, NOTE_MAX = 12, 48


def note_width(width: int) -> int:
    """The note column's width for a table `width` cells wide."""
    fixed = sum(w + 2 for key, _, w in COLUMNS[:5])
    return max(NOTE_MIN, min(NOTE_MAX, width - fixed - 3))
SHORT_BY = {"source lock": "lock", "operator": "operator"}


def held_by_operator(row: MachineRow, operator_hold: bool) -> bool:
    """A running task pauses at its next block while the operator holds the session."""
    return operator_hold and row.state == RUNNING


def state_cell(row: MachineRow, operator_hold: bool = False) -> str:
    if row.state == ON_HOLD:
        return f"on hold: {SHORT_BY.get(row.hold_by, row.hold_by or 'lock')}"
    if held_by_operator(row, operator_hold):
        return "on hold: operator"
    return row.state_text


def row_cells(row: MachineRow, operator_hold: bool = False) -> tuple[str, ...]:
    """The text of every cell of a row, in COLUMNS order."""
    held = held_by_operator(row, operator_hold)
    eta = None if held else row.eta_s
    note = row.hold_reason if row.state == ON_HOLD else row.message
    return (
        row.name,
        state_cell(row, operator_hold),
        f"{fmt.bar(row.fraction, 6)} {fmt.percent(row.fraction)}",
        fmt.size(row.read),
        fmt.size(row.transferred),
        note,
        fmt.rate(row.rate) if row.state == RUNNING and not held else "-",
        fmt.duration(eta) if eta is not None else "-",
        fmt.size(row.processed),
    )


class MachineTable(VimDataTable):
    """The live view's machine table."""

    DEFAULT_CSS = """
    MachineTable > .machine-table--held { color: $warning; }
    MachineTable > .machine-table--failed { color: $error; }
    MachineTable > .machine-table--ok { color: $success; }
    """

    COMPONENT_CLASSES = VimDataTable.COMPONENT_CLASSES | {
        "machine-table--held", "machine-table--failed", "machine-table--ok"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._cells: dict[str, tuple[str, ...]] = {}
        self.filter_text = ""
        self.operator_hold = False  # the session is held: running rows show "on hold"
        self.updates = 0  # cells sent to update_cell (the bench reads this)
        self._stale: set[str] = set()
        self._model: RunModel | None = None

        self._note_width = 0

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        self._note_width = note_width(self.size.width or 80)
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width or self._note_width)

    def on_resize(self) -> None:
        """A new width gives the note a new width: rebuild (rare, and cheap next to a tick)."""
        if note_width(self.size.width) != self._note_width and self._model is not None:
            self.clear(columns=True)
            self._add_columns()
            self.rebuild(self._model)

    def _visible(self, name: str) -> bool:
        return not self.filter_text or self.filter_text in name.lower()

    def _styled(self, row: MachineRow, column: str, text: str) -> str | Text:
        if column == "note":
            return Text(text, no_wrap=True, overflow="ellipsis")
        if column != "state":
            return text
        if row.state == ON_HOLD or held_by_operator(row, self.operator_hold):
            return Text(text, style=self.get_component_rich_style("machine-table--held", partial=True))
        if row.state == DONE:
            cls = {Status.SUCCESS: "ok", Status.FAILED: "failed"}.get(row.status, "held") if row.status else "held"
            return Text(text, style=self.get_component_rich_style(f"machine-table--{cls}", partial=True))
        return text

    def _window(self) -> tuple[int, int]:
        """Row indexes currently on screen (with a little margin)."""
        first = int(self.scroll_y)
        return first - 2, first + self.size.height + 2

    def sync(self, model: RunModel, names: Iterable[str], *, everything: bool = False) -> None:
        """Bring the rows of `names` up to date (adding rows the table lacks); rows out of
        view only get marked stale unless `everything`."""
        self._model = model
        low, high = self._window()
        for name in names:
            row = model.rows.get(name)
            if row is None or not self._visible(name):
                continue
            old = self._cells.get(name)
            if old is not None and not everything:
                try:
                    index = self.get_row_index(name)
                except RowDoesNotExist:
                    continue
                if not low <= index <= high:
                    self._stale.add(name)
                    continue
            self._stale.discard(name)
            cells = row_cells(row, self.operator_hold)
            if old is None:
                self.add_row(*(self._styled(row, c[0], t) for c, t in zip(COLUMNS, cells,
                                                                         strict=True)), key=name)
                self._cells[name] = cells
                continue
            for (column, _, _), new_text, old_text in zip(COLUMNS, cells, old, strict=True):
                if new_text != old_text:
                    try:
                        self.update_cell(name, column, self._styled(row, column, new_text))
                    except RowDoesNotExist:
                        break
                    self.updates += 1
            self._cells[name] = cells

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        if self._stale and self._model is not None:
            self.call_later(self._catch_up)

    def _catch_up(self) -> None:
        """Rows that scrolled into view get their pending updates."""
        if self._model is None or not self._stale:
            return
        low, high = self._window()
        due = []
        for name in self._stale:
            try:
                index = self.get_row_index(name)
            except RowDoesNotExist:
                continue
            if low <= index <= high:
                due.append(name)
        if due:
            self.sync(self._model, due, everything=True)

    def rebuild(self, model: RunModel) -> None:
        """Drop every row and add the model's rows that pass the filter, in run order."""
        self.clear()
        self._cells.clear()
        self._stale.clear()
        self.sync(model, list(model.rows), everything=True)

    def set_filter(self, model: RunModel, text: str) -> None:
        self.filter_text = text.strip().lower()
        self.rebuild(model)
