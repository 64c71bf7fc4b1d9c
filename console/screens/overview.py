"""The first screen: is everything OK? A row per job, its machines under it, details below."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label

from console.encrypted_reads import deep_check_flow, export_flow
from console.messages import JobChanged, JobsChanged
from console.overview import OverviewRow, SortKey, job_rpo, overview_rows
from console.store import Health, JobStateKind
from console.widgets.details import DetailsPane
from console.widgets.filter_bar import FilterBar
from console.widgets.overview_table import OverviewTable

if TYPE_CHECKING:
    from console.app import FerryConsole

SORTS = list(SortKey)


class OverviewScreen(Screen[None]):
    """Jobs and machines with their state, last result, RPO and size."""

    DEFAULT_CSS = """
    OverviewScreen #overview-head { height: 1; padding: 0 1; background: $boost; }
    OverviewScreen #overview-empty { height: auto; padding: 0 1; color: $warning;
                                     display: none; }
    OverviewScreen #overview-empty.-shown { display: block; }
    OverviewScreen OverviewTable { height: 1fr; min-height: 5; }
    OverviewScreen DetailsPane { height: 9; border-top: solid $panel; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "start", "Start", id="job.start"),
        Binding("l", "live", "Live", id="job.live"),
        Binding("p", "hold", "Hold", show=False, id="job.hold"),
        Binding("r", "resume", "Resume", show=False, id="job.resume"),
        Binding("x", "stop", "Stop", show=False, id="job.stop"),
        Binding("f", "retry", "Retry failed", show=False, id="job.retry"),
        Binding("a", "active_full", "Active full", show=False, id="job.active-full"),
        Binding("c", "chain", "Chains", id="job.chain"),
        Binding("w", "whatif", "What-if", id="job.whatif"),
        Binding("e", "edit", "Edit", id="job.edit"),
        Binding("E", "edit_external", "$EDITOR", show=False, id="job.edit-external"),
        Binding("h", "history", "History", id="job.history"),
        Binding("n", "new_job", "New", id="job.new"),
        Binding("t", "toggle_schedule", "Schedule", show=False, id="job.toggle-schedule"),
        Binding("slash", "filter", "Filter", show=False, id="job.filter"),
        Binding("o", "sort", "Sort", show=False, id="job.sort"),
        Binding("O", "sort_reverse", "Reverse sort", show=False, id="job.sort-reverse"),
        Binding("space", "toggle_machines", "Machines", show=False, id="job.fold"),
        Binding("H", "all_history", "All history", show=False, id="job.all-history"),
        Binding("R", "export", "Export", show=False, id="machine.export"),
        Binding("V", "deep_check", "Deep check", show=False, id="machine.deep-check"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="job.reload"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="job.clear-filter"),
    ]

    def __init__(self) -> None:
        super().__init__(id="main")
        self.sort = SortKey.NAME
        self.reverse = False
        self.collapsed: set[str] = set()
        self.filter_text = ""

    @property
    def ferry(self) -> FerryConsole:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="≡")
        yield FilterBar(id="job-filter", placeholder="filter jobs and machines…")
        yield Label("", id="overview-head")
        yield Label("", id="overview-empty")
        yield OverviewTable(id="overview")
        yield DetailsPane(id="details")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = "Ferry"
        self.sub_title = str(self.ferry.backend.jobs_dir)
        self.query_one(DetailsPane).show_message("Loading jobs…")
        self.query_one(OverviewTable).focus()
        self.refresh_rows()

    # ---- store -> view -----------------------------------------------------------------------
    def on_jobs_changed(self, message: JobsChanged) -> None:
        store = self.ferry.store
        if message.error:
            self.query_one(DetailsPane).show_message(message.error)
        elif not store.jobs:
            self.query_one(DetailsPane).show_message(
                f"No job files in {self.ferry.backend.jobs_dir}.\nPress n to create one "
                f"(or run `ferry samples` for the samples).")
        self.refresh_rows()

    def on_job_changed(self, message: JobChanged) -> None:
        if self.app.screen is self:
            self.refresh_rows()

    def sync_job(self, key: str) -> None:
        """A live run moved (the App's pump): refresh the rows (cells change in place);
        while another screen is on top, `on_screen_resume` catches up instead."""
        if self.is_attached and self.is_mounted and self.app.screen is self:
            self.refresh_rows()

    def on_screen_resume(self) -> None:
        if self.is_mounted:
            self.refresh_rows()

    def refresh_rows(self) -> None:
        store = self.ferry.store
        rows = overview_rows(store, self.ferry.clock.now(), self.sort, self.reverse,
                             frozenset(self.collapsed), self.filter_text)
        table = self.query_one(OverviewTable)
        table.show(rows)
        empty = self.query_one("#overview-empty", Label)
        no_match = bool(self.filter_text) and not rows
        empty.update(f"no matches for “{self.filter_text}” · Escape clears the filter"
                     if no_match else "")
        empty.set_class(no_match, "-shown")
        self._update_head(rows)
        self._show_details()
        self.refresh_bindings()

    def _update_head(self, rows: list[OverviewRow]) -> None:
        jobs = [r for r in rows if r.is_job]
        bad = sum(1 for r in jobs if r.health in (Health.WARNING, Health.FAILED))
        running = sum(1 for k in self.ferry.store.jobs if self.ferry.store.state_of(k).state
                      in (JobStateKind.RUNNING, JobStateKind.ON_HOLD))
        words = [f"{len(self.ferry.store.jobs)} jobs", f"{running} running",
                 "all OK" if not bad else f"{bad} need attention",
                 f"sorted by {self.sort}{' ↑' if self.reverse else ''}"]
        if self.filter_text:
            words.append(f"filter “{self.filter_text}”")
        self.query_one("#overview-head", Label).update(" · ".join(words))

    @on(DataTable.RowHighlighted, "#overview")
    def _highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_details()
        self.refresh_bindings()

    @on(DataTable.RowSelected, "#overview")
    def _selected(self, event: DataTable.RowSelected) -> None:
        self.action_toggle_machines()

    def _show_details(self) -> None:
        details = self.query_one(DetailsPane)
        row = self.query_one(OverviewTable).highlighted()
        store = self.ferry.store
        if row is None:
            return
        entry = store.jobs.get(row.job_key)
        if entry is None:
            return
        if row.is_job:
            details.show_job(entry, store.state_of(row.job_key), store.last_status(row.job_key),
                             store.sessions.get(row.job_key), store.last_runs.get(row.job_key),
                             job_rpo(store, row.job_key, self.ferry.clock.now()))
            return
        info = store.machine_info(row.job_key, row.machine)
        if info is not None:
            last = store.last_runs.get(row.job_key)
            details.show_machine(entry.name, info, last.task(info.name) if last else None)

    # ---- selection ---------------------------------------------------------------------------
    def selected_row(self) -> OverviewRow | None:
        return self.query_one(OverviewTable).highlighted() if self.is_mounted else None

    def selected_job(self) -> str | None:
        row = self.selected_row()
        return row.job_key if row is not None else None

    def selected_machine(self) -> str | None:
        row = self.selected_row()
        return row.machine if row is not None and row.machine else None

    def select_job(self, key: str) -> None:
        self.query_one(OverviewTable).select_key(key)

    # ---- actions -----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Start hides while the job runs (Live shows then); the rest always answer."""
        if action not in ("start", "live"):
            return True
        key = self.selected_job() if self.is_mounted else None
        session = self.ferry.sessions.get(key) if key else None
        active = session is not None and session.active
        return not active if action == "start" else True

    def _with_job(self, action: Callable[[str], object]) -> None:
        key = self.selected_job()
        if key is None:
            self.notify("No job selected: press n to create one", severity="warning")
            return
        action(key)

    def action_start(self) -> None:
        self._with_job(self.ferry.start_job)

    def action_hold(self) -> None:
        key = self.selected_job()
        if key is not None:
            self.ferry.steering.hold(key, self.selected_machine())

    def action_resume(self) -> None:
        key = self.selected_job()
        if key is not None:
            self.ferry.steering.resume(key, self.selected_machine())

    def action_stop(self) -> None:
        key = self.selected_job()
        if key is not None:
            self.ferry.steering.stop(key, self.selected_machine())

    def action_retry(self) -> None:
        """On a machine row: copy that machine again; on a job row: its failed machines."""
        key = self.selected_job()
        if key is not None:
            self.ferry.steering.retry(key, self.selected_machine())

    def action_active_full(self) -> None:
        """The next copy is a full: of the selected machine, or of every machine of a job."""
        key = self.selected_job()
        if key is not None:
            self.ferry.steering.active_full(key, self.selected_machine())

    def action_export(self) -> None:
        """Export the selected machine's newest copied point (asks the password if sealed)."""
        key = self.selected_job()
        if key is not None:
            export_flow(self.ferry, key, self.selected_machine())

    def action_deep_check(self) -> None:
        """Authenticate and decrypt every point of the selected machine (asks the password)."""
        key = self.selected_job()
        if key is not None:
            deep_check_flow(self.ferry, key, self.selected_machine())

    def action_toggle_schedule(self) -> None:
        self._with_job(self.ferry.toggle_schedule)

    def action_live(self) -> None:
        self._with_job(self.ferry.nav.open_live)

    def action_chain(self) -> None:
        key = self.selected_job()
        if key is not None:
            self.ferry.nav.open_chain(key, self.selected_machine())

    def action_whatif(self) -> None:
        self._with_job(self.ferry.nav.open_whatif)

    def action_edit(self) -> None:
        self._with_job(self.ferry.nav.open_editor)

    def action_edit_external(self) -> None:
        self._with_job(self.ferry.nav.edit_external)

    def action_history(self) -> None:
        self._with_job(self.ferry.nav.open_history)

    def action_all_history(self) -> None:
        self.ferry.nav.open_history(None)

    def action_new_job(self) -> None:
        self.ferry.nav.new_job()

    def action_filter(self) -> None:
        self.query_one(FilterBar).open()

    def action_clear_filter(self) -> None:
        if self.filter_text:
            self.query_one(FilterBar).action_clear_filter()

    @on(FilterBar.Applied)
    def _filter(self, event: FilterBar.Applied) -> None:
        self.filter_text = event.text.strip()
        self.refresh_rows()

    def action_sort(self) -> None:
        self.sort = SORTS[(SORTS.index(self.sort) + 1) % len(SORTS)]
        self.refresh_rows()

    def action_sort_reverse(self) -> None:
        self.reverse = not self.reverse
        self.refresh_rows()

    def action_toggle_machines(self) -> None:
        key = self.selected_job()
        if key is None:
            return
        self.collapsed.symmetric_difference_update({key})
        self.refresh_rows()
        self.select_job(key)

    def action_reload(self) -> None:
        self.ferry.machines.clear()
        self.ferry.reload_jobs()
