"""One backup file (.fbk full, .fib incremental, .frb rollback).

Layout: two 4 KiB header slots, then append-only block data, then indexes.
Each slot names one index (offset, length, digest) and the restore point state
that index describes (`state`). A reader asks for the state the machine's
metadata names, so an in-place rewrite (a merge into the full, a reverse
incremental injection) writes its new index into the *other* slot and the old
state stays readable until the metadata file - the single commit point - says
otherwise. A torn slot write fails its checksum and is ignored.
"""

from __future__ import annotations

import json
import os
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import xxhash
import zstandard

from engine.errors import FerryError
from engine.repository.writer_io import BackgroundWriter

MAGIC = b"FERRYBK1"
VERSION = 1
SLOT_SIZE = 4096
DATA_START = 2 * SLOT_SIZE
# magic, version, kind, block_size, generation, index offset, index length, index digest, state
_SLOT = struct.Struct("<8sHB x I Q Q Q Q 64s")
_ENTRY = struct.Struct("<QQIIB16s")  # block, offset, stored length, raw length, flags, digest
# disk number, then as _ENTRY, then the xxh3-64 of the stored bytes (checks sealed ones too)
_JOURNAL = struct.Struct("<HQQIIB16sQ")
JOURNAL_FORMAT = 2

FLAG_ZSTD = 0  # payload is a zstd frame
FLAG_RAW = 1  # payload is the raw block
FLAG_ZERO = 2  # an all-zero block: nothing stored
FLAG_SEALED = 0x10  # with ZSTD or RAW: the payload is sealed (engine/keys.py), see sealed_base

KIND_CODES = {"full": 1, "incremental": 2, "rollback": 3}


class ContainerError(FerryError):
    """A backup file that cannot be read as one (corrupt header or index, wrong state)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """Where one block of one disk is stored in this file."""

    offset: int
    stored: int
    raw: int
    flags: int
    digest: bytes


@dataclass
class DiskIndex:
    """The blocks one file holds for one disk, and the disk's size at that state."""

    name: str
    size: int
    blocks: dict[int, Entry]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pack_index(state: str, disks: Iterable[DiskIndex]) -> bytes:
    disks = list(disks)
    head = json.dumps({"state": state, "disks": [
        {"name": d.name, "size": d.size, "count": len(d.blocks)} for d in disks
    ]}).encode()
    parts = [struct.pack("<I", len(head)), head]
    for d in disks:
        for block in sorted(d.blocks):
            e = d.blocks[block]
            parts.append(_ENTRY.pack(block, e.offset, e.stored, e.raw, e.flags, e.digest))
    return zstandard.ZstdCompressor(level=3).compress(b"".join(parts))


def _unpack_index(blob: bytes) -> tuple[str, list[DiskIndex]]:
    raw = zstandard.ZstdDecompressor().decompress(blob)
    (hlen,) = struct.unpack_from("<I", raw, 0)
    head = json.loads(raw[4:4 + hlen])
    pos = 4 + hlen
    disks = []
    for d in head["disks"]:
        blocks: dict[int, Entry] = {}
        end = pos + d["count"] * _ENTRY.size
        for block, off, stored, rawlen, flags, digest in _ENTRY.iter_unpack(raw[pos:end]):
            blocks[block] = Entry(off, stored, rawlen, flags, digest)
        pos = end
        disks.append(DiskIndex(d["name"], d["size"], blocks))
    return head["state"], disks


@dataclass
class _Slot:
    generation: int
    offset: int
    length: int
    digest: int
    state: str
    kind: int
    block_size: int


def _read_slots(f) -> list[_Slot]:
    return [s for s in _read_slots_indexed(f) if s is not None]


def _slot_bytes(kind: int, block_size: int, gen: int, off: int, length: int, dig: int,
                state: str) -> bytes:
    body = _SLOT.pack(MAGIC, VERSION, kind, block_size, gen, off, length, dig,
                      state.encode()[:64])
    return body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body))


class Container:
    """A backup file opened for reading at one state."""

    def __init__(self, path: Path, state: str | None = None):
        self.path = Path(path)
        try:
            self._f = open(self.path, "rb")
        except OSError as exc:
            raise ContainerError(f"{self.path.name}: cannot open: {exc.strerror}") from None
        try:
            slots = _read_slots(self._f)
            if state is not None:
                slots = [s for s in slots if s.state == state]
            if not slots:
                want = f" for point {state}" if state else ""
                raise ContainerError(f"{self.path.name}: no valid header{want}")
            slot = max(slots, key=lambda s: s.generation)
            self.slot = slot
            self.block_size = slot.block_size
            self.kind_code = slot.kind
            self._f.seek(slot.offset)
            blob = self._f.read(slot.length)
            if len(blob) != slot.length or xxhash.xxh3_64_intdigest(blob) != slot.digest:
                raise ContainerError(f"{self.path.name}: index is damaged")
            try:
                self.state, disks = _unpack_index(blob)
            except Exception as exc:  # zstd/json/struct errors: a damaged index
                raise ContainerError(f"{self.path.name}: index unreadable ({exc})") from None
            self.disks = {d.name: d for d in disks}
        except Exception:
            self._f.close()
            raise

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> Container:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_stored(self, e: Entry) -> bytes:
        """The bytes as stored (compressed or raw); empty for a zero block."""
        if e.flags == FLAG_ZERO:
            return b""
        return os.pread(self._f.fileno(), e.stored, e.offset)

    def data_end(self) -> int:
        """Offset just past everything this file holds (data and indexes)."""
        return os.fstat(self._f.fileno()).st_size


def free_extents(base: Container, end: int) -> deque[tuple[int, int]]:
    """Byte ranges of the file that the state `base` was opened at does not use.

    Only the state the metadata names must survive a crash during an in-place
    transform, so payloads and indexes of older states are free for reuse.
    """
    used = sorted((e.offset, e.offset + e.stored) for d in base.disks.values()
                  for e in d.blocks.values() if e.flags != FLAG_ZERO and e.stored)
    used.append((base.slot.offset, base.slot.offset + base.slot.length))
    used.sort()
    gaps: deque[tuple[int, int]] = deque()
    pos = DATA_START
    for start, stop in used:
        if start > pos:
            gaps.append((pos, start))
        pos = max(pos, stop)
    if end > pos:
        gaps.append((pos, end))
    return gaps


def sealed_base(flags: int) -> int:
    """The compression flag of a (possibly sealed) entry."""
    return flags & ~FLAG_SEALED


def decode_block(payload: bytes, e: Entry, dctx: zstandard.ZstdDecompressor,
                 opened: bool = False) -> bytes:
    """Raw block bytes from a stored payload (`opened`: a sealed one, already decrypted)."""
    flags = e.flags
    if flags & FLAG_SEALED:
        if not opened:
            raise ContainerError("the block is encrypted: open it with its chain key first")
        flags = sealed_base(flags)
    if flags == FLAG_ZERO:
        return bytes(e.raw)
    if flags == FLAG_RAW:
        return payload
    return dctx.decompress(payload, max_output_size=e.raw)


class ContainerWriter:
    """Writes a new backup file, or appends a new state to an existing one.

    New files are written as `<name>.part` and renamed into place when durable,
    so a half-written file never carries the final name.
    """

    def __init__(self, path: Path, kind: str, block_size: int, *, base: Container | None = None,
                 reopen: bool = False):
        """`base`: append a new state to that file in place; `reopen`: continue the
        `.part` file a killed run left (see `resume`); otherwise a new `.part` file."""
        self.path = Path(path)
        self.kind = KIND_CODES[kind]
        self.block_size = block_size
        self.disks: dict[str, DiskIndex] = {}
        self.dedup: dict[bytes, Entry] = {}
        self.written = 0
        self._base = base
        self._gaps: deque[tuple[int, int]] = deque()  # reusable dead space (in place only)
        self._resumed: list[tuple[str, int, Entry]] = []
        if base is None:
            self._tmp = self.path.with_name(self.path.name + ".part")
            self._f = open(self._tmp, "r+b" if reopen else "w+b")
            if not reopen:
                self._f.truncate(DATA_START)
            self._pos = DATA_START
            self._generation = 0
            self._keep_state = ""
        else:
            self._tmp = None
            self._f = open(self.path, "r+b")
            self._pos = os.fstat(self._f.fileno()).st_size
            self._generation = base.slot.generation
            self._keep_state = base.state
            for d in base.disks.values():
                for e in d.blocks.values():
                    if e.flags != FLAG_ZERO:
                        self.dedup.setdefault(e.digest, e)
            self._gaps = free_extents(base, self._pos)
        self._buf: list[bytes] = []
        self._buffered = 0
        self._io = BackgroundWriter(self._f.fileno())
        self._journal = None  # see enable_journal
        self._journal_pending: list[bytes] = []
        self._sums: dict[int, int] = {}  # offset -> xxh3-64 of the stored payload (journal)
        self.journal_every = 16 << 20
        self._since_sync = 0

    def set_disk(self, name: str, size: int) -> DiskIndex:
        d = self.disks.get(name)
        if d is None:
            d = self.disks[name] = DiskIndex(name, size, {})
        d.size = size
        return d

    def put(self, disk: str, block: int, digest: bytes, raw_len: int, flags: int,
            payload: bytes | memoryview = b"") -> Entry:
        """Record one block; stores the payload unless an identical block is already here."""
        if flags == FLAG_ZERO:
            e = Entry(0, 0, raw_len, FLAG_ZERO, digest)
        else:
            e = self.dedup.get(digest)
            if e is None or e.raw != raw_len:
                offset = self._take_gap(len(payload))
                if offset is None:
                    e = Entry(self._pos, len(payload), raw_len, flags, digest)
                    self._append(payload)
                else:  # dead space of an older state (in-place transforms only)
                    e = Entry(offset, len(payload), raw_len, flags, digest)
                    self._io.write([bytes(payload)], offset)
                    self.written += len(payload)
                self.dedup[digest] = e
        self.disks[disk].blocks[block] = e
        if self._journal is not None:
            self._journal_entry(disk, block, e, payload)
        return e

    def _journal_entry(self, disk: str, block: int, e: Entry, payload) -> None:
        """Queue the journal record of one entry, with the checksum of its stored bytes."""
        check = 0
        if e.flags != FLAG_ZERO:
            check = self._sums.get(e.offset)
            if check is None:
                check = self._sums[e.offset] = xxhash.xxh3_64_intdigest(payload)
        self._journal_pending.append(_JOURNAL.pack(
            self._disk_no(disk), block, e.offset, e.stored, e.raw, e.flags, e.digest, check))

    def _take_gap(self, n: int) -> int | None:
        """Next-fit in the free extents; gaps too small for this block are passed over."""
        gaps = self._gaps
        while gaps:
            start, end = gaps[0]
            if end - start >= n:
                gaps[0] = (start + n, end)
                return start
            gaps.popleft()
        return None

    def put_entry(self, disk: str, block: int, e: Entry) -> None:
        """Keep an entry already stored in this (base) file."""
        self.disks[disk].blocks[block] = e

    # -- resumable writes ------------------------------------------------------------
    def enable_journal(self, disk_names: list[str]) -> None:
        """Record durable entries in `<file>.part.journal` so a killed copy can resume.

        Every `journal_every` bytes the data is fsynced and then the entries that
        refer to it are appended to the journal (and fsynced): a journal entry
        never points at data that is not on disk.
        """
        self._disk_names = list(disk_names)
        jpath = self._tmp.with_name(self._tmp.name + ".journal")
        self._journal = open(jpath, "ab")
        if self._journal.tell() == 0:
            self._journal.write(json.dumps({"journal": JOURNAL_FORMAT,
                                            "disks": self._disk_names}).encode() + b"\n")

    def _disk_no(self, disk: str) -> int:
        return self._disk_names.index(disk)

    def _sync_journal(self) -> None:
        """Make the data durable, then journal the entries that refer to it (in order).

        Runs on the writer thread after every write queued so far; when any of
        them failed (or the fsync fails) it is skipped, so the journal only ever
        names bytes an fsync has confirmed on disk.
        """
        pending, self._journal_pending = self._journal_pending, []
        self._since_sync = 0
        journal, fd = self._journal, self._f.fileno()

        def sync() -> None:
            os.fsync(fd)
            journal.write(b"".join(pending))
            journal.flush()
            os.fsync(journal.fileno())

        self._io.call(sync)

    @classmethod
    def resume(cls, path: Path, kind: str, block_size: int) -> tuple[ContainerWriter, set]:
        """Reopen `<path>.part` with the entries its journal proves durable.

        Every journaled payload is read back and checked against its digest
        before it is trusted; one mismatch (or a journal that does not parse)
        rejects the whole partial file (ContainerError): the caller starts anew.
        Returns the writer and the set of (disk name, block) already stored.
        """
        path = Path(path)
        jpath = path.with_name(path.name + ".part.journal")
        tmp = path.with_name(path.name + ".part")
        try:
            first, _, rest = jpath.read_bytes().partition(b"\n")
            head = json.loads(first)
            if not isinstance(head, dict) or head.get("journal") != JOURNAL_FORMAT:
                raise ValueError("not a journal of this format")
            names = [str(n) for n in head["disks"]]
            usable = len(rest) - len(rest) % _JOURNAL.size
            records = list(_JOURNAL.iter_unpack(rest[:usable]))
            entries = [(names[disk_no], block, Entry(off, stored, rawlen, flags, digest))
                       for disk_no, block, off, stored, rawlen, flags, digest, _ in records]
            sums = {off: check for _, _, off, _, _, flags, _, check in records
                    if flags != FLAG_ZERO}
        except (OSError, ValueError, KeyError, IndexError, TypeError, struct.error) as exc:
            raise ContainerError(f"{jpath.name}: journal unreadable ({exc})") from None
        _verify_journaled(tmp, entries, sums, block_size)
        end = max([DATA_START] + [e.offset + e.stored for _, _, e in entries])
        w = cls(path, kind, block_size, reopen=True)
        w._f.truncate(end)  # drop data the journal does not vouch for
        w._pos = end
        w._resumed = entries
        w._sums = sums
        w._disk_names = names
        w._journal = open(jpath, "r+b")
        w._journal.truncate(len(first) + 1 + usable)
        w._journal.seek(0, 2)
        return w, {(name, block) for name, block, _ in entries}

    def resumed_entries(self) -> list[tuple[str, int, Entry]]:
        return self._resumed

    def _append(self, payload: bytes | memoryview) -> None:
        self._buf.append(bytes(payload) if isinstance(payload, memoryview) else payload)
        self._buffered += len(payload)
        self._pos += len(payload)
        self.written += len(payload)
        if self._buffered >= 8 << 20:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._io.write(self._buf, self._pos - self._buffered)
            self._since_sync += self._buffered
            self._buf = []
            self._buffered = 0
        if self._journal is not None and self._since_sync >= self.journal_every:
            self._sync_journal()

    def commit(self, state: str) -> int:
        """Write index and header slot durably; return the file's size."""
        index = _pack_index(state, self.disks.values())
        index_off = self._pos
        self._append(index)
        self._flush()
        self._io.close()
        os.fsync(self._f.fileno())
        gen = self._generation + 1
        slot = self._free_slot()
        self._f.seek(slot * SLOT_SIZE)
        self._f.write(_slot_bytes(self.kind, self.block_size, gen, index_off, len(index),
                                  xxhash.xxh3_64_intdigest(index), state))
        self._f.flush()
        os.fsync(self._f.fileno())
        size = os.fstat(self._f.fileno()).st_size
        self._f.close()
        if self._tmp is not None:
            os.rename(self._tmp, self.path)
            _fsync_dir(self.path.parent)
        self._drop_journal()
        return size

    def _drop_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()
            Path(self._journal.name).unlink(missing_ok=True)
            self._journal = None

    def _free_slot(self) -> int:
        """The slot that does not hold the state the metadata still points at."""
        if self._base is None:
            return 0
        self._f.seek(0)
        for i, s in enumerate(_read_slots_indexed(self._f)):
            if s is not None and s.state == self._keep_state:
                return 1 - i
        return 0

    def abort(self, keep_partial: bool = False) -> bool:
        """Give up; with `keep_partial` a journaled .part stays for a later resume.

        A partial file whose writes failed (ENOSPC, EIO) is never kept: its
        state is unknown and it holds space other machines need. Returns True
        when the partial file was kept.
        """
        if keep_partial and self._journal is not None and not self._io.failed:
            try:
                self._flush()
                self._sync_journal()
                self._io.close()
                kept = True
            except Exception:  # noqa: BLE001 - a failing sync drops the partial below
                kept = False
            if kept:
                self._journal.close()
                self._f.close()
                return True
        try:
            self._io.close()
        except Exception:  # noqa: BLE001 - the original error is what the caller raises
            pass
        self._f.close()
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
        self._drop_journal()
        return False


def _verify_journaled(tmp: Path, entries: list[tuple[str, int, Entry]], sums: dict[int, int],
                      block_size: int) -> None:
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
        for disk, block, e in entries:
            if e.flags == FLAG_ZERO or e.offset in seen:
                continue
            seen.add(e.offset)
            base = sealed_base(e.flags)
            bad = e.offset < DATA_START or e.raw > block_size or base not in (FLAG_RAW, FLAG_ZSTD)
            if not bad:
                payload = os.pread(f.fileno(), e.stored, e.offset)
                bad = len(payload) != e.stored or \
                    xxhash.xxh3_64_intdigest(payload) != sums.get(e.offset)
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


def _read_slots_indexed(f) -> list[_Slot | None]:
    out: list[_Slot | None] = []
    for i in range(2):
        f.seek(i * SLOT_SIZE)
        buf = f.read(_SLOT.size + 8)
        slot = None
        if len(buf) == _SLOT.size + 8:
            body, (check,) = buf[:_SLOT.size], struct.unpack("<Q", buf[_SLOT.size:])
            if xxhash.xxh3_64_intdigest(body) == check:
                magic, ver, kind, bs, gen, off, length, dig, state = _SLOT.unpack(body)
                if magic == MAGIC and ver == VERSION and gen > 0:
                    slot = _Slot(gen, off, length, dig, state.rstrip(b"\0").decode(), kind, bs)
        out.append(slot)
    return out
