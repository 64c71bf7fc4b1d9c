"""Chain view: pick a machine of a job; its source and target chains side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList
from textual.widgets.option_list import Option

from console.messages import JobChanged
from console.records import MachineInfo
from console.widgets.chain_view import ChainColumn

if TYPE_CHECKING:
    from console.app import FerryConsole


class ChainScreen(Screen[None]):
    """A machine's chains: source on the left, target on the right."""

    DEFAULT_CSS = """
    ChainScreen #chain-machines {
        width: 20;
        height: 1fr;
        border: round $panel;
        border-title-color: $text;
    }
    ChainScreen #chain-machines:focus { border: round $primary; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="chain.back"),
        Binding("left_square_bracket", "machine(-1)", "Prev machine", id="chain.prev"),
        Binding("right_square_bracket", "machine(1)", "Next machine", id="chain.next"),
    ]

    def __init__(self, job_key: str, machine: str | None = None) -> None:
        super().__init__()
        self.job_key = job_key
        self.machine = machine
        self.infos: list[MachineInfo] = []

    @property
    def ferry(self) -> FerryConsole:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="≡")
        with Horizontal():
            machines = OptionList(id="chain-machines")
            machines.border_title = "Machines"
            yield machines
            yield ChainColumn("Source", id="chain-source")
            yield ChainColumn("Target", id="chain-target")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        entry = self.ferry.jobs[self.job_key]
        self.title = f"Chains · {entry.name}"
        known = self.ferry.machines.get(self.job_key)
        if known is not None:
            self._set_machines(known)
        elif entry.spec is not None:
            self.query_one("#chain-source", ChainColumn).show(None, "loading…")
            self.ferry.load_job_data(self.job_key, entry.spec)

    def on_job_changed(self, message: JobChanged) -> None:
        if message.job_key != self.job_key:
            return
        error = self.ferry.store.machine_errors.get(self.job_key, "")
        if error and not self.ferry.machines.get(self.job_key):
            self.query_one("#chain-source", ChainColumn).show(None, error)
            return
        known = self.ferry.machines.get(self.job_key)
        if known is not None and [i.name for i in known] != [i.name for i in self.infos]:
            self._set_machines(known)

    def _set_machines(self, infos: list[MachineInfo]) -> None:
        self.infos = infos
        options = self.query_one("#chain-machines", OptionList)
        options.clear_options()
        options.add_options([Option(i.name, id=i.name) for i in infos])
        if not infos:
            self.query_one("#chain-source", ChainColumn).show(None, "no machines")
            self.query_one("#chain-target", ChainColumn).show(None, "")
            return
        names = [i.name for i in infos]
        index = names.index(self.machine) if self.machine in names else 0
        options.highlighted = index
        self._show(infos[index])
        options.focus()

    @on(OptionList.OptionHighlighted, "#chain-machines")
    def _picked(self, event: OptionList.OptionHighlighted) -> None:
        info = next((i for i in self.infos if i.name == event.option.id), None)
        if info is not None and info.name != self.machine:
            self._show(info)

    def _show(self, info: MachineInfo) -> None:
        self.machine = info.name
        self.sub_title = info.name
        self.query_one("#chain-source", ChainColumn).show(
            info.source, info.error or "no source chain")
        self.query_one("#chain-target", ChainColumn).show(
            info.target, "not copied yet")

    def action_machine(self, step: int) -> None:
        options = self.query_one("#chain-machines", OptionList)
        if not self.infos:
            return
        current = options.highlighted or 0
        options.highlighted = (current + step) % len(self.infos)

    def action_back(self) -> None:
        self.app.pop_screen()
