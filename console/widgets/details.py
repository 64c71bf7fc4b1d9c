"""The details pane beside the job tree: everything about the selected item."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from console import format as fmt
from console.backend import JobEntry, MachineInfo
from console.run_session import JobState, RunSession


class DetailsPane(VerticalScroll):
    """A scrollable key/value view; `show_*` methods pick what to show."""

    DEFAULT_CSS = """
    DetailsPane {
        height: 1fr;
        padding: 0 1;
        scrollbar-size-vertical: 1;
    }
    DetailsPane > Static { width: 1fr; }
    DetailsPane > .details--key { color: $text-muted; }
    DetailsPane > .details--title { color: $primary; text-style: bold; }
    DetailsPane > .details--bad { color: $error; }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"details--key", "details--title", "details--bad"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.body = Static("", id="details-body")

    def compose(self):  # type: ignore[no-untyped-def]
        yield self.body

    def _grid(self, title: str, rows: Sequence[tuple[str, Any]]) -> Table:
        key_style = self.get_component_rich_style("details--key", partial=True)
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style=key_style, no_wrap=True)
        grid.add_column(overflow="fold")
        grid.title = title
        grid.title_style = self.get_component_rich_style("details--title", partial=True)
        grid.title_justify = "left"
        for key, value in rows:
            grid.add_row(key, value if isinstance(value, Text) else Text(str(value)))
        return grid

    def show_message(self, text: str) -> None:
        self.body.update(Text(text))

    def show_job(self, entry: JobEntry, state: JobState, status: str,
                 session: RunSession | None) -> None:
        if entry.spec is None:
            bad = self.get_component_rich_style("details--bad", partial=True)
            self.body.update(self._grid(entry.name, [
                ("file", str(entry.path)), ("problem", Text(entry.error, style=bad)),
                ("fix", "press e to edit the file"),
            ]))
            return
        spec = entry.spec
        rows: list[tuple[str, Any]] = [
            ("state", state.label),
            ("last status", status or "-"),
            ("schedule", ("enabled" if getattr(spec, "enabled", True) else "disabled")
             + f" · {fmt.describe(getattr(spec, 'schedule', None))}"),
            ("mode", fmt.describe(getattr(spec, "mode", "periodic"))),
            ("source", str(getattr(spec, "source_repository", "-"))),
            ("source jobs", fmt.describe(getattr(spec, "source_jobs", []))),
            ("machines", fmt.describe(getattr(spec, "machines", [])) or "all"),
            ("target", str(getattr(spec, "target_repository", "-"))),
            ("retention", fmt.retention_summary(getattr(spec, "retention", None))),
            ("storage", fmt.describe(getattr(spec, "storage", None))),
            ("transport", fmt.describe(getattr(spec, "transport", None))),
            ("file", str(entry.path)),
        ]
        if session is not None and session.model.started_at is not None:
            model = session.model
            counts = model.counts()
            rows.insert(1, ("run", f"{fmt.percent(model.fraction())} · {counts['done']}/"
                                   f"{len(model.rows)} done · {counts['on hold']} on hold"))
        self.body.update(self._grid(entry.name, rows))

    def show_machine(self, job_name: str, info: MachineInfo) -> None:
        rows: list[tuple[str, Any]] = [("job", job_name)]
        for side, meta, points in (("source", info.source, info.source_points),
                                   ("target", info.target, info.target_points)):
            if meta is None:
                rows.append((side, "no chain"))
                continue
            latest = points[-1] if points else None
            rows.append((side, f"{len(points)} points, {len(meta.chains())} chain(s), "
                               f"{fmt.size(sum(p.size for p in points))}"))
            if latest is not None:
                rows.append(("", f"latest {fmt.when(latest.time)} "
                                 f"{getattr(latest.kind, 'value', latest.kind)}"))
        if info.source_job:
            rows.append(("source job", info.source_job))
        if info.error:
            rows.append(("problem", Text(info.error,
                                         style=self.get_component_rich_style("details--bad", partial=True))))
        rows.append(("chains", "press c for the chain view"))
        self.body.update(self._grid(info.name, rows))

    def show_point(self, machine: str, point: Any) -> None:
        rows: list[tuple[str, Any]] = [
            ("machine", machine),
            ("time", fmt.when(point.time)),
            ("kind", getattr(point.kind, "value", point.kind)),
            ("size", fmt.size(point.size)),
            ("GFS", " ".join(point.gfs) or "-"),
            ("id", point.id),
            ("source point", point.source_point or "-"),
            ("file", point.file),
        ]
        for disk in point.disks:
            rows.append(("disk", f"{disk.name} ({fmt.size(disk.size)})"))
        self.body.update(self._grid("Restore point", rows))
