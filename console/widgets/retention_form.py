"""The retention what-if form: keep/unit, GFS cycles, sizing, and the calendar what-if
(missed runs, runs without a new source point, the day the form's policy starts);
builds a RetentionPolicy and the what-if around it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Label, Select

from engine.model import GfsCycle, GfsPolicy, RetentionPolicy
from engine.simulate import SizingModel
from engine.units import MONTH_WEEKS, MONTHS, WEEKDAY_NAMES


class FormError(ValueError):
    """A form value that cannot become a policy (message names the field)."""


@dataclass
class FormValues:
    policy: RetentionPolicy
    sizing: SizingModel | None  # None: sizes from the job's real chains (as `ferry preview`)
    days: int
    skip: frozenset[date] = field(default_factory=frozenset)  # days without a run
    no_new_point: frozenset[date] = field(default_factory=frozenset)  # runs finding nothing
    policy_from: date | None = None  # the form's policy from this day; the job's before it


def _select(options: list[str], value: str, id: str) -> Select[str]:
    return Select([(o, o) for o in options], value=value if value in options else options[0],
                  allow_blank=False, compact=True, id=id)


# the what-if screen's keys and `?` (help): no field of the form (numbers, sizes) takes
# these characters
SCREEN_KEYS = frozenset("W[]{}?")


class FormInput(Input):
    """An Input that leaves the what-if screen's own keys to the screen (Textual hides
    every binding of a printable key from the screen while an Input has the focus)."""

    def check_consume_key(self, key: str, character: str | None) -> bool:
        if character is not None and character in SCREEN_KEYS:
            return False
        return super().check_consume_key(key, character)

    async def _on_key(self, event: events.Key) -> None:
        if event.character is not None and event.character in SCREEN_KEYS:
            return  # not typed: the key goes on to the screen's and the App's bindings
        await super()._on_key(event)


def _input(value: str, id: str, width: int | str = 6, placeholder: str = "") -> Input:
    box = FormInput(value, id=id, compact=True, placeholder=placeholder)
    box.styles.width = width
    return box


# the calendar what-if rows: (label, input id, placeholder, tooltip)
CALENDAR_ROWS = (
    ("Skip", "f-skip", "no missed runs",
     "Days without a run (job off, source down): 2026-01-11,2026-01-17..2026-01-19"),
    ("No new", "f-nonew", "every run has a point",
     "Days whose runs find no new source point (the GFS full is still made)"),
    ("From", "f-from", "the form from day 1",
     "The form's policy applies from this day (2026-01-20); the job's own before it"),
)


class RetentionForm(VerticalScroll):
    """Compact one-line rows so the whole form fits at 80x24."""

    DEFAULT_CSS = """
    RetentionForm {
        width: 34;
        height: 1fr;
        border: round $panel;
        border-title-color: $text;
        padding: 0 1;
        scrollbar-size-vertical: 1;
    }
    RetentionForm:focus-within { border: round $primary; }
    RetentionForm > Horizontal { height: 1; }
    RetentionForm .form-label { width: 9; color: $text-muted; }
    RetentionForm .form-sep { width: 1; }
    RetentionForm Select { width: 1fr; }
    RetentionForm .form-head { color: $primary; text-style: bold; margin-top: 1; }
    RetentionForm #form-error { color: $error; width: 1fr; height: auto; }
    """

    def __init__(self, policy: RetentionPolicy, days: int = 60, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Retention"
        self._policy = policy
        self._days = days

    def compose(self) -> ComposeResult:
        p = self._policy
        weekly, monthly, yearly = (p.gfs.weekly, p.gfs.monthly, p.gfs.yearly) if p.gfs \
            else (None, None, None)
        with Horizontal():
            yield Label("Keep", classes="form-label")
            yield _input(str(p.keep), "f-keep")
            yield Label(" ", classes="form-sep")
            yield _select(["points", "days"], p.unit, "f-unit")
        yield Label("GFS (0 = off)", classes="form-head")
        for name, cycle, options, default in (
                ("weekly", weekly, list(WEEKDAY_NAMES), "sunday"),
                ("monthly", monthly, list(MONTH_WEEKS), "first"),
                ("yearly", yearly, list(MONTHS), "january")):
            with Horizontal():
                yield Label(name.capitalize(), classes="form-label")
                yield _input(str(cycle.keep if cycle else 0), f"f-{name}")
                yield Label(" ", classes="form-sep")
                yield _select(options, cycle.at if cycle else default, f"f-{name}-at")
        with Horizontal():
            yield Label("Method", classes="form-label")
            yield _select(["synthetic", "active"], p.gfs.method if p.gfs else "synthetic",
                          "f-method")
        yield Label("Sizing (empty: real chains)", classes="form-head")
        with Horizontal():
            yield Label("Used", classes="form-label")
            yield _input("", "f-used", width=12, placeholder="real chains")
        with Horizontal():
            yield Label("Change %", classes="form-label")
            yield _input("5", "f-change")
            yield Label(" Red. %", classes="form-label")
            yield _input("50", "f-reduction")
        with Horizontal():
            yield Label("Days", classes="form-label")
            yield _input(str(self._days), "f-days")
        yield Label("Calendar what-if", classes="form-head")
        for label, id, placeholder, tip in CALENDAR_ROWS:
            with Horizontal():
                yield Label(label, classes="form-label")
                box = _input("", id, width="1fr", placeholder=placeholder)
                box.tooltip = tip
                yield box
        yield Label("", id="form-error")

    def on_mount(self) -> None:
        if self.app.is_headless:
            for box in self.query(Input):
                box.cursor_blink = False

    def _text(self, id: str) -> str:
        return self.query_one(f"#{id}", Input).value.strip()

    def _choice(self, id: str) -> str:
        return str(self.query_one(f"#{id}", Select).value)

    def _int(self, id: str, name: str, low: int, high: int = 100_000) -> int:
        text = self._text(id)
        try:
            value = int(text)
        except ValueError:
            raise FormError(f"{name}: {text!r} is not a whole number") from None
        if not low <= value <= high:
            raise FormError(f"{name}: must be between {low} and {high}")
        return value

    def _float(self, id: str, name: str) -> float:
        text = self._text(id)
        try:
            value = float(text)
        except ValueError:
            raise FormError(f"{name}: {text!r} is not a number") from None
        if not 0 <= value <= 100:
            raise FormError(f"{name}: must be between 0 and 100")
        return value

    def values(self) -> FormValues:
        """The form as a policy + sizing; raises FormError naming the bad field."""
        from engine.units import parse_size

        keep = self._int("f-keep", "keep", 2)
        cycles: dict[str, GfsCycle | None] = {}
        for name in ("weekly", "monthly", "yearly"):
            count = self._int(f"f-{name}", name, 0, 1000)
            cycles[name] = GfsCycle(count, self._choice(f"f-{name}-at")) if count else None
        gfs = GfsPolicy(method=self._choice("f-method"), **cycles) if any(
            cycles.values()) else None
        # the settings the form does not show (deleted items, min points, immutability)
        # stay the job's own
        policy = replace(self._policy, keep=keep, unit=self._choice("f-unit"), gfs=gfs)
        sizing = None
        if self._text("f-used"):  # a sizing model instead of the real chains
            try:
                used = parse_size(self._text("f-used"))
            except ValueError as exc:
                raise FormError(f"used: {exc}") from None
            sizing = SizingModel(used, self._float("f-change", "change %"),
                                 self._float("f-reduction", "reduction %"))
        days = self._int("f-days", "days", 1, 3660)
        return FormValues(policy, sizing, days, self._dates("f-skip", "skip"),
                          self._dates("f-nonew", "no new"), self._day("f-from", "from"))

    def _dates(self, id: str, name: str) -> frozenset[date]:
        from engine.units import parse_dates

        try:
            return parse_dates(self._text(id))
        except ValueError as exc:
            raise FormError(f"{name}: {exc}") from None

    def _day(self, id: str, name: str) -> date | None:
        text = self._text(id)
        if not text:
            return None
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise FormError(f"{name}: expected a date like 2026-01-20, got {text!r}") from None

    def show_error(self, text: str) -> None:
        self.query_one("#form-error", Label).update(text)
