"""Main screen: the job tree beside the details of the selected job, machine or point."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Tree

from console.messages import JobChanged, JobsLoaded, MachinesLoaded, StatusesLoaded
from console.widgets.details import DetailsPane
from console.widgets.filter_bar import FilterBar
from console.widgets.job_tree import JobTree, NodeRef

if TYPE_CHECKING:
    from console.app import FerryConsole


class MainScreen(Screen[None]):
    """Jobs -> machines -> restore points, and everything about the selected one."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("s", "start", "Start", id="job.start"),
        Binding("p", "hold", "Hold", id="job.hold"),
        Binding("r", "resume", "Resume", id="job.resume"),
        Binding("x", "stop", "Stop", id="job.stop"),
        Binding("t", "toggle_schedule", "Schedule", id="job.toggle-schedule"),
        Binding("l", "live", "Live", id="job.live"),
        Binding("c", "chain", "Chains", id="job.chain"),
        Binding("w", "whatif", "What-if", id="job.whatif"),
        Binding("e", "edit", "Edit", id="job.edit"),
        Binding("h", "history", "History", id="job.history"),
        Binding("n", "new_job", "New job", show=False, id="job.new"),
        Binding("slash", "filter", "Filter", show=False, id="job.filter"),
        Binding("ctrl+r", "reload", "Reload", show=False, id="job.reload"),
    ]

    def __init__(self) -> None:
        super().__init__(id="main")

    @property
    def ferry(self) -> FerryConsole:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="≡")
        yield FilterBar(id="job-filter", placeholder="filter jobs and machines…")
        with Horizontal(id="main-panes"):
            with Vertical(id="tree-pane"):
                yield JobTree(id="job-tree")
            with Vertical(id="details-pane"):
                yield DetailsPane(id="details")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = "Ferry"
        self.sub_title = str(self.ferry.backend.jobs_dir)
        self.query_one(DetailsPane).show_message("Loading jobs…")
        self.query_one(JobTree).focus()
        self.load_jobs()

    # ---- workers (they only post messages) ---------------------------------------------------
    @work(thread=True, exclusive=True, group="jobs", exit_on_error=False, description="jobs")
    def load_jobs(self) -> None:
        backend = self.ferry.backend
        try:
            entries = backend.discover()
        except Exception as exc:
            self.post_message(JobsLoaded([], error=str(exc)))
            return
        self.post_message(JobsLoaded(entries))
        statuses = {e.key: backend.last_status(e.spec) for e in entries if e.spec is not None}
        self.post_message(StatusesLoaded({k: v for k, v in statuses.items() if v}))

    @work(thread=True, group="machines", exit_on_error=False, description="machines")
    def load_machines(self, job_key: str, spec: Any) -> None:
        try:
            machines = self.ferry.backend.machines(spec)
        except Exception as exc:
            self.post_message(MachinesLoaded(job_key, [], error=str(exc)))
            return
        self.post_message(MachinesLoaded(job_key, machines))

    # ---- handlers (they own state) -----------------------------------------------------------
    def on_jobs_loaded(self, message: JobsLoaded) -> None:
        tree = self.query_one(JobTree)
        self.ferry.set_jobs(message.entries)
        for key in self.ferry.jobs:
            tree.set_state(key, self.ferry.state_of(key))
        tree.set_jobs(message.entries)
        if message.error:
            self.query_one(DetailsPane).show_message(message.error)
            self.notify(message.error, title="Jobs", severity="error", timeout=10)
        elif not message.entries:
            self.query_one(DetailsPane).show_message(
                f"No job files in {self.ferry.backend.jobs_dir}.\nPress n to create one.")
        else:
            if tree.cursor_line < 0:
                tree.cursor_line = 0
            self._show_details()

    def on_statuses_loaded(self, message: StatusesLoaded) -> None:
        self.ferry.statuses.update(message.statuses)
        self.query_one(JobTree).set_statuses(message.statuses)
        self._show_details()

    def on_machines_loaded(self, message: MachinesLoaded) -> None:
        self.ferry.machines[message.job_key] = message.machines
        self.query_one(JobTree).set_machines(message.job_key, message.machines, message.error)
        self._show_details()

    def on_job_changed(self, message: JobChanged) -> None:
        tree = self.query_one(JobTree)
        entry = self.ferry.jobs.get(message.job_key)
        if (message.job_key not in self.ferry.machines and entry is not None
                and entry.spec is not None and tree.machines_of(message.job_key) is not None):
            self.load_machines(message.job_key, entry.spec)  # chains changed: read them again
        if message.spec is not None:
            tree.set_jobs(list(self.ferry.jobs.values()))
        tree.set_state(message.job_key, self.ferry.state_of(message.job_key),
                       self.ferry.statuses.get(message.job_key))
        ref = tree.selected()
        if ref is not None and ref.job_key == message.job_key:
            self._show_details()
        self.refresh_bindings()

    @on(Tree.NodeExpanded)
    def _expanded(self, event: Tree.NodeExpanded[NodeRef]) -> None:
        ref = event.node.data
        if ref is None or ref.kind != "job" or ref.job_key in self.ferry.machines:
            return
        entry = self.ferry.jobs.get(ref.job_key)
        if entry is not None and entry.spec is not None:
            self.query_one(JobTree).set_machines(ref.job_key, [], "loading…")
            self.load_machines(ref.job_key, entry.spec)

    @on(Tree.NodeHighlighted)
    def _highlighted(self, event: Tree.NodeHighlighted[NodeRef]) -> None:
        self._show_details()
        self.refresh_bindings()

    @on(FilterBar.Applied)
    def _filter(self, event: FilterBar.Applied) -> None:
        self.query_one(JobTree).set_filter(event.text)

    def _show_details(self) -> None:
        details = self.query_one(DetailsPane)
        ref = self.query_one(JobTree).selected()
        if ref is None:
            return
        entry = self.ferry.jobs.get(ref.job_key)
        if entry is None:
            return
        if ref.kind in ("job", "note"):
            details.show_job(entry, self.ferry.state_of(ref.job_key),
                             self.ferry.statuses.get(ref.job_key, ""),
                             self.ferry.sessions.get(ref.job_key))
            return
        info = self.ferry.machine_info(ref.job_key, ref.machine)
        if info is None:
            return
        if ref.kind == "machine":
            details.show_machine(entry.name, info)
        else:
            point = next((p for p in info.target_points if p.id == ref.point_id), None)
            if point is not None:
                details.show_point(info.name, point)

    # ---- actions -----------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Offer only the run controls that fit the selected job's state (keeps the footer
        short enough for 80 columns)."""
        if action not in ("start", "hold", "resume", "stop", "live"):
            return True
        key = self.selected_job() if self.is_mounted else None
        session = self.ferry.sessions.get(key) if key else None
        active = session is not None and session.active
        if action == "start":
            return not active
        if action == "live":
            return session is not None
        if action == "stop":
            return active
        held = active and session is not None and session.held_by_operator
        return held if action == "resume" else active and not held

    def selected_job(self) -> str | None:
        ref = self.query_one(JobTree).selected()
        return ref.job_key if ref is not None else None

    def selected_machine(self) -> str | None:
        ref = self.query_one(JobTree).selected()
        return ref.machine if ref is not None and ref.machine else None

    def _with_job(self, method: str) -> None:
        key = self.selected_job()
        if key is None:
            self.notify("Select a job first", severity="warning")
            return
        getattr(self.ferry, method)(key)

    def action_start(self) -> None:
        self._with_job("start_job")

    def action_hold(self) -> None:
        self._with_job("hold_job")

    def action_resume(self) -> None:
        self._with_job("resume_job")

    def action_stop(self) -> None:
        self._with_job("stop_job")

    def action_toggle_schedule(self) -> None:
        self._with_job("toggle_schedule")

    def action_live(self) -> None:
        self._with_job("open_live")

    def action_chain(self) -> None:
        key = self.selected_job()
        if key is not None:
            self.ferry.open_chain(key, self.selected_machine())

    def action_whatif(self) -> None:
        self._with_job("open_whatif")

    def action_edit(self) -> None:
        self._with_job("open_editor")

    def action_history(self) -> None:
        self._with_job("open_history")

    def action_new_job(self) -> None:
        self.ferry.new_job()

    def action_filter(self) -> None:
        self.query_one(FilterBar).open()

    def action_reload(self) -> None:
        self.ferry.machines.clear()
        self.load_jobs()
