"""How a job-file setting is declared, checked and written: `setting`, `subtable`, `check`, `dump`.

Each key of a job file is declared once, as a field of a frozen dataclass in
`engine.jobs.schema`, with the function that turns the TOML value into the normalized
value (`parse`) and the one that turns it back (`dump`). `check` validates a TOML table
against such a class and `dump` writes an instance back as TOML data, so the reader,
the writer and the defaults cannot drift apart.

Why not pydantic: importing it and building the schema cost more than a whole run with
nothing to copy should (docs/ARCHITECTURE.md "Job files"); a job file has a dozen
flat tables, and these ~150 lines check them strictly (no "7" -> 7 coercion, unknown keys
refused) with the messages Ferry always gave.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any, ClassVar, TypeVar

Report = Callable[[tuple[str, ...], str], None]  # (dotted key, problem) -> records an error
Parse = Callable[[Any], Any]
T = TypeVar("T", bound="Table")

_META = "ferry.setting"


@dataclasses.dataclass(frozen=True)
class Setting:
    """One key: how its TOML value is read and written back.

    `parse` raises ValueError with the text shown after "key: ". `quiet`: written only
    when it differs from the default (encryption = false is not worth a line).
    `table`: a sub-table class; `into`/`back` map it to and from the engine type the
    spec holds (e.g. `[retention]` <-> `RetentionPolicy`).
    """

    parse: Parse | None = None
    dump: Callable[[Any], Any] | None = None
    missing: str = "required key is missing"
    quiet: bool = False
    table: type[Table] | None = None
    into: Callable[[Any], Any] | None = None
    back: Callable[[Any], Any] | None = None


def setting(default: Any = dataclasses.MISSING, *, parse: Parse, dump: Callable[[Any], Any] | None = None,
            missing: str = "required key is missing", quiet: bool = False) -> Any:
    """A dataclass field that is a job-file key (no default: the key is required)."""
    meta = {_META: Setting(parse=parse, dump=dump, missing=missing, quiet=quiet)}
    if isinstance(default, list):
        items = list(default)
        return dataclasses.field(default_factory=lambda: list(items), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def subtable(table: type[Table], default: Any = dataclasses.MISSING, *,
             into: Callable[[Any], Any] | None = None, back: Callable[[Any], Any] | None = None,
             missing: str = "required key is missing") -> Any:
    """A dataclass field holding a `[table]` (default: a factory, None, or required)."""
    meta = {_META: Setting(table=table, into=into, back=back, missing=missing)}
    if callable(default):
        return dataclasses.field(default_factory=default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


class Table:
    """Base of the table classes (frozen dataclasses whose fields are `setting`s).

    `REFUSED` maps keys that are never accepted to the reason (a `password`);
    `problem()` is the check across keys of one table, reported on the table itself.
    """

    REFUSED: ClassVar[Mapping[str, str]] = {}

    def problem(self) -> str | None:
        return None


@cache
def settings(model: type) -> dict[str, Setting]:
    """The job-file keys of a table class, in declaration order (the order of a file)."""
    return {f.name: f.metadata[_META] for f in dataclasses.fields(model) if _META in f.metadata}


def default_of(model: type, name: str) -> Any:
    f = next(f for f in dataclasses.fields(model) if f.name == name)
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def known_keys(model: type, path: tuple[str, ...]) -> list[str]:
    """The keys the table at `path` below `model` accepts, for "did you mean" hints."""
    for part in path:
        s = settings(model).get(part)
        if s is None or s.table is None:
            return []
        model = s.table
    return list(settings(model))


def check(model: type, data: Any, prefix: tuple[str, ...], report: Report
          ) -> tuple[dict[str, Any], bool]:
    """The values of `data` (a TOML table) for the fields of `model`, and whether all were
    good (problems are reported). Absent optional keys are left out (the dataclass default
    applies); sub-tables are checked on their own, so one bad table does not hide another's
    errors, and the good ones are in the values even when another is bad."""
    if not isinstance(data, dict):
        report(prefix, f"expected a table, got {describe(data)}")
        return {}, False
    keys = settings(model)
    refused: Mapping[str, str] = getattr(model, "REFUSED", {})
    ok = True
    for key in data:
        if key in refused:
            report((*prefix, key), refused[key])
            ok = False
        elif key not in keys:
            from difflib import get_close_matches  # only for a typo's hint

            hint = get_close_matches(key, list(keys), n=1)
            report((*prefix, key), "unknown key" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
            ok = False
    values: dict[str, Any] = {}
    for name, s in keys.items():
        where = (*prefix, name)
        if name not in data:
            if default_of(model, name) is dataclasses.MISSING:
                report(where, s.missing)
                ok = False
            continue
        if s.table is not None:
            table = build(s.table, data[name], where, report)
            if table is None:
                ok = False
            else:
                values[name] = s.into(table) if s.into is not None else table
            continue
        assert s.parse is not None
        try:
            values[name] = s.parse(data[name])
        except ValueError as exc:
            report(where, str(exc))
            ok = False
    return values, ok


def build(model: type[T], data: Any, prefix: tuple[str, ...], report: Report) -> T | None:
    """`model` from the TOML table `data`, or None after reporting its problems."""
    values, ok = check(model, data, prefix, report)
    if not ok:
        return None
    table = model(**values)
    problem = table.problem()
    if problem is not None:
        report(prefix, problem)
        return None
    return table


def dump(table: Any) -> dict[str, Any]:
    """A table instance as TOML data, in declaration order: None values and quiet
    settings at their default left out, sub-tables as dicts."""
    out: dict[str, Any] = {}
    model: type = type(table)
    for name, s in settings(model).items():
        value = getattr(table, name)
        if value is None:
            continue
        if s.table is not None:
            sub = dump(s.back(value) if s.back is not None else value)
            if sub:  # an empty [schedule] is left out
                out[name] = sub
            continue
        if s.quiet and value == default_of(model, name):
            continue
        out[name] = s.dump(value) if s.dump is not None else value
    return out


# -------------------------------------------------------------------------------------
# The value types. Each returns the normalized value or raises ValueError.


def describe(value: Any) -> str:
    """A value as the user wrote it in TOML, for "got ..." in messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else f"{value[:40]!r}..."
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, (int, float)):
        return repr(value)
    if hasattr(value, "isoformat"):
        return f"an unquoted date/time {value.isoformat()}"
    return repr(value)


def _expected(what: str, value: Any) -> ValueError:
    return ValueError(f"expected {what}, got {describe(value)}")


def text(*checks: Callable[[str], str]) -> Parse:
    """A string, then each check in turn (each may normalize it)."""
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise _expected("a string", value)
        out: str = value
        for c in checks:
            out = c(out)
        return out
    return parse


def integer(*checks: Callable[[int], int]) -> Parse:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _expected("an integer", value)
        out: int = value
        for c in checks:
            out = c(out)
        return out
    return parse


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _expected("true or false", value)
    return value


def texts(*checks: Callable[[list[str]], list[str]]) -> Parse:
    """A list of strings ("item 2: expected a string, got 3"), then each check."""
    def parse(value: Any) -> list[str]:
        if not isinstance(value, list):
            raise _expected("a list", value)
        for i, item in enumerate(value, 1):
            if not isinstance(item, str):
                raise ValueError(f"item {i}: expected a string, got {describe(item)}")
        out = list(value)
        for c in checks:
            out = c(out)
        return out
    return parse


__all__ = ["Setting", "Table", "build", "check", "describe", "dump", "flag", "integer",
           "known_keys", "setting", "settings", "subtable", "text", "texts"]
