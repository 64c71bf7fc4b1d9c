"""The text side of job files: where a key is, how values are written, atomic writes.

tomllib gives line numbers only for syntax errors, so `scan` walks the TOML text and
records every table header and key with its full dotted path and lines; `line_for`
then points an error at the key, else at the inline table or header holding it.
`render` writes a new job file in the layout of the CONTRACT example (inline GFS cycles,
one-line arrays) with each value formatted by tomli-w; edits of an existing file go
through tomlkit (`engine.jobs.save`), which keeps comments and layout.
"""

from __future__ import annotations

import os
import re
import tomllib
from bisect import bisect_left
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Entry:
    """A key of the job file and the line it is on (for error messages)."""
    path: tuple[str, ...]
    line: int
    end_line: int
    header: bool


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _eol(text: str, i: int) -> int:
    j = text.find("\n", i)
    return len(text) if j < 0 else j + 1


def _end_quoted(text: str, i: int, quote: str, escapes: bool) -> int:
    """Index after the closing quote of a one-line string starting at `i` (inside it)."""
    while i < len(text) and text[i] != "\n":
        if escapes and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    return i


def _end_multiline(text: str, i: int, delim: str, escapes: bool) -> int:
    while i < len(text):
        if escapes and text[i] == "\\":
            i += 2
            continue
        if text.startswith(delim, i):
            i += 3
            while i < len(text) and text[i] == delim[0] and text.startswith(delim, i - 2):
                i += 1  # up to two quotes may end the content: """a"""" is valid
            return i
        i += 1
    return len(text)


def _parse_key(text: str, i: int) -> tuple[list[str] | None, int]:
    keys: list[str] = []
    while True:
        while i < len(text) and text[i] in " \t":
            i += 1
        if i >= len(text):
            return None, i
        if text[i] in "\"'":
            end = _end_quoted(text, i + 1, text[i], text[i] == '"')
            raw = text[i:end]
            try:
                keys.append(next(iter(tomllib.loads(f"{raw} = 0"))))
            except (tomllib.TOMLDecodeError, StopIteration):
                keys.append(raw.strip("\"'"))
            i = end
        else:
            m = _BARE_KEY.match(text, i)
            if not m:
                return None, i
            keys.append(m.group())
            i = m.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == ".":
            i += 1
            continue
        return keys, i


def _skip_value(text: str, i: int) -> int:
    """Index of the newline (or comment) that ends the value starting at `i`."""
    depth = 0
    while i < len(text):
        c = text[i]
        if text.startswith('"""', i) or text.startswith("'''", i):
            i = _end_multiline(text, i + 3, text[i] * 3, c == '"')
            continue
        if c in "\"'":
            i = _end_quoted(text, i + 1, c, c == '"')
            continue
        if c in "[{":
            depth += 1
        elif c in "]}":
            depth = max(0, depth - 1)
        elif c == "#" or (c == "\n" and depth == 0):
            if depth == 0:
                return i
            i = _eol(text, i)
            continue
        i += 1
    return i


def scan(text: str) -> list[Entry]:
    """Every table header and key/value of the text with its full dotted path and lines.

    Lenient: a line it cannot read is skipped (tomllib reports syntax errors anyway).
    """
    newlines = [m.start() for m in re.finditer("\n", text)]

    def line_of(idx: int) -> int:
        return bisect_left(newlines, idx) + 1

    entries: list[Entry] = []
    table: tuple[str, ...] = ()
    i = 0
    while i < len(text):
        c = text[i]
        if c in " \t\r\n\ufeff":
            i += 1
        elif c == "#":
            i = _eol(text, i)
        elif c == "[":
            start = i
            keys, i = _parse_key(text, i + (2 if text.startswith("[[", i) else 1))
            if keys is not None:
                table = tuple(keys)
                entries.append(Entry(table, line_of(start), line_of(start), True))
            i = _eol(text, i)
        else:
            start = i
            keys, i = _parse_key(text, i)
            if keys is None or i >= len(text) or text[i] != "=":
                i = _eol(text, i)
                continue
            end = _skip_value(text, i + 1)
            entries.append(Entry(table + tuple(keys), line_of(start), line_of(max(start, end - 1)), False))
            i = end
    return entries


def line_for(entries: list[Entry], key: tuple[str, ...]) -> int | None:
    """The line of `key`, else of the inline table / header holding it, else of its first child."""
    best: Entry | None = None
    for e in entries:
        if e.path == key:
            return e.line
        if e.path and len(e.path) < len(key) and key[: len(e.path)] == e.path:
            if best is None or len(e.path) > len(best.path):
                best = e
    if best is not None:
        return best.line
    return next((e.line for e in entries if e.path[: len(key)] == key and key), None)


def key_on_line(entries: list[Entry], line: int) -> str:
    hits = [e for e in entries if e.line <= line <= e.end_line]
    return ".".join(hits[-1].path) if hits else ""


def atomic_write(path: Path, text: str) -> None:
    """Temp file in the same folder, fsync, rename over, fsync the folder."""
    import tempfile  # writes only: loading a job never needs it

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def toml_value(value: Any) -> str:
    """One value as TOML (tomli-w does the escaping); lists and tables on one line."""
    if isinstance(value, dict):
        inner = ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items())
        return f"{{ {inner} }}" if inner else "{}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    import tomli_w  # writes only

    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def toml_key(key: str) -> str:
    import tomli_w

    return tomli_w.dumps({key: 0}).rsplit("=", 1)[0].strip()


def render_table(header: str, table: dict[str, Any], inline_depth: int) -> list[str]:
    """`[header]` with its values; dicts deeper than `inline_depth` become inline tables."""
    lines = [f"[{header}]"] if header else []
    subtables = []
    for key, value in table.items():
        if isinstance(value, dict) and inline_depth > 0:
            subtables.append((key, value))
        else:
            lines.append(f"{toml_key(key)} = {toml_value(value)}")
    for key, value in subtables:
        name = f"{header}.{toml_key(key)}" if header else toml_key(key)
        lines += ["", *render_table(name, value, inline_depth - 1)]
    return lines


def render(data: dict[str, Any]) -> str:
    """A whole job file: top-level keys, then one `[table]` per dict; a table's own
    dicts become sub-tables (`[retention.gfs]`) and theirs inline tables."""
    top = {k: v for k, v in data.items() if not isinstance(v, dict)}
    lines = render_table("", top, 0)
    for key, value in data.items():
        if isinstance(value, dict):
            lines += ["", *render_table(toml_key(key), value, 1)]
    return "\n".join(lines).lstrip("\n") + "\n"


def template_text(name: str, source: str, target: str, source_jobs: list[str]) -> str:
    """The commented text of a new job file (see `engine.jobs.save.template`)."""
    v = toml_value
    return f"""\
name = {v(name)}
mode = "periodic"                  # or "immediate": copy each new source point at once

[source]
repository = {v(source)}
jobs = {v(list(source_jobs))}
machines = []                      # empty = every machine of those jobs

[target]
repository = {v(target)}

[schedule]
daily_at = "22:00"                 # or every = "4h"; days = ["mon", "tue", ...]
# window = ["20:00-06:00"]         # copy window; transforms ignore it
# window = {{ mon = ["20:00-06:00"], sat = ["00:00-24:00"] }}   # or per weekday
# rpo = "26h"                      # Warning when the newest copied point is older

[retention]
keep = 7                           # restore points (minimum 2)
unit = "points"                    # or "days"
deleted_items_days = 30
# min_points = 3                   # days unit: at least this many points always stay

# [retention.gfs]                  # long-term; switches the chain to forward incremental
# weekly  = {{ keep_weeks = 4, day = "sunday" }}
# monthly = {{ keep_months = 12, week = "first" }}
# yearly  = {{ keep_years = 3, month = "january" }}
# method  = "synthetic"            # or "active"

[storage]
compression = "auto"               # none|dedupe-friendly|optimal|high|extreme|auto
health_check = "off"               # e.g. "last sunday 05:00"
compact = "off"

[transport]
wan_acceleration = false
parallel_tasks = 4
rate_limit = "0"                   # e.g. "50MiB/s"
retries = 3
retry_wait = "10m"
"""
