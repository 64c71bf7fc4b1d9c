"""The resume journal of a backup file being written (`<file>.part.journal`).

A copy killed mid-point resumes from the blocks its journal proves durable: the
writer (`ContainerWriter.enable_journal`) fsyncs the data, then appends one record
per entry that refers to it, so a record never names bytes not on disk. The first
line is JSON (format and disk names); then fixed-size records: disk number, the
index entry, and the xxh3-64 of the stored bytes (which checks sealed payloads too,
without their key). On resume every journaled payload is read back and checked
(`verify`) before it is trusted: one mismatch rejects the whole partial file.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import xxhash
import zstandard

from engine.repository.fileformat import (
    DATA_START,
    FLAG_RAW,
    FLAG_SEALED,
    FLAG_ZERO,
    FLAG_ZSTD,
    ContainerError,
    Entry,
    sealed_base,
)

RECORD = struct.Struct("<HQQIIB16sQ")
FORMAT = 2


def header(disks: list[str]) -> bytes:
    """The journal's first line."""
    return json.dumps({"journal": FORMAT, "disks": disks}).encode() + b"\n"


def record(disk_no: int, block: int, e: Entry) -> bytes:
    """One entry's record, with the checksum of its stored bytes."""
    return RECORD.pack(disk_no, block, e.offset, e.stored, e.raw, e.flags, e.digest, e.check or 0)


@dataclass
class Journal:
    """What a journal file says: its disks, entries, their checksums, and its whole
    length (a torn last record excluded)."""

    disks: list[str]
    entries: list[tuple[str, int, Entry]]
    sums: dict[int, int]  # offset -> xxh3-64 of the stored bytes
    length: int


def read(path: Path) -> Journal:
    """Parse a journal (hostile: any defect is ContainerError, and the caller starts anew)."""
    try:
        first, _, rest = path.read_bytes().partition(b"\n")
        head = json.loads(first)
        if not isinstance(head, dict) or head.get("journal") != FORMAT:
            raise ValueError("not a journal of this format")
        names = [str(n) for n in head["disks"]]
        usable = len(rest) - len(rest) % RECORD.size
        records = list(RECORD.iter_unpack(rest[:usable]))
        entries = [(names[disk_no], block,
                    Entry(off, stored, rawlen, flags, digest,
                          None if flags == FLAG_ZERO else check))
                   for disk_no, block, off, stored, rawlen, flags, digest, check in records]
        sums = {off: check for _, _, off, _, _, flags, _, check in records if flags != FLAG_ZERO}
    except (OSError, ValueError, KeyError, IndexError, TypeError, struct.error) as exc:
        raise ContainerError(f"{path.name}: journal unreadable ({exc})") from None
    return Journal(names, entries, sums, len(first) + 1 + usable)


def verify(tmp: Path, found: Journal, block_size: int) -> None:
    """Read back every journaled payload of a partial file; ContainerError on the first bad one.

    The stored bytes must match the journaled checksum (sealed payloads too, without
    their key); plaintext ones are also decoded and must match their block digest.
    """
    dctx = zstandard.ZstdDecompressor()
    seen: set[int] = set()
    try:
        f = open(tmp, "rb")
    except OSError as exc:
        raise ContainerError(f"{tmp.name}: cannot open: {exc.strerror}") from None
    with f:
        for disk, block, e in found.entries:
            if e.flags == FLAG_ZERO or e.offset in seen:
                continue
            seen.add(e.offset)
            base = sealed_base(e.flags)
            bad = e.offset < DATA_START or e.raw > block_size or base not in (FLAG_RAW, FLAG_ZSTD)
            if not bad:
                payload = os.pread(f.fileno(), e.stored, e.offset)
                bad = len(payload) != e.stored or \
                    xxhash.xxh3_64_intdigest(payload) != found.sums.get(e.offset)
                if not bad and not e.flags & FLAG_SEALED:
                    try:
                        data = payload if base == FLAG_RAW else dctx.decompress(
                            payload, max_output_size=e.raw)
                        bad = len(data) != e.raw or xxhash.xxh3_128_digest(data) != e.digest
                    except zstandard.ZstdError:
                        bad = True
            if bad:
                raise ContainerError(f"{tmp.name}: block {block} of disk {disk} does not "
                                     f"match its journal entry; the partial file is not used")
