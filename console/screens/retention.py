"""Retention what-if: change keep/unit/GFS and see, at once, what would be kept.

It runs `ferry preview`'s own code (`engine.preview_cli.build_preview`: the job's
schedule and copy window, missed runs, runs without a new source point, the form's
policy from a given day) in a worker on every change (debounced), shows the kept
points of one day with the reason for each, what that day's runs did ("no run at
...", "W full made (catch-up ...)", "2 weekly fulls stay until ..."), what the
real chains keep of a GFS cycle the form switches off, the total size over time
and the worst day; `ctrl+s` writes the policy back into the job file through
`engine.jobs.save.update_retention`. Setting a "From" day shows that day.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, Label, Select

from console import format as fmt
from console.messages import JobSaved, PreviewReady
from console.screens.confirm import ConfirmModal
from console.widgets.kept_points import KeptPoints
from console.widgets.retention_form import FormError, FormValues, RetentionForm
from console.widgets.size_chart import SizeChart
from engine.jobs.load import JobSpec
from engine.model import RetentionPolicy
from engine.simulate import PreviewDay, PreviewResult

if TYPE_CHECKING:
    from console.app import FerryConsole

def _short(line: str) -> str:
    """A preview line without the explanation `ferry preview` prints in full: a trailing
    "(...)" other than a catch-up, and the reason after "deleted N points:"."""
    if line.startswith("deleted ") and ": " in line:
        return line[:line.index(": ")]
    if line.endswith(")") and " (" in line and not line[line.index(" (") + 2:].startswith(
            "catch-up"):
        return line[:line.index(" (")]
    return line


class RetentionScreen(Screen[None]):
    """Form on the left; worst day, size chart and the kept points on the right."""

    DEFAULT_CSS = """
    RetentionScreen #whatif-right { width: 1fr; height: 1fr; }
    RetentionScreen #whatif-worst, RetentionScreen #whatif-day {
        height: 1; padding: 0 1; background: $boost;
    }
    RetentionScreen #whatif-worst { color: $warning; text-style: bold; height: auto; width: 1fr; }
    RetentionScreen #whatif-actions {
        width: 1fr; height: auto; max-height: 3; padding: 0 1; color: $text-muted;
    }
    RetentionScreen #whatif-kept {
        width: 1fr; height: auto; max-height: 2; padding: 0 1; color: $warning;
    }
    RetentionScreen #whatif-kept.-empty { display: none; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back", id="whatif.back"),
        Binding("ctrl+s,f2", "save", "Save", id="whatif.save", priority=True),
        # priority: no field takes these characters, and a focused field must not eat them
        Binding("left_square_bracket,pageup", "day(-1)", "Prev day", id="whatif.prev-day",
                priority=True, key_display="["),
        Binding("right_square_bracket,pagedown", "day(1)", "Next day", id="whatif.next-day",
                priority=True, key_display="]"),
        Binding("left_curly_bracket", "day(-30)", "30 days back", show=False,
                id="whatif.prev-month", priority=True),
        Binding("right_curly_bracket", "day(30)", "30 days on", show=False,
                id="whatif.next-month", priority=True),
        Binding("W", "worst", "Worst day", id="whatif.worst", priority=True),
        Binding("question_mark", "app.help", "Help", id="whatif.help",
                priority=True),  # the App's `?` never reaches it past a focused field
    ]

    def __init__(self, job_key: str, debounce: float = 0.15) -> None:
        super().__init__()
        self.job_key = job_key
        self.debounce = debounce
        self.generation = 0
        self.result: PreviewResult | None = None
        self.values: FormValues | None = None
        self.day_index: int | None = None
        self._jump_to: date | None = None  # a day to show once its result is in
        self._timer: Timer | None = None
        self.sizing_words = ""

    @property
    def ferry(self) -> FerryConsole:
        return self.app  # type: ignore[return-value]

    @property
    def spec(self) -> JobSpec:
        spec = self.ferry.jobs[self.job_key].spec
        assert spec is not None  # the App opens this screen only for a valid job file
        return spec

    def compose(self) -> ComposeResult:
        yield Header(show_clock=False, icon="≡")
        with Horizontal():
            policy = self.spec.retention
            yield RetentionForm(policy, self.ferry.backend.preview_days(policy),
                                id="whatif-form")
            with Vertical(id="whatif-right"):
                yield Label("", id="whatif-worst")
                yield SizeChart(id="whatif-chart")
                yield Label("", id="whatif-day")
                yield Label("", id="whatif-actions")
                yield Label("", id="whatif-kept", classes="-empty")
                yield KeptPoints(id="whatif-points")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.title = f"What-if · {self.spec.name}"
        self.query_one("#f-keep", Input).focus()
        self.recompute()

    # ---- recompute on every change -----------------------------------------------------------
    @on(Input.Changed)
    @on(Select.Changed)
    def _changed(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(self.debounce, self._recompute_if_changed)

    def _recompute_if_changed(self) -> None:
        """A field's Changed event also comes for the value it was mounted with: no second
        preview for a form that says what the last one said."""
        self.recompute(only_if_changed=True)

    def recompute(self, only_if_changed: bool = False) -> None:
        form = self.query_one(RetentionForm)
        try:
            values = form.values()
        except FormError as exc:
            form.show_error(str(exc))
            return
        form.show_error("")
        if only_if_changed and values == self.values:
            return
        if values.policy_from is not None and (
                self.values is None or self.values.policy_from != values.policy_from):
            self._jump_to = values.policy_from  # show the day the policy changes
        self.values = values
        self.generation += 1
        start = self.ferry.backend.preview_start(self.spec, self.ferry.clock.now())
        self.simulate(self.generation, values, start)

    @work(thread=True, exclusive=True, group="whatif", exit_on_error=False)
    def simulate(self, generation: int, values: FormValues, start: datetime) -> None:
        backend = self.ferry.backend
        try:
            result = backend.simulate(
                self.spec, values.policy, start, values.days, values.sizing,
                skip=values.skip, no_new_point=values.no_new_point,
                policy_from=values.policy_from, today=self.ferry.clock.now().date())
            if values.sizing is not None:
                words = "sizing model"
            else:
                real = backend.real_sizing(self.spec)
                words = (f"real chains: full {fmt.size(real.full)}, increment "
                         f"{fmt.size(real.incremental)}" if real is not None
                         else "no chains yet: sizes 0 (give Used)")
        except Exception as exc:
            self.post_message(PreviewReady(generation, None, error=str(exc)))
            return
        self.post_message(PreviewReady(generation, result, sizing=words))

    def on_preview_ready(self, message: PreviewReady) -> None:
        if message.generation != self.generation:
            return  # an older form state; a newer result is on its way
        if message.error:
            self.query_one("#whatif-worst", Label).update(f"Preview failed: {message.error}")
            self.notify(message.error, title="What-if", severity="error")
            return
        self.result = message.result
        self.sizing_words = message.sizing
        days = self.result.days if self.result is not None else []
        if self._jump_to is not None:
            found = [i for i, d in enumerate(days) if d.date == self._jump_to]
            if found:
                self.day_index = found[0]
            self._jump_to = None
        if self.day_index is None or self.day_index >= len(days):
            self.day_index = len(days) - 1 if days else None
        self._show()

    # ---- showing -----------------------------------------------------------------------------
    def _worst_index(self, days: list[PreviewDay]) -> int | None:
        if self.result is None:
            return None
        worst = self.result.worst_day.date
        return next((index for index, day in enumerate(days) if day.date == worst), None)

    def _show(self) -> None:
        days = self.result.days if self.result is not None else []
        worst = self._worst_index(days)
        worst_label = self.query_one("#whatif-worst", Label)
        if worst is not None:
            wd = days[worst]
            cost = self.result.immutability if self.result is not None else None
            worst_label.update(f"Worst day {wd.date}: {fmt.size(wd.total_size)}"
                               f" · {fmt.plural(len(wd.points), 'point')}"
                               + (f" · immutability {'+' if cost['extra_worst_day'] >= 0 else '-'}"
                                  f"{fmt.size(abs(cost['extra_worst_day']))}" if cost else "")
                               + (f" · {self.sizing_words}" if self.sizing_words else ""))
        else:
            worst_label.update("No days simulated")
        self.query_one(SizeChart).show([d.total_size for d in days], worst,
                                       self.day_index)
        notes = self.result.notes if self.result is not None else []
        kept = [n.removeprefix("real chains: ") for n in notes if n.startswith("real chains: ")]
        kept_label = self.query_one("#whatif-kept", Label)
        kept_label.update("Real chains: " + "; ".join(_short(n) for n in kept) if kept else "")
        kept_label.set_class(not kept, "-empty")
        self._show_day(days)

    def _show_day(self, days: list[PreviewDay]) -> None:
        label = self.query_one("#whatif-day", Label)
        kept = self.query_one(KeptPoints)
        if self.day_index is None or not days:
            label.update("")
            kept.show_points([])
            return
        day = days[self.day_index]
        points = sorted(day.points, key=lambda p: p.time)
        label.update(f"Day {self.day_index + 1}/{len(days)} {day.date} · "
                     f"{fmt.plural(len(points), 'point')} · {fmt.size(day.total_size)}")
        actions = [_short(a) for a in day.actions]
        self.query_one("#whatif-actions", Label).update(
            " · ".join(actions) if actions else "no run this day")
        kept.show_points(points)

    def action_day(self, step: int) -> None:
        days = self.result.days if self.result is not None else []
        if not days or self.day_index is None:
            return
        self.day_index = max(0, min(len(days) - 1, self.day_index + step))
        self._show()

    def action_worst(self) -> None:
        days = self.result.days if self.result is not None else []
        self.day_index = self._worst_index(days)
        self._show()

    # ---- saving ------------------------------------------------------------------------------
    def action_save(self) -> None:
        if self.values is None:
            self.notify("Fix the form first", severity="error")
            return
        policy = self.values.policy
        entry = self.ferry.jobs[self.job_key]

        def answer(yes: bool | None) -> None:
            if yes:
                self.save(policy)

        self.app.push_screen(ConfirmModal(
            f"Save retention to {entry.path.name}?",
            f"New policy: {fmt.retention_summary(policy)}.\nThe next run applies it: restore "
            "points outside it are merged or deleted.", yes="Save"), answer)

    @work(thread=True, group="whatif-save", exit_on_error=False)
    def save(self, policy: RetentionPolicy) -> None:
        entry = self.ferry.jobs[self.job_key]
        try:
            spec = self.ferry.backend.update_retention(entry.path, policy)
        except Exception as exc:
            self.app.post_message(JobSaved(self.job_key, None, "", error=str(exc)))
            return
        self.app.post_message(JobSaved(self.job_key, spec,
                                       f"{entry.path.name}: retention saved"))

    def action_back(self) -> None:
        self.app.pop_screen()
