"""One past session: per-machine statistics and its log (Enter on a history row)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, Label

from console import format as fmt
from console.messages import TasksLoaded
from console.records import SessionRecord, TaskRecord
from console.widgets.log_pane import LogPane
from console.widgets.vim_table import VimDataTable
from engine.jobfile import JobSpec

if TYPE_CHECKING:
    from console.app import FerryConsole

COLUMNS = [("machine", "Machine", 12), ("status", "Status", 8), ("took", "Took", 7),
           ("bottleneck", "Bottleneck", 10), ("reduction", "Read/sent", 9),
           ("changed", "Changed", 8), ("point", "Point", 8), ("message", "Reason", 30)]


def ratio(big: int, small: int) -> str:
    """`3.2x`; `-` when nothing was sent."""
    return f"{big / small:.1f}x" if small > 0 and big > 0 else "-"


def stat_cells(task: TaskRecord) -> dict[str, str]:
    """Duration, bottleneck, compression+dedup (read per byte sent), share of the disks
    that changed (read per processed), the point made, and why it ended so."""
    changed = fmt.percent(task.read / task.processed).strip() if task.processed else "-"
    return {"machine": task.machine, "status": str(task.status),
            "took": fmt.duration(task.duration_s), "bottleneck": task.bottleneck or "-",
            "reduction": ratio(task.read, task.transferred), "changed": changed,
            "point": (task.kind or "-") if task.point else "none", "message": task.message}


class SessionScreen(Screen[None]):
    """A past session's statistics per machine, then its log."""

    DEFAULT_CSS = """
    SessionScreen #session-head { height: auto; padding: 0 1; background: $boost; }
    SessionScreen #session-tasks { height: 1fr; }
    SessionScreen LogPane { height: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="session.back"),
        Binding("L", "focus_log", "Log", id="session.log"),
    ]

    def __init__(self, spec: JobSpec, session: SessionRecord) -> None:
        super().__init__()
        self.spec = spec
        self.session = session

    @property
    def ferry(self) -> FerryConsole:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="≡")
        yield Label("", id="session-head")
        yield VimDataTable(id="session-tasks")
        yield LogPane(id="session-log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        s = self.session
        self.title = f"Session · {s.job}"
        self.sub_title = s.id
        self.query_one("#session-head", Label).update(
            f"{s.status} · {fmt.when(s.started)} → {fmt.when(s.finished)} · took "
            f"{fmt.duration(s.duration_s)} · processed {fmt.size(s.processed)} · read "
            f"{fmt.size(s.read)} · sent {fmt.size(s.transferred)}"
            + (f"\n{s.message}" if s.message else ""))
        table = self.query_one("#session-tasks", VimDataTable)
        for key, label, width in COLUMNS:
            table.add_column(label, key=key, width=width)
        table.focus()
        self.load()

    @work(thread=True, exclusive=True, group="session", exit_on_error=False)
    def load(self) -> None:
        try:
            tasks = self.ferry.backend.tasks(self.spec, self.session.id)
        except Exception as exc:
            self.post_message(TasksLoaded(self.session.id, [], error=str(exc)))
            return
        self.post_message(TasksLoaded(self.session.id, tasks))

    def on_tasks_loaded(self, message: TasksLoaded) -> None:
        table = self.query_one("#session-tasks", VimDataTable)
        table.clear()
        for index, task in enumerate(message.tasks):
            cells = stat_cells(task)
            table.add_row(*(cells[c[0]] for c in COLUMNS), key=f"{task.machine}#{index}")
        log = self.query_one(LogPane)
        lines = self.ferry.backend.session_log(self.spec, self.session)
        log.add_lines(lines or [f"{self.session.id}: no log lines were kept for this session"])
        if message.error:
            log.add_lines([f"[error] {message.error}"])

    def action_focus_log(self) -> None:
        self.query_one(LogPane).focus()

    def action_back(self) -> None:
        self.app.pop_screen()
