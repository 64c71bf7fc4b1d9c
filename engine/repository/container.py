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

import os
from collections import deque
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from engine.model import Kind
from engine.repository import journal
from engine.repository.fileformat import (
    DATA_START,
    FLAG_RAW,
    FLAG_SEALED,
    FLAG_ZERO,
    FLAG_ZSTD,
    KIND_CODES,
    KIND_OF_CODE,
    MAGIC,
    MIRROR,
    SLOT_SIZE,
    VERSION,
    ContainerError,
    DiskIndex,
    Entry,
    Slot,
    pack_index,
    read_index,
    read_slots,
    sealed_base,
    slot_bytes,
    stored_check,
    stored_problem,
)
from engine.repository.writer_io import BackgroundWriter

# Payloads are written in WRITE_CHUNK pieces, at most WRITE_DEPTH of them queued for the
# writer thread besides the one being filled: the writer holds at most
# (WRITE_DEPTH + 1) x WRITE_CHUNK of block data. It was 5 x 8 MiB, the largest share of a
# copy's peak RSS; a queue deeper than double buffering gains nothing when the disk is
# the bottleneck (it then only fills up).
WRITE_CHUNK = 4 << 20
WRITE_DEPTH = 2

__all__ = ["DATA_START", "FLAG_RAW", "FLAG_SEALED", "FLAG_ZERO", "FLAG_ZSTD", "KIND_CODES",
           "KIND_OF_CODE", "MAGIC", "MIRROR", "SLOT_SIZE", "VERSION", "Container", "ContainerError",
           "ContainerWriter", "DiskIndex", "Entry", "decode_block", "free_extents", "sealed_base", "stored_problem"]


def drop_cached(fd: int) -> None:
    """Let the page cache forget a copy target's data once it is durable (fsynced, so
    clean). A copied point is not read back soon, and on a VM whose free memory goes
    back to the host, each new page-cache page costs a host fault: keeping a few MiB of
    pages in turn made a 2 GiB copy's writes ~10x cheaper (docs/ARCHITECTURE.md)."""
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass  # advice only


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Container:
    """A backup file opened for reading at one state."""

    def __init__(self, path: Path, state: str | None = None):
        self.path = Path(path)
        try:
            self._f = open(self.path, "rb")
        except OSError as exc:
            raise ContainerError(f"{self.path.name}: cannot open: {exc.strerror}") from None
        try:
            slots = [s for s in read_slots(self._f) if s is not None]
            if state is not None:
                slots = [s for s in slots if s.state == state]
            if not slots:
                want = f" for point {state}" if state else ""
                raise ContainerError(f"{self.path.name}: no valid header{want}")
            slot = max(slots, key=lambda s: s.generation)
            self.slot: Slot = slot
            self.block_size = slot.block_size
            self.kind_code = slot.kind
            self.state, disks, self.info = read_index(self._f, slot, self.path.name)
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

    def read_verified(self, e: Entry) -> tuple[bytes, str]:
        """(stored bytes, what is wrong or ""): the check before a payload is copied."""
        payload = self.read_stored(e)
        return payload, stored_problem(e, payload)

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
    for off in (base.slot.offset, base.slot.offset2):
        if off:
            used.append((off, off + base.slot.length))
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

    def __init__(self, path: Path, kind: Kind | str, block_size: int, *,
                 base: Container | None = None,
                 reopen: bool = False):
        """`base`: append a new state to that file in place; `reopen`: continue the
        `.part` file a killed run left (see `resume`); otherwise a new `.part` file."""
        self.path = Path(path)
        self.kind = KIND_CODES[Kind(kind)]
        self.block_size = block_size
        self.disks: dict[str, DiskIndex] = {}
        self.dedup: dict[bytes, Entry] = {}
        self._unverified: set[int] = set()  # offsets of base entries in `dedup` not yet re-read
        self.rejected: list[Entry] = []  # stored copies that failed their check on a dedup hit
        self.written = 0
        self._base = base
        self._gaps: deque[tuple[int, int]] = deque()  # reusable dead space (in place only)
        self._resumed: list[tuple[str, int, Entry]] = []
        self._tmp: Path | None  # the `.part` file of a new file; None when appending in place
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
                    if e.flags != FLAG_ZERO and e.digest not in self.dedup:
                        self.dedup[e.digest] = e
                        self._unverified.add(e.offset)
            self._gaps = free_extents(base, self._pos)
        self._buf: list[bytes | memoryview] = []
        self._buffered = 0
        self._io = BackgroundWriter(self._f.fileno(), depth=WRITE_DEPTH)
        self._journal: BinaryIO | None = None  # see enable_journal
        self._journal_pending: list[bytes] = []
        self.journal_every = 16 << 20
        self._since_sync = 0

    def set_disk(self, name: str, size: int) -> DiskIndex:
        d = self.disks.get(name)
        if d is None:
            d = self.disks[name] = DiskIndex(name, size, {})
        d.size = size
        return d

    def put(self, disk: str, block: int, digest: bytes, raw_len: int, flags: int,
            payload: bytes | memoryview = b"", *, check: int | None = None,
            owned: bool = False) -> Entry:
        """Record one block; stores the payload unless an identical block is already here.

        The caller has verified `payload`. An identical block already stored in the
        base file is re-read and checked before it is reused: a rotten copy is never
        kept over the verified one being put (the fresh payload is stored instead).
        `check`: the payload's `stored_check`, when the caller computed it already (a
        mover's verify pool, off its receiving thread); `owned`: a memoryview payload
        whose buffer nobody reuses (a received frame), kept as is until written
        instead of copied.
        """
        if flags == FLAG_ZERO:
            e = Entry(0, 0, raw_len, FLAG_ZERO, digest)
        else:
            found = self.dedup.get(digest)
            if found is not None and found.offset in self._unverified and not self._sound(found):
                del self.dedup[digest]
                found = None
                if not payload:
                    raise ContainerError(f"{self.path.name}: the stored copy of block {block} "
                                         f"of disk {disk} is damaged and no other was given")
            if found is not None and found.raw == raw_len:
                e = found
            else:
                if check is None:
                    check = stored_check(payload)
                offset = self._take_gap(len(payload))
                if offset is None:
                    e = Entry(self._pos, len(payload), raw_len, flags, digest, check)
                    self._append(payload, owned)
                else:  # dead space of an older state (in-place transforms only)
                    e = Entry(offset, len(payload), raw_len, flags, digest, check)
                    self._io.write([bytes(payload)], offset)
                    self.written += len(payload)
                self.dedup[digest] = e
        self.disks[disk].blocks[block] = e
        if self._journal is not None:
            self._journal_entry(disk, block, e)
        return e

    def reject(self, e: Entry) -> None:
        """A base entry known to be rotten: never reused, and healed at commit."""
        self.rejected.append(e)
        self._unverified.discard(e.offset)
        if self.dedup.get(e.digest) == e:
            del self.dedup[e.digest]

    def _sound(self, e: Entry) -> bool:
        """Re-read a base entry before dedup reuses it (once per stored payload)."""
        payload = os.pread(self._f.fileno(), e.stored, e.offset)
        self._unverified.discard(e.offset)
        if stored_problem(e, payload):
            self.rejected.append(e)
            return False
        return True

    def _journal_entry(self, disk: str, block: int, e: Entry) -> None:
        """Queue the journal record of one entry, with the checksum of its stored bytes."""
        self._journal_pending.append(journal.record(self._disk_no(disk), block, e))

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
        assert self._tmp is not None, "only a new file's writes are journaled (not in place)"
        jpath = self._tmp.with_name(self._tmp.name + ".journal")
        f = self._journal = open(jpath, "ab")
        if f.tell() == 0:
            f.write(journal.header(self._disk_names))

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
        f, fd = self._journal, self._f.fileno()
        assert f is not None, "called only while journaling"

        def sync() -> None:
            os.fsync(fd)
            drop_cached(fd)
            f.write(b"".join(pending))
            f.flush()
            os.fsync(f.fileno())

        self._io.call(sync)

    @classmethod
    def resume(cls, path: Path, kind: str,
               block_size: int) -> tuple[ContainerWriter, set[tuple[str, int]]]:
        """Reopen `<path>.part` with the entries its journal proves durable.

        Every journaled payload is read back and checked against its digest
        before it is trusted; one mismatch (or a journal that does not parse)
        rejects the whole partial file (ContainerError): the caller starts anew.
        Returns the writer and the set of (disk name, block) already stored.
        """
        path = Path(path)
        jpath = path.with_name(path.name + ".part.journal")
        found = journal.read(jpath)
        journal.verify(path.with_name(path.name + ".part"), found, block_size)
        end = max([DATA_START] + [e.offset + e.stored for _, _, e in found.entries])
        w = cls(path, kind, block_size, reopen=True)
        w._f.truncate(end)  # drop data the journal does not vouch for
        w._pos = end
        w._resumed = found.entries
        w._disk_names = found.disks
        f = w._journal = open(jpath, "r+b")
        f.truncate(found.length)  # a torn last record goes
        f.seek(0, 2)
        return w, {(name, block) for name, block, _ in found.entries}

    def resumed_entries(self) -> list[tuple[str, int, Entry]]:
        return self._resumed

    def _append(self, payload: bytes | memoryview, owned: bool = False) -> None:
        # a view into a buffer its owner reuses (a backup's read ring) is copied now
        self._buf.append(bytes(payload) if isinstance(payload, memoryview) and not owned
                         else payload)
        self._buffered += len(payload)
        self._pos += len(payload)
        self.written += len(payload)
        if self._buffered >= WRITE_CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._buf:
            self._io.write(self._buf, self._pos - self._buffered)
            self._since_sync += self._buffered
            self._buf = []
            self._buffered = 0
        if self._journal is not None and self._since_sync >= self.journal_every:
            self._sync_journal()

    def commit(self, state: str, info: dict[str, Any] | None = None) -> int:
        """Write the index (twice) and the header slot (twice) durably; return the file's size.

        `info`: the point's record, kept in the index for `ferry check --rebuild`."""
        self._heal_rejected()
        index = pack_index(state, self.disks.values(), info)
        index_off = self._pos
        self._append(index)
        self._append(index)  # the second copy: one bad sector in the index loses nothing
        self._flush()
        self._io.close()
        os.fsync(self._f.fileno())
        if self._journal is not None:
            drop_cached(self._f.fileno())
        gen = self._generation + 1
        slot = self._free_slot()
        body = slot_bytes(self.kind, self.block_size, gen, index_off, len(index),
                          stored_check(index), state, index_off + len(index))
        for at in (slot * SLOT_SIZE, slot * SLOT_SIZE + MIRROR):
            # copy by copy: a torn write leaves the other copy whole (old or new)
            self._f.seek(at)
            self._f.write(body)
            self._f.flush()
            if self._tmp is None:
                os.fsync(self._f.fileno())
        if self._tmp is not None:
            os.fsync(self._f.fileno())
        size = os.fstat(self._f.fileno()).st_size
        self._f.close()
        if self._tmp is not None:
            os.rename(self._tmp, self.path)
            _fsync_dir(self.path.parent)
        self._drop_journal()
        return size

    def _heal_rejected(self) -> None:
        """Entries kept from the base that point at a stored copy found rotten take the
        verified copy stored since (same digest), so the new state names no rotten byte."""
        bad = {e.offset for e in self.rejected}
        if not bad:
            return
        for d in self.disks.values():
            for b, e in d.blocks.items():
                if e.flags != FLAG_ZERO and e.offset in bad:
                    good = self.dedup.get(e.digest)
                    if good is not None and good.offset not in bad and good.raw == e.raw:
                        d.blocks[b] = good

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
        for i, s in enumerate(read_slots(self._f)):
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
