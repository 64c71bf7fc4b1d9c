"""Live run view: one row per machine, session bottleneck, throughput and the log.

The App pumps engine events into the session's model on a timer and then calls
`sync()` here; `sync()` touches only rows whose machine changed, inside one
`batch_update()`, so 500 machines cost what their changes cost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Header, Label

from console import format as fmt
from console.run_model import DONE, ON_HOLD
from console.run_session import RunSession
from console.store import JobStateKind
from console.widgets.filter_bar import FilterBar
from console.widgets.log_pane import LogPane
from console.widgets.machine_table import MachineTable
from console.widgets.throughput import ThroughputChart
from engine.model import Status

if TYPE_CHECKING:
    from console.app import FerryConsole


class LiveRunScreen(Screen[None]):
    """Watch and steer one run."""

    DEFAULT_CSS = """
    LiveRunScreen #run-summary, LiveRunScreen #run-bottleneck { height: 1; padding: 0 1; }
    LiveRunScreen #run-summary { background: $boost; text-style: bold; }
    LiveRunScreen #run-summary.-held { color: $warning; }
    LiveRunScreen #run-summary.-failed { color: $error; }
    LiveRunScreen #run-bottleneck { color: $text-muted; }
    LiveRunScreen #run-disks { height: 1; padding: 0 1; color: $text-muted; display: none; }
    LiveRunScreen #run-disks.-shown { display: block; }
    LiveRunScreen ThroughputChart { padding: 0 1; }
    LiveRunScreen MachineTable { height: 2fr; }
    LiveRunScreen LogPane { height: 1fr; min-height: 5; }
    LiveRunScreen.-log-full MachineTable, LiveRunScreen.-log-full ThroughputChart,
    LiveRunScreen.-log-full #run-bottleneck { display: none; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="run.back"),
        Binding("p", "hold", "Hold", id="run.hold"),
        Binding("r", "resume", "Resume", id="run.resume"),
        Binding("x", "stop", "Stop", id="run.stop"),
        Binding("P", "hold_machine", "Hold machine", show=False, id="run.hold-machine"),
        Binding("R", "resume_machine", "Resume machine", show=False, id="run.resume-machine"),
        Binding("X", "stop_machine", "Stop machine", show=False, id="run.stop-machine"),
        Binding("f", "retry", "Retry failed", show=False, id="run.retry"),
        Binding("a", "active_full", "Active full", show=False, id="run.active-full"),
        Binding("c", "chain", "Chains", id="run.chain"),
        Binding("slash", "filter", "Filter", id="run.filter"),
        Binding("L", "focus_log", "Log", id="run.log"),
        Binding("F", "full_log", "Full log", show=False, id="run.full-log"),
    ]

    def __init__(self, session: RunSession) -> None:
        super().__init__()
        self.session = session
        self.job_key = session.key
        self.frames = 0  # syncs that changed something (the bench reads this)
        self._controls: tuple[bool, bool] | None = None

    @property
    def ferry(self) -> FerryConsole:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="≡")
        yield Label("", id="run-summary")
        yield Label("", id="run-bottleneck")
        yield Label("", id="run-disks")
        yield FilterBar(id="run-filter", placeholder="filter machines…")
        yield FilterBar(id="log-search", placeholder="search the log…")
        yield MachineTable(id="machines")
        yield ThroughputChart(id="throughput")
        yield LogPane(id="run-log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = f"Run · {self.session.job}"
        self.sub_title = ""
        self.query_one(MachineTable).focus()
        self.call_after_refresh(self.full_sync)

    def full_sync(self) -> None:
        """Rebuild every row (first show, filter change, theme change)."""
        if not self.is_mounted or not self.is_attached:
            return
        model = self.session.model
        try:
            table = self.query_one(MachineTable)
            model.take_new_rows()
            model.take_dirty()
            table.operator_hold = self.session.held_by_operator and self.session.active
            table.rebuild(model)
            self._sync_rest(force=True)
        except NoMatches:  # the screen is being torn down (its widgets go one by one)
            return

    def sync(self) -> None:
        """Apply what changed in the model since the last call."""
        if not self.is_mounted or not self.is_attached:
            return
        model = self.session.model
        try:
            table = self.query_one(MachineTable)
            new = model.take_new_rows()
            dirty = model.take_dirty()
            held = self.session.held_by_operator and self.session.active
            if held != table.operator_hold:  # hold/resume changes every running row
                table.operator_hold = held
                dirty.update(model.rows)
            names = new + sorted(dirty.difference(new))
            with self.app.batch_update():
                table.sync(model, names)
                self._sync_rest()
        except NoMatches:  # the screen is being torn down (its widgets go one by one)
            return
        self.frames += 1

    def _sync_rest(self, force: bool = False) -> None:
        model = self.session.model
        self._update_summary()
        self.query_one("#run-bottleneck", Label).update(
            f"Bottleneck {fmt.bottleneck_of(model.bottleneck()) or '-'} · "
            f"{fmt.bottleneck_line(model.bottleneck())}")
        self._update_disks()
        if model.samples_changed or force:
            model.samples_changed = False
            self.query_one(ThroughputChart).set_samples(list(model.read_samples),
                                                        list(model.transferred_samples))
        self.query_one(LogPane).add_lines(model.take_log())

    def _update_summary(self) -> None:
        session, model = self.session, self.session.model
        counts = model.counts()
        if model.finished_at is not None or session.ended:
            state = f"Finished: {model.status or (Status.FAILED if session.error else '-')}"
        elif model.started_at is None:
            state = "Starting…"
        else:
            current = self.ferry.store.state_of(self.job_key)
            state = current.label if current.state != JobStateKind.RUNNING else current.state
        parts = [state, f"{fmt.percent(model.fraction()).strip()}",
                 f"{counts[DONE]}/{len(model.rows)} done"]
        if counts[ON_HOLD]:
            parts.append(f"{counts[ON_HOLD]} on hold")
        parts.append(fmt.size(model.processed_total))
        if model.running:
            if not session.held_by_operator:
                parts.append(fmt.rate(model.rate()))
            now = self.ferry.clock.monotonic()
            parts.append(fmt.duration(now - (model.started_at or now)))
        if session.error:
            parts.append(session.error)
        summary = self.query_one("#run-summary", Label)
        summary.update(" · ".join(parts))
        summary.set_class(session.held_by_operator or bool(counts[ON_HOLD]), "-held")
        summary.set_class(model.status == Status.FAILED or bool(session.error), "-failed")
        controls = (session.active, session.held_by_operator)
        if controls != self._controls:  # the footer offers hold/resume/stop by state
            self._controls = controls
            self.refresh_bindings()

    def _update_disks(self) -> None:
        """The highlighted machine's progress per disk (shown while it has any)."""
        name = self.highlighted_machine()
        row = self.session.model.rows.get(name) if name else None
        label = self.query_one("#run-disks", Label)
        shown = row is not None and bool(row.disks) and row.state != DONE
        label.set_class(shown, "-shown")
        if shown and row is not None:
            label.update(f"{row.name} disks: " + " · ".join(
                f"{disk} {fmt.percent(share).strip()}" for disk, share in row.disks.items()))

    @on(FilterBar.Applied, "#run-filter")
    def _filter(self, event: FilterBar.Applied) -> None:
        self.query_one(MachineTable).set_filter(self.session.model, event.text)

    @on(FilterBar.Applied, "#log-search")
    def _search(self, event: FilterBar.Applied) -> None:
        self.query_one(LogPane).set_search(event.text)

    def highlighted_machine(self) -> str | None:
        table = self.query_one(MachineTable)
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
        except Exception:
            return None
        return str(key.value) if key.value is not None else None

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_hold(self) -> None:
        self.ferry.steering.hold(self.job_key)

    def action_resume(self) -> None:
        self.ferry.steering.resume(self.job_key)

    def action_stop(self) -> None:
        self.ferry.steering.stop(self.job_key)

    def _machine(self, verb: str) -> str | None:
        machine = self.highlighted_machine()
        if machine is None:
            self.notify(f"no machine selected to {verb}", severity="warning")
        return machine

    def action_hold_machine(self) -> None:
        if (machine := self._machine("hold")) is not None:
            self.ferry.steering.hold(self.job_key, machine)

    def action_resume_machine(self) -> None:
        if (machine := self._machine("resume")) is not None:
            self.ferry.steering.resume(self.job_key, machine)

    def action_stop_machine(self) -> None:
        if (machine := self._machine("stop")) is not None:
            self.ferry.steering.stop(self.job_key, machine)

    def action_retry(self) -> None:
        """After the run: run its failed machines again (a new run of just those)."""
        self.ferry.steering.retry(self.job_key)

    def action_active_full(self) -> None:
        if (machine := self._machine("copy as a full")) is not None:
            self.ferry.steering.active_full(self.job_key, machine)

    def action_chain(self) -> None:
        self.ferry.nav.open_chain(self.job_key, self.highlighted_machine())

    def action_filter(self) -> None:
        """`/` filters the machines, or searches the log when the log has the focus."""
        target = "#log-search" if isinstance(self.focused, LogPane) else "#run-filter"
        self.query_one(target, FilterBar).open()

    def action_focus_log(self) -> None:
        self.query_one(LogPane).focus()

    def action_full_log(self) -> None:
        """The log alone on the screen (and back)."""
        self.toggle_class("-log-full")
        log = self.query_one(LogPane)
        if self.has_class("-log-full"):
            log.focus()
