"""The on-disk format of a backup file: header slots, index, entries, and their checks.

Version 2 (written since the integrity work; version 1 stays readable):

* every header slot is stored twice inside its 4 KiB slot (at +0 and +2048),
  each copy sealed by its own xxh3-64, so one flipped byte (or one lost 512-byte
  sector) in the live slot loses nothing;
* every index is stored twice (one after the other) and the slot names both
  copies; a reader falls back to the second when the first fails its checksum;
* every index entry carries the xxh3-64 of the *stored* bytes, so any mover
  (merge, synthesis, compact, WAN cache, repair) verifies a payload without
  decompressing it and without the key of a sealed (encrypted) one.

Version 1 entries have no stored-bytes checksum: a plaintext payload is verified
by decoding it and comparing its block digest; a sealed one only by its length
(its keyed digest needs the password: `ferry check --deep`).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, BinaryIO

import xxhash
import zstandard

from engine.errors import FerryError
from engine.model import Kind

MAGIC = b"FERRYBK1"
VERSION = 2
READABLE_VERSIONS = (1, 2)
SLOT_SIZE = 4096
MIRROR = 2048  # offset of a slot's second copy inside its 4 KiB slot (version 2)
DATA_START = 2 * SLOT_SIZE
# magic, version, kind, block_size, generation, index offset, index length, index digest, state
_SLOT1 = struct.Struct("<8sHB x I Q Q Q Q 64s")
# version 2: ... and the offset of the index's second copy
_SLOT2 = struct.Struct("<8sHB x I Q Q Q Q 64s Q")
_ENTRY1 = struct.Struct("<QQIIB16s")  # block, offset, stored length, raw length, flags, digest
_ENTRY2 = struct.Struct("<QQIIB16sQ")  # ... and the xxh3-64 of the stored bytes
MAX_INDEX = 1 << 30  # an index length beyond this is damage, not data

FLAG_ZSTD = 0  # payload is a zstd frame
FLAG_RAW = 1  # payload is the raw block
FLAG_ZERO = 2  # an all-zero block: nothing stored
FLAG_SEALED = 0x10  # with ZSTD or RAW: the payload is sealed (engine/keys.py), see sealed_base
SEAL_OVERHEAD = 12 + 16  # nonce + GCM tag (engine/keys.OVERHEAD)

KIND_CODES = {Kind.FULL: 1, Kind.INCREMENTAL: 2, Kind.ROLLBACK: 3}
KIND_OF_CODE = {code: kind for kind, code in KIND_CODES.items()}


class ContainerError(FerryError):
    """A backup file that cannot be read as one (corrupt header or index, wrong state)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """Where one block of one disk is stored in this file.

    `check` is the xxh3-64 of the stored bytes (None: a version-1 entry, or zero)."""

    offset: int
    stored: int
    raw: int
    flags: int
    digest: bytes
    check: int | None = None


@dataclass
class DiskIndex:
    """The blocks one file holds for one disk, and the disk's size at that state."""

    name: str
    size: int
    blocks: dict[int, Entry]


@dataclass
class Slot:
    """One header slot: which index describes which state."""

    generation: int
    offset: int
    length: int
    digest: int
    state: str
    kind: int
    block_size: int
    version: int = VERSION
    offset2: int = 0  # the index's second copy (version 2; 0 = none)


def sealed_base(flags: int) -> int:
    """The compression flag of a (possibly sealed) entry."""
    return flags & ~FLAG_SEALED


def stored_check(payload: bytes | memoryview) -> int:
    return xxhash.xxh3_64_intdigest(payload)


def stored_problem(e: Entry, payload: bytes, dctx: zstandard.ZstdDecompressor | None = None
                   ) -> str:
    """What is wrong with a stored payload read back for `e` ("" = it is what was written).

    This is the check every copy of a payload passes before it enters another file.
    """
    if e.flags == FLAG_ZERO:
        return ""
    if len(payload) != e.stored:
        return "stored payload truncated"
    if e.check is not None:
        return "" if stored_check(payload) == e.check else "digest mismatch"
    if e.flags & FLAG_SEALED:  # version 1, encrypted: only its key can tell
        return "" if len(payload) >= SEAL_OVERHEAD else "stored payload truncated"
    base = sealed_base(e.flags)
    try:
        if base == FLAG_RAW:
            data = payload
        elif base == FLAG_ZSTD:
            data = (dctx or zstandard.ZstdDecompressor()).decompress(payload,
                                                                    max_output_size=e.raw)
        else:
            return "unknown block flags"
    except zstandard.ZstdError:
        return "cannot decompress"
    if len(data) != e.raw:
        return "wrong length"
    return "" if xxhash.xxh3_128_digest(data) == e.digest else "digest mismatch"


def pack_index(state: str, disks: Iterable[DiskIndex], info: dict[str, Any] | None = None) -> bytes:
    """A version-2 index; `info` (the point's record) lets `ferry check --rebuild`
    rebuild the machine's metadata from its backup files."""
    disks = list(disks)
    head_obj: dict[str, Any] = {"state": state, "disks": [
        {"name": d.name, "size": d.size, "count": len(d.blocks)} for d in disks]}
    if info:
        head_obj["point"] = info
    head = json.dumps(head_obj).encode()
    parts = [struct.pack("<I", len(head)), head]
    for d in disks:
        for block in sorted(d.blocks):
            e = d.blocks[block]
            parts.append(_ENTRY2.pack(block, e.offset, e.stored, e.raw, e.flags, e.digest,
                                      e.check or 0))
    return zstandard.ZstdCompressor(level=3).compress(b"".join(parts))


def unpack_index(blob: bytes, version: int) -> tuple[str, list[DiskIndex], dict[str, Any]]:
    """(state, disks, point record or {}) of an index of either version."""
    raw = zstandard.ZstdDecompressor().decompress(blob, max_output_size=MAX_INDEX * 4)
    (hlen,) = struct.unpack_from("<I", raw, 0)
    head = json.loads(raw[4:4 + hlen])
    pos = 4 + hlen
    disks = []
    fmt = _ENTRY2 if version >= 2 else _ENTRY1
    for d in head["disks"]:
        blocks: dict[int, Entry] = {}
        end = pos + int(d["count"]) * fmt.size
        if end > len(raw):
            raise ValueError("index shorter than its entry count")
        for rec in fmt.iter_unpack(raw[pos:end]):
            block, off, stored, rawlen, flags, digest = rec[:6]
            # 0 = unknown: an entry carried over from a version-1 state (2^-64 for a real 0)
            check = rec[6] if version >= 2 and flags != FLAG_ZERO and rec[6] else None
            blocks[block] = Entry(off, stored, rawlen, flags, digest, check)
        pos = end
        disks.append(DiskIndex(str(d["name"]), int(d["size"]), blocks))
    info = head.get("point")
    return str(head["state"]), disks, info if isinstance(info, dict) else {}


def slot_bytes(kind: int, block_size: int, gen: int, off: int, length: int, dig: int,
               state: str, off2: int) -> bytes:
    """One (version-2) copy of a header slot, sealed by its own checksum."""
    body = _SLOT2.pack(MAGIC, VERSION, kind, block_size, gen, off, length, dig,
                       state.encode()[:64], off2)
    return body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body))


def _parse_slot(buf: bytes) -> Slot | None:
    if len(buf) < 10 or buf[:8] != MAGIC:
        return None
    (ver,) = struct.unpack_from("<H", buf, 8)
    fmt = {1: _SLOT1, 2: _SLOT2}.get(ver)
    if fmt is None or len(buf) < fmt.size + 8:
        return None
    body, (check,) = buf[:fmt.size], struct.unpack_from("<Q", buf, fmt.size)
    if xxhash.xxh3_64_intdigest(body) != check:
        return None
    fields = fmt.unpack(body)
    _, ver, kind, bs, gen, off, length, dig, state = fields[:9]
    if gen <= 0:
        return None
    try:
        name = state.rstrip(b"\0").decode()
    except UnicodeDecodeError:
        return None
    return Slot(gen, off, length, dig, name, kind, bs, ver, fields[9] if ver >= 2 else 0)


def read_slots(f: BinaryIO) -> list[Slot | None]:
    """The two header slots (None = unusable), each from its first sound copy."""
    out: list[Slot | None] = []
    for i in range(2):
        slot = None
        for at in (i * SLOT_SIZE, i * SLOT_SIZE + MIRROR):
            f.seek(at)
            slot = _parse_slot(f.read(_SLOT2.size + 8))
            if slot is not None and (at == i * SLOT_SIZE or slot.version >= 2):
                break
            slot = None
        out.append(slot)
    return out


def read_index(f: BinaryIO, slot: Slot, name: str) -> tuple[str, list[DiskIndex], dict[str, Any]]:
    """The index a slot names, from its first copy that passes its checksum."""
    problem = "index is damaged"
    for off in (slot.offset, slot.offset2) if slot.offset2 else (slot.offset,):
        if slot.length > MAX_INDEX:
            break
        f.seek(off)
        blob = f.read(slot.length)
        if len(blob) != slot.length or xxhash.xxh3_64_intdigest(blob) != slot.digest:
            continue
        try:
            return unpack_index(blob, slot.version)
        except Exception as exc:  # noqa: BLE001 - zstd/json/struct errors: a damaged index
            problem = f"index unreadable ({exc})"
    raise ContainerError(f"{name}: {problem}")
