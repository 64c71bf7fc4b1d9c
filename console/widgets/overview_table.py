"""The job overview table (k9s-style): a row per job, its machines under it.

Columns have a priority: at 80 columns the essential ones (name, state, last
result, when, RPO, behind) stay and the rest drop off the right, to come back
when the terminal is wider. Rows are coloured by their `Health` through theme
variables only; state is always in words too (never colour alone).
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.widgets.data_table import RowDoesNotExist

from console.overview import OverviewRow
from console.widgets.vim_table import VimDataTable

# key, label, width, priority (lower = kept longer)
COLUMNS: list[tuple[str, str, int, int]] = [
    ("name", "Job / machine", 18, 0),
    ("state", "State", 13, 0),
    ("last", "Last", 7, 0),
    ("when", "When", 12, 1),
    ("rpo", "RPO", 7, 0),
    ("behind", "Behind", 6, 0),
    ("size", "Size", 9, 2),
    ("next_run", "Next run", 8, 3),
    ("reason", "Reason", 40, 4),
]


def row_cells(row: OverviewRow) -> dict[str, str]:
    name = row.name if row.is_job else f"  {row.name}"
    return {"name": name, "state": row.state, "last": row.last, "when": row.when,
            "next_run": row.next_run, "rpo": row.rpo, "behind": row.behind, "size": row.size,
            "reason": row.reason}


def fitting_columns(width: int) -> list[tuple[str, str, int, int]]:
    """The columns that fit `width` cells, dropping the lowest priority first."""
    chosen = list(COLUMNS)
    while len(chosen) > 1:
        need = sum(w + 2 for _, _, w, _ in chosen) + 1
        if need <= width:
            break
        drop = max(chosen, key=lambda c: (c[3], COLUMNS.index(c)))
        if drop[3] == 0:
            break
        chosen.remove(drop)
    return chosen


class OverviewTable(VimDataTable):
    """Keyed rows; `show(rows)` updates changed cells in place and rebuilds otherwise."""

    DEFAULT_CSS = """
    OverviewTable { height: 1fr; }
    OverviewTable > .overview--ok { color: $success; }
    OverviewTable > .overview--idle { color: $text-muted; }
    OverviewTable > .overview--running { color: $accent; }
    OverviewTable > .overview--warning { color: $warning; }
    OverviewTable > .overview--failed { color: $error; }
    OverviewTable > .overview--job { text-style: bold; }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = VimDataTable.COMPONENT_CLASSES | {
        "overview--ok", "overview--idle", "overview--running", "overview--warning",
        "overview--failed", "overview--job"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._rows: list[OverviewRow] = []
        self._cells: dict[str, dict[str, str]] = {}
        self._columns: list[str] = []

    def on_mount(self) -> None:
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._rebuild())

    def on_resize(self) -> None:
        wanted = [c[0] for c in fitting_columns(self.size.width)]
        if wanted != self._columns:
            self._rebuild()

    @property
    def rows_shown(self) -> list[OverviewRow]:
        return list(self._rows)

    def highlighted(self) -> OverviewRow | None:
        if not self._rows or self.cursor_row < 0 or self.cursor_row >= len(self._rows):
            return None
        return self._rows[self.cursor_row]

    def _styled(self, row: OverviewRow, column: str, text: str) -> Text:
        style = self.get_component_rich_style(f"overview--{row.health.value}", partial=True)
        if row.is_job:
            style = style + self.get_component_rich_style("overview--job", partial=True)
        return Text(text, style=style, no_wrap=True, overflow="ellipsis")

    def show(self, rows: list[OverviewRow]) -> None:
        """Show `rows`: same row keys in the same order -> cell updates; else rebuild."""
        same = [r.key for r in rows] == [r.key for r in self._rows]
        self._rows = rows
        if not same:
            self._rebuild()
            return
        for row in rows:
            cells = row_cells(row)
            old = self._cells.get(row.key, {})
            for column in self._columns:
                if cells[column] != old.get(column) or _health(old) != row.health.value:
                    try:
                        self.update_cell(row.key, column, self._styled(row, column, cells[column]))
                    except RowDoesNotExist:
                        break
            cells["_health"] = row.health.value
            self._cells[row.key] = cells

    def _rebuild(self) -> None:
        if not self.is_mounted:
            return
        current = self.highlighted()
        columns = fitting_columns(self.size.width or 80)
        self._columns = [c[0] for c in columns]
        self.clear(columns=True)
        for key, label, width, _ in columns:
            self.add_column(label, key=key, width=width)
        self._cells.clear()
        for row in self._rows:
            cells = row_cells(row)
            self.add_row(*(self._styled(row, c, cells[c]) for c in self._columns), key=row.key)
            cells["_health"] = row.health.value
            self._cells[row.key] = cells
        if current is not None:
            self.select_key(current.key, current.job_key)

    def select_key(self, key: str, fallback: str | None = None) -> None:
        keys = [r.key for r in self._rows]
        for wanted in (key, fallback):
            if wanted in keys:
                self.move_cursor(row=keys.index(wanted), animate=False)
                return


def _health(cells: dict[str, str]) -> str:
    return cells.get("_health", "")
