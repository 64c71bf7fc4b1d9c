"""Engine events to JSON lines and back, checked field by field.

What arrives over a socket or from a journal is hostile: only the event classes
of `engine.events` are known, every field must have its declared type, strings
and lists are bounded, and anything else is refused with `CodecError`.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from engine import events as ev
from engine.model import Stats

MAX_LINE = 1 << 20  # one JSON line (a snapshot of thousands of machines fits)
MAX_TEXT = 8192
MAX_ITEMS = 100_000

EVENT_TYPES: dict[str, type[ev.Event]] = {
    cls.__name__: cls for cls in (
        ev.RunStarted, ev.RunFinished, ev.TaskQueued, ev.TaskStarted, ev.TaskOnHold,
        ev.TaskResumed, ev.TaskProgress, ev.TaskFinished, ev.RetentionAction,
        ev.OperatorAction, ev.LogLine)}
STATS_FIELDS = tuple(f.name for f in dataclasses.fields(Stats))


class CodecError(ValueError):
    """A line that is not a valid event or message."""


def to_dict(event: ev.Event) -> dict[str, Any]:
    out: dict[str, Any] = {"type": type(event).__name__}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        out[f.name] = dataclasses.asdict(value) if isinstance(value, Stats) else value
    return out


def encode(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def decode_line(line: bytes) -> dict[str, Any]:
    if len(line) > MAX_LINE:
        raise CodecError("line too long")
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise CodecError("not JSON") from None
    if not isinstance(obj, dict):
        raise CodecError("not a JSON object")
    return obj


def text(value: object, name: str = "value") -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise CodecError(f"{name}: not a string of at most {MAX_TEXT} characters")
    return value


def count(value: object, name: str = "value") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 63:
        raise CodecError(f"{name}: not a count")
    return value


def number(value: object, name: str = "value") -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise CodecError(f"{name}: not a number")
    return float(value)


def _stats(value: object) -> Stats:
    if not isinstance(value, dict):
        raise CodecError("stats: not an object")
    return Stats(**{k: count(value.get(k, 0), f"stats.{k}") for k in STATS_FIELDS})


def _field(kind: str, value: object, name: str) -> object:
    if kind == "str":
        return text(value, name)
    if kind == "int":
        return count(value, name)
    if kind == "float":
        return number(value, name)
    if kind == "bool":
        if not isinstance(value, bool):
            raise CodecError(f"{name}: not true/false")
        return value
    if kind == "Stats":
        return _stats(value)
    if kind == "list[str]":
        if not isinstance(value, list) or len(value) > MAX_ITEMS:
            raise CodecError(f"{name}: not a list")
        return [text(v, name) for v in value]
    if kind == "dict[str, float]":
        if not isinstance(value, dict) or len(value) > 64:
            raise CodecError(f"{name}: not a small object")
        return {text(k, name): number(v, name) for k, v in value.items()}
    raise CodecError(f"{name}: unsupported field type {kind}")


def from_dict(obj: dict[str, Any]) -> ev.Event:
    cls = EVENT_TYPES.get(str(obj.get("type")))
    if cls is None:
        raise CodecError(f"unknown event type {str(obj.get('type'))[:40]!r}")
    values: dict[str, object] = {}
    for f in dataclasses.fields(cls):
        if f.name not in obj:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise CodecError(f"{cls.__name__}: {f.name} missing")
            continue
        values[f.name] = _field(str(f.type), obj[f.name], f"{cls.__name__}.{f.name}")
    return cls(**values)  # type: ignore[arg-type]
