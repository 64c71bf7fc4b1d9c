"""The retention what-if form: keep/unit, GFS cycles, sizing; builds a RetentionPolicy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Label, Select

from console.backend import Sizing

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKS = ["first", "second", "third", "fourth", "last"]
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december"]


class FormError(ValueError):
    """A form value that cannot become a policy (message names the field)."""


@dataclass
class FormValues:
    policy: Any  # engine.model.RetentionPolicy
    sizing: Sizing | None  # None: sizes from the job's real chains (as `ferry preview`)
    days: int


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


def _input(value: str, id: str, width: int = 6, placeholder: str = "") -> Input:
    field = FormInput(value, id=id, compact=True, placeholder=placeholder)
    field.styles.width = width
    return field


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
    RetentionForm #form-error { color: $error; height: auto; }
    """

    def __init__(self, policy: Any, days: int = 60, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = "Retention"
        self._policy = policy
        self._days = days

    def compose(self) -> ComposeResult:
        p = self._policy
        gfs = getattr(p, "gfs", None)
        weekly = getattr(gfs, "weekly", None)
        monthly = getattr(gfs, "monthly", None)
        yearly = getattr(gfs, "yearly", None)
        with Horizontal():
            yield Label("Keep", classes="form-label")
            yield _input(str(getattr(p, "keep", 7)), "f-keep")
            yield Label(" ", classes="form-sep")
            yield _select(["points", "days"], getattr(p, "unit", "points"), "f-unit")
        yield Label("GFS (0 = off)", classes="form-head")
        for name, cycle, options, default in (
                ("weekly", weekly, WEEKDAYS, "sunday"), ("monthly", monthly, WEEKS, "first"),
                ("yearly", yearly, MONTHS, "january")):
            with Horizontal():
                yield Label(name.capitalize(), classes="form-label")
                yield _input(str(cycle.keep if cycle else 0), f"f-{name}")
                yield Label(" ", classes="form-sep")
                yield _select(options, cycle.at if cycle else default, f"f-{name}-at")
        with Horizontal():
            yield Label("Method", classes="form-label")
            yield _select(["synthetic", "active"], getattr(gfs, "method", "synthetic"),
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
        yield Label("", id="form-error")

    def on_mount(self) -> None:
        if self.app.is_headless:
            for field in self.query(Input):
                field.cursor_blink = False

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
        from engine.model import GfsCycle, GfsPolicy, RetentionPolicy
        from engine.units import parse_size

        keep = self._int("f-keep", "keep", 2)
        cycles: dict[str, GfsCycle | None] = {}
        for name in ("weekly", "monthly", "yearly"):
            count = self._int(f"f-{name}", name, 0, 1000)
            cycles[name] = GfsCycle(count, self._choice(f"f-{name}-at")) if count else None
        gfs = GfsPolicy(method=self._choice("f-method"), **cycles) if any(
            cycles.values()) else None
        deleted = getattr(self._policy, "deleted_items_days", 30)
        policy = RetentionPolicy(keep=keep, unit=self._choice("f-unit"), gfs=gfs,
                                 deleted_items_days=deleted)
        sizing = None
        if self._text("f-used"):  # a sizing model instead of the real chains
            try:
                used = parse_size(self._text("f-used"))
            except ValueError as exc:
                raise FormError(f"used: {exc}") from None
            sizing = Sizing(used, self._float("f-change", "change %"),
                            self._float("f-reduction", "reduction %"))
        return FormValues(policy, sizing, self._int("f-days", "days", 1, 3660))

    def show_error(self, text: str) -> None:
        self.query_one("#form-error", Label).update(text)
