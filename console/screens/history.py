"""History: past sessions (one job's or every job's), filterable by status and text;
the highlighted session's per-machine results below; Enter opens the session detail."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label

from console import format as fmt
from console.messages import HistoryLoaded, TasksLoaded
from console.overview import job_rpo
from console.records import SessionRecord, TaskRecord
from console.widgets.filter_bar import FilterBar
from console.widgets.vim_table import VimDataTable
from engine.model import Status

if TYPE_CHECKING:
    from console.app import FerryConsole

# essential columns first: at 80 columns the status and message stay on screen
SESSION_COLUMNS = [("started", "Started", 16), ("job", "Job", 14), ("status", "Status", 8),
                   ("message", "Message", 30), ("duration", "Took", 7),
                   ("transferred", "Transferred", 11), ("processed", "Processed", 10)]
TASK_COLUMNS = [("machine", "Machine", 12), ("status", "Status", 8), ("message", "Reason", 30),
                ("kind", "Kind", 11), ("transferred", "Transferred", 11), ("read", "Read", 10),
                ("duration", "Took", 7), ("held", "Held", 6), ("bottleneck", "Bottleneck", 10),
                ("processed", "Processed", 10)]
STATUS_FILTERS: list[Status | None] = [None, Status.FAILED, Status.WARNING, Status.SUCCESS]


def session_cells(row: SessionRecord) -> dict[str, str]:
    return {"started": fmt.when(row.started), "job": row.job, "status": str(row.status),
            "duration": fmt.duration(row.duration_s), "processed": fmt.size(row.processed),
            "transferred": fmt.size(row.transferred), "message": row.message}


def task_cells(row: TaskRecord) -> dict[str, str]:
    return {"machine": row.machine, "status": str(row.status), "kind": row.kind,
            "processed": fmt.size(row.processed), "read": fmt.size(row.read),
            "transferred": fmt.size(row.transferred), "duration": fmt.duration(row.duration_s),
            "held": fmt.duration(row.held_s), "bottleneck": row.bottleneck,
            "message": row.message}


class HistoryScreen(Screen[None]):
    """Sessions on top, the highlighted session's tasks below."""

    DEFAULT_CSS = """
    HistoryScreen .history-head { height: 1; padding: 0 1; background: $boost; }
    HistoryScreen #history-sessions-head { height: auto; max-height: 3; width: 1fr; }
    HistoryScreen #history-sessions { height: 1fr; }
    HistoryScreen #history-tasks { height: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="history.back"),
        Binding("enter", "open_session", "Open", id="history.open"),
        Binding("f", "status_filter", "Status", id="history.status"),
        Binding("slash", "filter", "Filter", id="history.filter"),
        Binding("tab", "app.focus_next", "Next table", show=False, id="history.next"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="history.reload"),
    ]

    def __init__(self, job_key: str | None) -> None:
        super().__init__()
        self.job_key = job_key
        self.sessions: list[SessionRecord] = []
        self.filter_text = ""
        self.status_filter: Status | None = None
        self._shown_session: str | None = None

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
        self.title = ("History · " + self.ferry.store.name(self.job_key) if self.job_key
                      else "History · all jobs")
        columns = [c for c in SESSION_COLUMNS if self.job_key is None or c[0] != "job"]
        for table_id, cols in (("#history-sessions", columns), ("#history-tasks", TASK_COLUMNS)):
            table = self.query_one(table_id, VimDataTable)
            for key, label, width in cols:
                table.add_column(label, key=key, width=width)
        self.query_one("#history-sessions", VimDataTable).focus()
        self.action_reload()

    def _keys(self) -> list[str]:
        if self.job_key is not None:
            return [self.job_key]
        return [k for k in self.ferry.store.job_keys() if self.ferry.store.jobs[k].spec]

    @work(thread=True, exclusive=True, group="history", exit_on_error=False)
    def load_sessions(self, keys: list[str]) -> None:
        out: list[SessionRecord] = []
        errors: list[str] = []
        for key in keys:
            spec = self.ferry.store.jobs[key].spec
            if spec is None:
                continue
            try:
                out.extend(self.ferry.backend.sessions(spec))
            except Exception as exc:
                errors.append(f"{spec.name}: {exc}")
        out.sort(key=lambda s: (s.started.isoformat() if s.started else ""), reverse=True)
        self.post_message(HistoryLoaded(out, error="; ".join(errors)))

    @work(thread=True, exclusive=True, group="history-tasks", exit_on_error=False)
    def load_tasks(self, session: SessionRecord) -> None:
        spec = self._spec_of(session)
        if spec is None:
            return
        try:
            self.post_message(TasksLoaded(session.id, self.ferry.backend.tasks(spec, session.id)))
        except Exception as exc:
            self.post_message(TasksLoaded(session.id, [], error=str(exc)))

    def _spec_of(self, session: SessionRecord):  # type: ignore[no-untyped-def]
        for key in self._keys():
            spec = self.ferry.store.jobs[key].spec
            if spec is not None and spec.name == session.job:
                return spec
        return None

    def on_history_loaded(self, message: HistoryLoaded) -> None:
        self.sessions = message.sessions
        if message.error:
            self.notify(message.error, title="History", severity="error")
        self._fill_sessions(message.error)

    def _visible(self) -> list[SessionRecord]:
        out = []
        for row in self.sessions:
            if self.status_filter is not None and row.status != self.status_filter:
                continue
            cells = session_cells(row)
            if self.filter_text and not any(self.filter_text in c.lower() for c in cells.values()):
                continue
            out.append(row)
        return out

    def _fill_sessions(self, error: str = "") -> None:
        table = self.query_one("#history-sessions", VimDataTable)
        table.clear()
        visible = self._visible()
        columns = [str(c.value) for c in table.columns]
        for row in visible:
            cells = session_cells(row)
            table.add_row(*(cells[c] for c in columns), key=row.id)
        words = [f"Sessions · {len(visible)} of {len(self.sessions)}"]
        if self.status_filter is not None:
            words.append(f"only {self.status_filter} (f changes)")
        if self.filter_text:
            words.append(f"filter “{self.filter_text}”")
        if self.sessions and not visible:
            words.append("no matches")
        if error:
            words.append(error)
        late = [self.ferry.store.name(k) + ": " + v.summary for k in self._keys()
                if (v := job_rpo(self.ferry.store, k, self.ferry.clock.now())).late]
        if late:  # the RPO monitor: Warning here too, in the same words as the overview
            words.append("Warning · " + "; ".join(late))
        self.query_one("#history-sessions-head", Label).update(" · ".join(words))
        self._shown_session = None
        if table.row_count:
            table.move_cursor(row=0)
            self._tasks_for(visible[0].id)
        else:
            self.query_one("#history-tasks", VimDataTable).clear()

    @on(DataTable.RowSelected, "#history-sessions")
    def _session_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_session()

    @on(DataTable.RowHighlighted, "#history-sessions")
    def _session_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self._tasks_for(str(event.row_key.value))

    def highlighted_session(self) -> SessionRecord | None:
        table = self.query_one("#history-sessions", VimDataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return next((s for s in self.sessions if s.id == key), None)

    def _tasks_for(self, session_id: str) -> None:
        if session_id == self._shown_session:
            return
        self._shown_session = session_id
        row = next((s for s in self.sessions if s.id == session_id), None)
        if row is not None:
            self.load_tasks(row)

    def on_tasks_loaded(self, message: TasksLoaded) -> None:
        if message.session_id != self._shown_session:
            return
        table = self.query_one("#history-tasks", VimDataTable)
        table.clear()
        columns = [str(c.value) for c in table.columns]
        for index, row in enumerate(message.tasks):
            cells = task_cells(row)
            table.add_row(*(cells[c] for c in columns), key=f"{row.machine}#{index}")
        head = self.query_one("#history-tasks-head", Label)
        head.update(f"Tasks · {message.error}" if message.error
                    else f"Tasks of {message.session_id} · {len(message.tasks)} · "
                         "Enter opens the session")

    @on(FilterBar.Applied)
    def _filter(self, event: FilterBar.Applied) -> None:
        self.filter_text = event.text.strip().lower()
        self._fill_sessions()

    def action_filter(self) -> None:
        self.query_one(FilterBar).open()

    def action_status_filter(self) -> None:
        index = STATUS_FILTERS.index(self.status_filter)
        self.status_filter = STATUS_FILTERS[(index + 1) % len(STATUS_FILTERS)]
        self._fill_sessions()

    def action_open_session(self) -> None:
        from console.screens.session import SessionScreen

        session = self.highlighted_session()
        spec = self._spec_of(session) if session is not None else None
        if session is not None and spec is not None:
            self.app.push_screen(SessionScreen(spec, session))

    def action_reload(self) -> None:
        self._shown_session = None
        self.load_sessions(self._keys())

    def action_back(self) -> None:
        self.app.pop_screen()
