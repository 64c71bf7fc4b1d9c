"""The details pane under the overview: everything about the selected job or machine,
in human units."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from console import format as fmt
from console.records import JobEntry, LastRun, MachineInfo, TaskRecord
from console.run_model import TaskState
from console.run_session import RunSession
from console.store import JobState
from engine.model import RestorePoint, Status
from engine.rpo import RpoCheck

Cell = str | Text


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
    DetailsPane > .details--warn { color: $warning; }
    """

    COMPONENT_CLASSES: ClassVar[set[str]] = {"details--key", "details--title", "details--bad",
                                             "details--warn"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.body = Static("", id="details-body")

    def compose(self) -> ComposeResult:
        yield self.body

    def _bad(self, text: str) -> Text:
        return Text(text, style=self.get_component_rich_style("details--bad", partial=True))

    def _warn(self, text: str) -> Text:
        return Text(text, style=self.get_component_rich_style("details--warn", partial=True))

    def _grid(self, title: str, rows: Sequence[tuple[str, Cell]]) -> Table:
        key_style = self.get_component_rich_style("details--key", partial=True)
        grid = Table.grid(padding=(0, 1))
        grid.add_column(style=key_style, no_wrap=True)
        grid.add_column(overflow="fold")
        grid.title = title
        grid.title_style = self.get_component_rich_style("details--title", partial=True)
        grid.title_justify = "left"
        for key, value in rows:
            grid.add_row(key, value if isinstance(value, Text) else Text(value))
        return grid

    def show_message(self, text: str) -> None:
        self.body.update(Text(text))

    def show_job(self, entry: JobEntry, state: JobState, status: Status | None,
                 session: RunSession | None, last: LastRun | None = None,
                 rpo: RpoCheck | None = None) -> None:
        if entry.spec is None:
            self.body.update(self._grid(entry.name, [
                ("file", str(entry.path)), ("problem", self._bad(entry.error)),
                ("fix", "press e to edit the file"),
            ]))
            return
        spec = entry.spec
        rows: list[tuple[str, Cell]] = [("state", state.label)]
        if session is not None and session.model.started_at is not None:
            model = session.model
            counts = model.counts()
            rows.append(("run", f"{fmt.percent(model.fraction()).strip()} · "
                                f"{counts[TaskState.DONE]}/{len(model.rows)} done · "
                                f"{counts[TaskState.ON_HOLD]} on hold · l shows it"))
        if last is not None:
            s = last.session
            text = (f"{s.status} · {fmt.when(s.started)} · took {fmt.duration(s.duration_s)} · "
                    f"{fmt.size(s.transferred)} transferred")
            rows.append(("last run", self._bad(text) if s.status == Status.FAILED else text))
            if s.message:
                rows.append(("", s.message))
        else:
            rows.append(("last run", status or "never"))
        if rpo is not None and rpo.enabled:
            rows.append(("rpo", self._warn(rpo.summary) if rpo.late else rpo.summary))
        rows += [
            ("schedule", fmt.schedule_text(spec)),
            ("source", f"{spec.source.repository} · jobs {', '.join(spec.source.jobs)}"),
            ("machines", ", ".join(spec.source.machines) or "all of the source jobs"),
            ("target", str(spec.target.repository)),
            ("retention", fmt.retention_summary(spec.retention)),
            ("transport", fmt.transport_text(spec.transport)),
            ("storage", fmt.storage_text(spec.storage)),
            ("file", str(entry.path)),
        ]
        self.body.update(self._grid(entry.name, rows))

    def show_machine(self, job_name: str, info: MachineInfo,
                     task: TaskRecord | None = None) -> None:
        rows: list[tuple[str, Cell]] = [("job", job_name)]
        if task is not None:
            text = (f"{task.status} · {task.kind or '-'} · took {fmt.duration(task.duration_s)}"
                    f" · {fmt.size(task.transferred)} transferred")
            rows.append(("last run", self._bad(text) if task.status == Status.FAILED else text))
            if task.message:
                rows.append(("reason", task.message))
        rows.append(("behind", f"{fmt.plural(info.behind, 'point')} of the source not copied"))
        for side, meta, points in (("source", info.source, info.source_points),
                                   ("target", info.target, info.target_points)):
            if meta is None:
                rows.append((side, "no chain"))
                continue
            rows.append((side, f"{fmt.plural(len(points), 'point')}, "
                               f"{fmt.plural(len(meta.chains()), 'chain')}, "
                               f"{fmt.size(sum(p.size for p in points))}"))
            if points:
                rows.append(("", f"newest {point_text(points[-1])}"))
        if info.full_requested:
            rows.append(("next copy", "a full (active full requested)"))
        if info.source_job:
            rows.append(("source job", info.source_job))
        if info.error:
            rows.append(("problem", self._bad(info.error)))
        rows.append(("chains", "press c for the chain view"))
        self.body.update(self._grid(info.name, rows))


def point_text(point: RestorePoint) -> str:
    """`2026-11-25 22:00 full 1.2 GiB W M`."""
    flags = " ".join(point.gfs)
    return f"{fmt.when(point.time)} {point.kind.value} {fmt.size(point.size)}" + (
        f" {flags}" if flags else "")
