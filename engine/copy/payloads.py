"""The JSON bodies of the mover protocol's answers, typed and checked on arrival.

A source trusts nothing a target sends: a mover that speaks the protocol may still
lie or be broken. Each answer the source reads (HELLO, DONE, RETAIN, SWEEP,
MAINTAIN, CHECK, REPAIR) is parsed here into a frozen dataclass, field by field and
bounded, or the stream fails with `BadAnswer` naming the frame and the field. The
target sends HELLO, DONE and CHECK as these classes' `to_json()`; its retention
answers are the action records `engine.copy.retain` returns, the shape `ActionDone`
reads. What a target reads is checked by `engine.copy.frames`; the HELLO a source
sends is `Hello`.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.copy.transport import PROTOCOL_VERSION, StreamError

MAX_ACTIONS = 100_000  # retention actions in one answer (a chain of 10 000 points merges)
MAX_RECORDS = 10_000  # damaged / corrupt block records (engine.repository.damage)
MAX_TEXT = 4096  # a detail, message or reason
_ID = re.compile(r"[0-9a-f]{16}")


class BadAnswer(StreamError):
    """A target's answer breaks the protocol: the task fails, nothing is recorded from it."""


def _text(obj: dict[str, Any], key: str, frame: str, default: str | None = None,
          limit: int = MAX_TEXT) -> str:
    value = obj.get(key, default)
    if not isinstance(value, str) or len(value) > limit:
        raise BadAnswer(f"target mover: {frame} answer: {key} is not a text of up to "
                        f"{limit} characters")
    return value


def _count(obj: dict[str, Any], key: str, frame: str, default: int | None = None) -> int:
    value = obj.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 62:
        raise BadAnswer(f"target mover: {frame} answer: {key} is not a count")
    return value


def _seconds(obj: dict[str, Any], key: str, frame: str) -> float:
    value = obj.get(key, 0.0)
    if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 1e9:
        raise BadAnswer(f"target mover: {frame} answer: {key} is not a duration")
    return float(value)


def _list(obj: dict[str, Any], key: str, frame: str, limit: int) -> list[Any]:
    value = obj.get(key, [])
    if not isinstance(value, list) or len(value) > limit:
        raise BadAnswer(f"target mover: {frame} answer: {key} is not a list of up to {limit}")
    return value


def _object(value: object, what: str, frame: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadAnswer(f"target mover: {frame} answer: {what} is not an object")
    return value


@dataclass(frozen=True)
class Hello:
    """HELLO: a machine's stream (`machine`), or a remote run's job stream (`session`)."""

    job: str
    machine: str = ""
    token: str | None = None  # a tls:// mover's job token (engine.copy.links.token_of)
    session: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"version": PROTOCOL_VERSION, "job": self.job}
        if self.session:
            out["session"] = True
        else:
            out["machine"] = self.machine
        if self.token is not None:
            out["token"] = self.token
        return out


@dataclass(frozen=True)
class HelloReply:
    """HELLO back: the protocol the target speaks; an append-only credential cannot delete."""

    version: int
    append_only: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> HelloReply:
        version = obj.get("version")
        if version != PROTOCOL_VERSION:
            raise BadAnswer(f"target mover speaks protocol {str(version)[:20]}, "
                            f"not {PROTOCOL_VERSION}")
        return cls(PROTOCOL_VERSION, obj.get("append_only") is True)


@dataclass(frozen=True)
class Done:
    """DONE: the point the target committed, what it wrote, and its busy time."""

    point: str
    file: str
    size: int
    written: int
    local: int = 0  # blocks the target took from its own files (WAN cache)
    resumed: int = 0  # blocks kept from a killed run's partial point
    busy: float = 0.0  # seconds the target spent writing

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Done:
        point = _text(obj, "point", "DONE")
        if not _ID.fullmatch(point):
            raise BadAnswer("target mover: DONE answer: point is not a point id")
        return cls(point, _text(obj, "file", "DONE", limit=255), _count(obj, "size", "DONE"),
                   _count(obj, "written", "DONE"), _count(obj, "local", "DONE", 0),
                   _count(obj, "resumed", "DONE", 0), _seconds(obj, "busy", "DONE"))


@dataclass(frozen=True)
class ActionDone:
    """One retention action a target took (or refused), as the history records it."""

    action: str
    point: str = ""
    detail: str = ""
    machine: str = ""  # set in a job stream's MAINTAIN answer (one job, many machines)

    def to_json(self) -> dict[str, str]:
        """As the history records it (no empty `machine`: the caller adds its own)."""
        out = asdict(self)
        if not self.machine:
            del out["machine"]
        return out

    @classmethod
    def parse(cls, value: object, frame: str) -> ActionDone:
        obj = _object(value, "an action", frame)
        return cls(_text(obj, "action", frame, limit=64), _text(obj, "point", frame, ""),
                   _text(obj, "detail", frame, ""), _text(obj, "machine", frame, "", limit=255))


def _damage(value: object, frame: str) -> dict[str, Any]:
    """A damaged-block record (engine.repository.damage.record): checked, then as sent."""
    obj = _object(value, "a damaged block", frame)
    for key in ("file", "point", "disk", "digest", "reason"):
        _text(obj, key, frame, limit=255 if key != "reason" else MAX_TEXT)
    _count(obj, "block", frame)
    _count(obj, "raw", frame)
    try:
        bytes.fromhex(obj["digest"])
    except ValueError:
        raise BadAnswer(f"target mover: {frame} answer: a digest is not hex") from None
    return {k: obj[k] for k in ("file", "point", "disk", "block", "digest", "raw", "reason")}


@dataclass(frozen=True)
class RetainAnswer:
    """RETAIN and SWEEP back: the actions taken, or why the target refused (its floor,
    an append-only credential), or the damaged blocks a transform met (repair first)."""

    actions: list[ActionDone] = field(default_factory=list)
    refused: str = ""
    damaged: list[dict[str, Any]] = field(default_factory=list)
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"actions": [a.to_json() for a in self.actions]}
        if self.refused:
            out["refused"] = self.refused
        if self.damaged:
            out["damaged"], out["message"] = self.damaged, self.message
        return out

    @classmethod
    def parse(cls, obj: dict[str, Any], frame: str = "RETAIN") -> RetainAnswer:
        return cls([ActionDone.parse(a, frame) for a in _list(obj, "actions", frame, MAX_ACTIONS)],
                   _text(obj, "refused", frame, ""),
                   [_damage(d, frame) for d in _list(obj, "damaged", frame, MAX_RECORDS)],
                   _text(obj, "message", frame, ""))


@dataclass(frozen=True)
class Corrupt:
    """A block the target's health check found corrupt."""

    disk: str
    block: int
    file: str
    reason: str


@dataclass(frozen=True)
class CheckAnswer:
    """CHECK back: the corrupt blocks of the latest point, and damaged blocks recorded."""

    corrupt: list[Corrupt] = field(default_factory=list)
    damaged: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # what the check could not read

    def to_json(self) -> dict[str, Any]:
        return {"corrupt": [[c.disk, c.block, c.file, c.reason] for c in self.corrupt],
                "damaged": self.damaged, "errors": self.errors}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> CheckAnswer:
        corrupt = []
        for row in _list(obj, "corrupt", "CHECK", MAX_RECORDS):
            if not isinstance(row, list) or len(row) != 4:
                raise BadAnswer("target mover: CHECK answer: a corrupt block is not "
                                "[disk, block, file, reason]")
            cells = dict(zip(("disk", "block", "file", "reason"), row, strict=True))
            corrupt.append(Corrupt(_text(cells, "disk", "CHECK", limit=255),
                                   _count(cells, "block", "CHECK"),
                                   _text(cells, "file", "CHECK", limit=255),
                                   _text(cells, "reason", "CHECK")))
        damaged = [_damage(d, "CHECK") for d in _list(obj, "damaged", "CHECK", MAX_RECORDS)]
        errors = _list(obj, "errors", "CHECK", MAX_RECORDS)
        if not all(isinstance(e, str) and len(e) <= MAX_TEXT for e in errors):
            raise BadAnswer("target mover: CHECK answer: errors are not texts")
        return cls(corrupt, damaged, errors)


@dataclass(frozen=True)
class RepairAnswer:
    """REPAIR back: how many damaged blocks the target rewrote, and those still missing."""

    fixed: int = 0
    left: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"fixed": self.fixed, "left": self.left}

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> RepairAnswer:
        return cls(_count(obj, "fixed", "REPAIR", 0),
                   [_damage(d, "REPAIR") for d in _list(obj, "left", "REPAIR", MAX_RECORDS)])
