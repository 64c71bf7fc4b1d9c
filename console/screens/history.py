"""History: the job's past sessions, and per-machine task results of the selected one."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label

from console import format as fmt
from console.messages import HistoryLoaded, TasksLoaded
from console.widgets.filter_bar import FilterBar
from console.widgets.vim_table import VimDataTable

if TYPE_CHECKING:
    from console.app import FerryConsole

SESSION_COLUMNS = [("started", "Started", 16), ("status", "Status", 8), ("duration", "Took", 7),
                   ("processed", "Processed", 10), ("transferred", "Transferred", 11),
                   ("message", "Message", 40)]
TASK_COLUMNS = [("machine", "Machine", 14), ("status", "Status", 8), ("kind", "Kind", 11),
                ("processed", "Processed", 10), ("read", "Read", 10),
                ("transferred", "Transferred", 11), ("duration", "Took", 7), ("held", "Held", 6),
                ("bottleneck", "Bottleneck", 10), ("message", "Message", 40)]


def session_cells(row: dict[str, Any]) -> tuple[str, ...]:
    return (fmt.when(row.get("started")), str(row.get("status", "")),
            fmt.duration(row.get("duration_s")), fmt.size(row.get("processed")),
            fmt.size(row.get("transferred")), str(row.get("message", "") or ""))


def task_cells(row: dict[str, Any]) -> tuple[str, ...]:
    return (str(row.get("machine", "")), str(row.get("status", "")), str(row.get("kind", "")),
            fmt.size(row.get("processed")), fmt.size(row.get("read")),
            fmt.size(row.get("transferred")), fmt.duration(row.get("duration_s")),
            fmt.duration(row.get("held_s")), str(row.get("bottleneck", "") or ""),
            str(row.get("message", "") or ""))


class HistoryScreen(Screen[None]):
    """Sessions on top, the highlighted session's tasks below."""

    DEFAULT_CSS = """
    HistoryScreen .history-head { height: 1; padding: 0 1; background: $boost; }
    HistoryScreen #history-sessions { height: 1fr; }
    HistoryScreen #history-tasks { height: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="history.back"),
        Binding("slash", "filter", "Filter", id="history.filter"),
        Binding("tab", "app.focus_next", "Next table", id="history.next"),
        Binding("ctrl+r", "reload", "Reload", id="history.reload"),
    ]

    def __init__(self, job_key: str) -> None:
        super().__init__()
        self.job_key = job_key
        self.sessions: list[dict[str, Any]] = []
        self.filter_text = ""
        self._shown_session: Any = None

    @property
    def ferry(self) -> FerryConsole:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="≡")
        yield FilterBar(id="history-filter", placeholder="filter sessions…")
        yield Label("Sessions", classes="history-head", id="history-sessions-head")
        yield VimDataTable(id="history-sessions")
        yield Label("Tasks", classes="history-head", id="history-tasks-head")
        yield VimDataTable(id="history-tasks")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = f"History · {self.ferry.jobs[self.job_key].name}"
        for table_id, columns in (("#history-sessions", SESSION_COLUMNS),
                                  ("#history-tasks", TASK_COLUMNS)):
            table = self.query_one(table_id, VimDataTable)
            for key, label, width in columns:
                table.add_column(label, key=key, width=width)
        self.query_one("#history-sessions", VimDataTable).focus()
        self.action_reload()

    @work(thread=True, exclusive=True, group="history", exit_on_error=False)
    def load_sessions(self, spec: Any) -> None:
        try:
            self.post_message(HistoryLoaded(self.ferry.backend.sessions(spec)))
        except Exception as exc:
            self.post_message(HistoryLoaded([], error=str(exc)))

    @work(thread=True, exclusive=True, group="history-tasks", exit_on_error=False)
    def load_tasks(self, spec: Any, session_id: Any) -> None:
        try:
            self.post_message(TasksLoaded(session_id,
                                          self.ferry.backend.tasks(spec, session_id)))
        except Exception as exc:
            self.post_message(TasksLoaded(session_id, [], error=str(exc)))

    def on_history_loaded(self, message: HistoryLoaded) -> None:
        self.sessions = message.sessions
        head = self.query_one("#history-sessions-head", Label)
        if message.error:
            head.update(f"Sessions · {message.error}")
            self.notify(message.error, title="History", severity="error")
        else:
            head.update(f"Sessions · {len(self.sessions)}")
        self._fill_sessions()

    def _fill_sessions(self) -> None:
        table = self.query_one("#history-sessions", VimDataTable)
        table.clear()
        for row in self.sessions:
            cells = session_cells(row)
            if self.filter_text and not any(self.filter_text in c.lower() for c in cells):
                continue
            table.add_row(*cells, key=str(row.get("id")))
        if table.row_count:
            table.move_cursor(row=0)
            self._tasks_for(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
        else:
            self.query_one("#history-tasks", VimDataTable).clear()

    @on(DataTable.RowHighlighted, "#history-sessions")
    def _session_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._tasks_for(event.row_key.value)

    def _tasks_for(self, session_key: str | None) -> None:
        if session_key is None or session_key == self._shown_session:
            return
        self._shown_session = session_key
        row = next((s for s in self.sessions if str(s.get("id")) == session_key), None)
        if row is not None:
            self.load_tasks(self.ferry.jobs[self.job_key].spec, row.get("id"))

    def on_tasks_loaded(self, message: TasksLoaded) -> None:
        if str(message.session_id) != self._shown_session:
            return
        table = self.query_one("#history-tasks", VimDataTable)
        table.clear()
        for index, row in enumerate(message.tasks):
            table.add_row(*task_cells(row), key=f"{row.get('machine', '')}#{index}")
        head = self.query_one("#history-tasks-head", Label)
        head.update(f"Tasks · {message.error}" if message.error
                    else f"Tasks of {message.session_id} · {len(message.tasks)}")

    @on(FilterBar.Applied)
    def _filter(self, event: FilterBar.Applied) -> None:
        self.filter_text = event.text.strip().lower()
        self._shown_session = None
        self._fill_sessions()

    def action_filter(self) -> None:
        self.query_one(FilterBar).open()

    def action_reload(self) -> None:
        self._shown_session = None
        self.load_sessions(self.ferry.jobs[self.job_key].spec)

    def action_back(self) -> None:
        self.app.pop_screen()
