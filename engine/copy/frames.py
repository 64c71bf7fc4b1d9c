"""Validation of what arrives over the mover stream: every frame is hostile.

One place checks names, ids, sizes and block payloads before the target
mover acts on them, so a peer that speaks the protocol but lies (a forged
point, a traversal name, a block that is not what its digest says, a frame
header announcing 4 GB) is refused with one line and nothing is stored.
The rules are the repository's own (`safe_name`, the backup's block sizes).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import zstandard

from engine.blockio import LEVELS, decompressor, digest
from engine.keys import OVERHEAD, valid_key_id
from engine.model import Kind
from engine.repository.container import FLAG_RAW, FLAG_SEALED, FLAG_ZERO, FLAG_ZSTD
from engine.repository.repository import BadName, safe_name

MIN_BLOCK, MAX_BLOCK = 256 << 10, 8 << 20  # as `ferry backup --block-size` allows
BLOCK_SIZES = frozenset(1 << n for n in range(18, 24))
# the largest frame a mover accepts: a whole stored block (it may not compress; a
# sealed one adds its nonce and tag) plus the BLOCK header; nothing larger is read
MAX_FRAME = MAX_BLOCK + OVERHEAD + 4096
MAX_JSON = 1 << 20  # control frames (BEGIN, RETAIN, ...) are small JSON objects
MAX_DISKS = 256
MAX_DISK_SIZE = 1 << 50  # 1 PiB
MAX_PROVE = 16  # blocks a source may ask the target to prove it holds, per point
_ID = re.compile(r"[0-9a-f]{16}")
_FLAGS = frozenset({FLAG_ZSTD, FLAG_RAW, FLAG_ZERO, FLAG_ZSTD | FLAG_SEALED,
                    FLAG_RAW | FLAG_SEALED})
# what a source may record about a machine (`facts`): its source job and what the
# inventory says; everything else in `facts` is the target's own bookkeeping
FACT_KEYS = frozenset({"source_job", "vm_id", "vm_name", "power_state", "host", "folder",
                       "moref", "inventory_kind", "inventory_host", "inventory_missing", "disks"})


class Refused(Exception):
    """A frame breaks the rules: the one-line reason goes back to the peer."""


def name(value: object, what: str) -> str:
    """A job, machine or disk name: the repository's rules, and no leading dot."""
    if not isinstance(value, str):
        raise Refused(f"{what} is not a string")
    try:
        safe_name(value, what)
    except BadName as exc:
        raise Refused(str(exc)) from None
    if value.startswith("."):
        raise Refused(f"{what} {value!r} starts with a dot")
    return value


def point_id(value: object, what: str = "point id") -> str:
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise Refused(f"{what} is not 16 hex digits")
    return value


def optional_id(value: object, what: str) -> str | None:
    return None if value is None else point_id(value, what)


def block_size(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value not in BLOCK_SIZES:
        raise Refused("block size is not a power of two from 256KiB to 8MiB")
    return value


def json_payload(payload: bytes | bytearray | memoryview, what: str) -> dict[str, Any]:
    if len(payload) > MAX_JSON:
        raise Refused(f"{what} frame is too large")
    try:
        obj = json.loads(bytes(payload) if isinstance(payload, memoryview) else payload)
    except (ValueError, UnicodeDecodeError):
        raise Refused(f"{what} frame is not JSON") from None
    if not isinstance(obj, dict):
        raise Refused(f"{what} frame is not a JSON object")
    return obj


def hello(obj: dict[str, Any]) -> tuple[str, str]:
    return name(obj.get("job"), "job name"), name(obj.get("machine"), "machine name")


def begin(obj: dict[str, Any]) -> dict[str, Any]:
    """A BEGIN frame, checked field by field (raises Refused)."""
    try:
        Kind(str(obj.get("kind")))  # None and non-strings are no kind either
    except ValueError:
        raise Refused("BEGIN: unknown point kind") from None
    point_id(obj.get("point"))
    point_id(obj.get("source_point"), "source point id")
    optional_id(obj.get("base"), "base point id")
    optional_id(obj.get("replaces"), "replaced point id")
    try:
        datetime.fromisoformat(str(obj.get("time")))
    except ValueError:
        raise Refused("BEGIN: time is not ISO 8601") from None
    block_size(obj.get("block_size"))
    comp = obj.get("compression", "auto")
    if comp != "auto" and comp not in LEVELS:
        raise Refused("BEGIN: unknown compression level")
    disks = obj.get("disks")
    if not isinstance(disks, list) or not 0 < len(disks) <= MAX_DISKS:
        raise Refused(f"BEGIN: disks must be a list of 1 to {MAX_DISKS}")
    seen = set()
    for d in disks:
        if not isinstance(d, dict):
            raise Refused("BEGIN: a disk is not an object")
        n = name(d.get("name"), "disk name")
        size = d.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_DISK_SIZE:
            raise Refused(f"BEGIN: disk {n!r} has no valid size")
        if n in seen:
            raise Refused(f"BEGIN: disk {n!r} appears twice")
        seen.add(n)
    rep = obj.get("repaired", [])
    if not isinstance(rep, list) or not all(
            isinstance(x, list) and len(x) == 2 and isinstance(x[0], str)
            and isinstance(x[1], int) for x in rep):
        raise Refused("BEGIN: repaired must be a list of [disk, block]")
    if obj.get("key") and not valid_key_id(obj["key"]):
        raise Refused("BEGIN: bad chain key id")
    facts = obj.get("facts", {})
    if not isinstance(facts, dict):
        raise Refused("BEGIN: facts must be an object")
    bad = sorted(set(facts) - FACT_KEYS)
    if bad:
        raise Refused(f"BEGIN: fact {bad[0]!r} is not one a source may set")
    return obj


class BlockRules:
    """What the blocks of one point may be: disk index, block number, raw length."""

    def __init__(self, sizes: list[int], bs: int):
        self.sizes, self.bs = sizes, bs

    def raw_len(self, disk: int, block: int) -> int:
        if not 0 <= disk < len(self.sizes):
            raise Refused(f"disk index {disk} is not one of the point's disks")
        size = self.sizes[disk]
        if not 0 <= block < -(-size // self.bs):
            raise Refused(f"block {block} is past the end of disk {disk}")
        return min(self.bs, size - block * self.bs)

    def entry(self, disk: int, block: int, raw: int, flags: int) -> None:
        if flags not in _FLAGS:
            raise Refused(f"block {block}: unknown flags {flags:#x}")
        if raw != self.raw_len(disk, block):
            raise Refused(f"block {block} of disk {disk}: raw length {raw} does not fit "
                          f"the disk")


def verify_block(payload: bytes | memoryview, raw: int, flags: int, dg: bytes) -> None:
    """A plaintext block must be what its digest says before it is stored (a sealed
    one is checked by whoever holds its chain key: the target cannot open it, only
    bound its size)."""
    if flags & FLAG_SEALED:
        if not OVERHEAD <= len(payload) <= raw + OVERHEAD + 1024:
            raise Refused("a sealed block has an impossible length")
        return
    if flags == FLAG_ZERO:
        if len(payload):
            raise Refused("a zero block carries data")
        return
    if flags == FLAG_RAW:
        data = payload
    else:
        try:
            data = decompressor().decompress(payload, max_output_size=raw)
        except zstandard.ZstdError:
            raise Refused("a block does not decompress") from None
    if len(data) != raw or digest(data) != dg:
        raise Refused("a block does not match its digest")


_ABS = re.compile(r"(?<![\w.])/[^\s'\"():,]+")


def scrub(message: str, root: Path) -> str:
    """An error line for a remote peer: no server path in it."""
    for p in {str(root), str(Path(root).resolve())}:
        message = message.replace(p, "<repository>")
    return _ABS.sub("<path>", message)
