"""One past session: per-machine statistics and its log (Enter on a history row)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, Label

from console import format as fmt
from console.messages import SessionLoaded
from console.records import SessionRecord, TaskRecord, log_lines
from console.widgets.filter_bar import FilterBar
from console.widgets.log_pane import LogPane
from console.widgets.vim_table import VimDataTable
from engine.jobs.load import JobSpec

if TYPE_CHECKING:
    from console.app import FerryConsole

# essential columns first: at 80 columns machine, status, reason and the numbers stay
COLUMNS = [("machine", "Machine", 12), ("status", "Status", 8), ("message", "Reason", 24),
           ("took", "Took", 7), ("bottleneck", "Bottleneck", 10),
           ("reduction", "Read/sent", 9), ("changed", "Changed", 8), ("point", "Point", 11),
           ("retention", "Retention", 9)]


def ratio(big: int, small: int) -> str:
    """`3.2x`; `-` when nothing was sent."""
    return f"{big / small:.1f}x" if small > 0 and big > 0 else "-"


def stat_cells(task: TaskRecord, retention: int = 0) -> dict[str, str]:
    """Duration, bottleneck, compression+dedup (read per byte sent), share of the disks
    that changed (read per processed), the point made, its retention actions and why it
    ended so."""
    changed = fmt.percent(task.read / task.processed).strip() if task.processed else "-"
    return {"machine": task.machine, "status": str(task.status),
            "took": fmt.duration(task.duration_s), "bottleneck": task.bottleneck or "-",
            "reduction": ratio(task.read, task.transferred), "changed": changed,
            "point": (task.kind or "-") if task.point else "none",
            "retention": fmt.plural(retention, "action") if retention else "-",
            "message": task.message}


class SessionScreen(Screen[None]):
    """A past session's statistics per machine, then its log."""

    DEFAULT_CSS = """
    SessionScreen #session-head { height: auto; width: 1fr; padding: 0 1; background: $boost; }
    SessionScreen #session-tasks { height: 1fr; }
    SessionScreen LogPane { height: 1fr; }
    SessionScreen.-log-full #session-tasks { display: none; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="session.back"),
        Binding("L", "focus_log", "Log", id="session.log"),
        Binding("F", "full_log", "Full log", id="session.full-log"),
        Binding("slash", "search", "Search log", id="session.search"),
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
        yield FilterBar(id="session-search", placeholder="search the log…")
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
        """Task rows and log lines from the history (disk: a worker thread)."""
        backend, errors = self.ferry.backend, []
        try:
            tasks = backend.tasks(self.spec, self.session.id)
        except Exception as exc:
            tasks, errors = [], [str(exc)]
        try:
            log = backend.session_log(self.spec, self.session)
        except Exception as exc:
            log = []
            errors.append(f"log: {exc}")
        self.post_message(SessionLoaded(self.session.id, tasks, log, "; ".join(errors)))

    def on_session_loaded(self, message: SessionLoaded) -> None:
        retention = Counter(r.machine for r in message.log if r.kind == "retention")
        table = self.query_one("#session-tasks", VimDataTable)
        table.clear()
        for index, task in enumerate(message.tasks):
            cells = stat_cells(task, retention.get(task.machine, 0))
            table.add_row(*(cells[c[0]] for c in COLUMNS), key=f"{task.machine}#{index}")
        log = self.query_one(LogPane)
        lines = log_lines(message.log)
        log.add_lines(lines or [f"no log lines were kept for session {self.session.id} "
                                "(it ran before Ferry kept session logs)"])
        if message.error:
            log.add_lines([f"[error] {message.error}"])

    @on(FilterBar.Applied, "#session-search")
    def _search(self, event: FilterBar.Applied) -> None:
        self.query_one(LogPane).set_search(event.text)

    def action_search(self) -> None:
        self.query_one("#session-search", FilterBar).open()

    def action_full_log(self) -> None:
        """The log alone on the screen (and back)."""
        self.toggle_class("-log-full")
        if self.has_class("-log-full"):
            self.query_one(LogPane).focus()
        else:
            self.query_one("#session-tasks", VimDataTable).focus()

    def action_focus_log(self) -> None:
        self.query_one(LogPane).focus()

    def action_back(self) -> None:
        self.app.pop_screen()
