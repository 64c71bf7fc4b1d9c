"""Command palette provider: screens, actions on the current job, and themes.

Each command shows the key that does the same thing (after keymap remaps), so
the palette also teaches the keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from console.app import FerryConsole


@dataclass(frozen=True)
class Command:
    title: str
    help: str
    run: Callable[[], object]
    binding_id: str = ""


def ferry_commands(app: FerryConsole) -> list[Command]:
    """Every palette command for the app's current state."""
    key = app.current_job_key()
    job = app.jobs[key].name if key and key in app.jobs else ""
    out: list[Command] = []

    def on_job(title: str, help_text: str, action: Callable[[str], object],
               binding_id: str) -> None:
        if key is None:
            return
        out.append(Command(f"{title}: {job}", help_text, partial(action, key), binding_id))

    on_job("Start job", "run the job now and open the live view", app.start_job, "job.start")
    on_job("Hold job", "pause every task at its next block (resumable)", app.steering.hold, "job.hold")
    on_job("Resume job", "continue a job held by the operator", app.steering.resume, "job.resume")
    on_job("Stop job", "end the run (asks first)", app.steering.stop, "job.stop")
    on_job("Enable/disable schedule", "write enabled = true/false into the job file",
           app.toggle_schedule, "job.toggle-schedule")
    on_job("Open live run", "watch the current or last run of the job", app.nav.open_live, "job.live")
    on_job("Open retention what-if", "try retention settings and see the kept points",
           app.nav.open_whatif, "job.whatif")
    on_job("Open job editor", "edit the job file with validation", app.nav.open_editor, "job.edit")
    on_job("Open history", "past sessions and per-machine results", app.nav.open_history,
           "job.history")
    if key is not None:
        out.append(Command(f"Open chains: {job}", "source and target chains side by side",
                           partial(app.nav.open_chain, key, None), "job.chain"))
    out.append(Command("New job", "create a job file from the template", app.nav.new_job, "job.new"))
    out.append(Command("Go to jobs", "back to the job tree", app_go_home(app), ""))
    out.append(Command("Reload jobs", "read the jobs folder again", app.reload_jobs,
                       "job.reload"))
    out.append(Command("Help", "keys and concepts", app.action_help, "app.help"))
    for name in app.ferry_themes:
        out.append(Command(f"Theme: {name}", "switch the console's colours",
                           partial(app.switch_theme, name)))
    return out


def app_go_home(app: FerryConsole) -> Callable[[], None]:
    def go() -> None:
        main = app.main_screen()
        while main is not None and app.screen is not main:
            app.pop_screen()

    return go


def key_hint(app: FerryConsole, binding_id: str) -> str:
    """The key currently bound to `binding_id` (keymap aware), or ''."""
    if not binding_id:
        return ""
    keymap = app.user_keymap
    if binding_id in keymap:
        return keymap[binding_id].split(",")[0]
    from console.bindings import default_keys

    return default_keys().get(binding_id, "")


class FerryCommands(Provider):
    """The console's own palette commands."""

    def _commands(self) -> list[Command]:
        return ferry_commands(self.app)  # type: ignore[arg-type]

    def _help(self, command: Command) -> str:
        key = key_hint(self.app, command.binding_id)  # type: ignore[arg-type]
        return f"{command.help}  [key: {key}]" if key else command.help

    async def discover(self) -> Hits:
        for command in self._commands():
            yield DiscoveryHit(command.title, command.run, help=self._help(command))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in self._commands():
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(score, matcher.highlight(command.title), command.run,
                          help=self._help(command))
