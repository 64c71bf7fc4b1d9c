"""One point's blocks going up to the bucket (`S3TargetMover`'s BEGIN..COMMIT).

The DIGESTS batches are answered from the local block index (a block the bucket
holds never travels; its lock is extended if the point needs it longer); every
BLOCK is verified against its digest before it is packed; packs of ~4 MiB go up in
the mover's thread pool with at most IN_FLIGHT_BYTES queued, each one PUT; a
repaired block goes up as its own `blocks/` object. The manifest and `chain.json`
come after (engine.objstore.target).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from concurrent.futures import Future
from datetime import datetime
from typing import TYPE_CHECKING

from engine.blockio import decompressor, digest
from engine.copy import transport as t
from engine.keys import OVERHEAD
from engine.model import DiskInfo
from engine.objstore import locks
from engine.objstore.generations import extend_locks
from engine.objstore.index import UNKNOWN, row_of
from engine.objstore.manifest import (
    new_pack_id,
    pack_loc,
    pack_name,
)
from engine.repository.container import (
    FLAG_RAW,
    FLAG_SEALED,
    FLAG_ZERO,
    FLAG_ZSTD,
    DiskIndex,
    Entry,
    decode_block,
)
from engine.repository.fileformat import stored_check

if TYPE_CHECKING:
    from engine.objstore.target import S3TargetMover

log = logging.getLogger("ferry.s3")
_DIG = t._BLOCK
PACK_BYTES = 4 << 20  # a pack is closed once it holds this many stored bytes
IN_FLIGHT_BYTES = 16 << 20  # payload bytes queued for upload at most (memory bound):
# 4 packs uploading at once, as the gateway's own ceiling is measured


class BlockRefused(Exception):
    """A BLOCK frame that does not match what was asked for, or its digest."""


def verify_payload(payload: bytes | memoryview, raw: int, flags: int, dg: bytes,
                   where: str) -> bytes:
    """The raw bytes of a stored payload, checked against its digest (else BlockRefused)."""
    try:
        data = decode_block(bytes(payload), Entry(0, len(payload), raw, flags, dg), decompressor())
    except Exception:  # noqa: BLE001 - zstd errors
        raise BlockRefused(f"{where}: payload does not decompress") from None
    if len(data) != raw or digest(data) != dg:
        raise BlockRefused(f"{where}: payload does not match its digest")
    return data


# an uploaded block: (disk, block, its layer entry, lock end in epoch seconds)
Uploaded = tuple[str, int, Entry, int]


class _Pack:
    """Blocks gathered for one object: their stored bytes back to back in one buffer,
    sent as it is (no second copy). Pack buffers are recycled (`PointWriter.spare`):
    a fresh 4 MiB buffer per pack costs its zeroing and page faults on the receiving
    thread, and freed ones pile up as heap slack (`blockio.tune_malloc`)."""

    def __init__(self, buf: bytearray, single_as: int | None = None):
        self.buf = buf
        self.size = 0
        # (disk name, block, raw length, flags, digest, offset, stored length)
        self.items: list[tuple[str, int, int, int, bytes, int, int]] = []
        self.single_as = single_as  # a repaired block: its own object, stored with these flags

    def add(self, name: str, block: int, raw: int, flags: int, dg: bytes,
            payload: bytes | memoryview) -> None:
        n = len(payload)
        if self.size + n > len(self.buf):
            self.buf.extend(bytes(self.size + n - len(self.buf)))
        self.buf[self.size:self.size + n] = payload
        self.items.append((name, block, raw, flags, dg, self.size, n))
        self.size += n

    def seal(self) -> None:
        """Done adding: the buffer is cut to what it holds (in place: CPython keeps the
        allocation while the length stays above half of it)."""
        del self.buf[self.size:]


class PointWriter:
    """The blocks of one point: answers digests, uploads verified payloads, builds the layer."""

    def __init__(self, mover: S3TargetMover, disks: list[DiskInfo], bs: int,
                 required: datetime | None, sealed: bool = False):
        self.mv, self.m = mover, mover.open_machine
        self.names = [d.name for d in disks]
        self.nblocks = [-(-d.size // bs) for d in disks]
        self.bs = bs
        self.sealed = sealed  # an encrypted point: every stored block is sealed
        self.accepted = {f | (FLAG_SEALED if sealed else 0) for f in (FLAG_ZSTD, FLAG_RAW)}
        self.layer = {d.name: DiskIndex(d.name, d.size, {}) for d in disks}
        self.required = required
        self.wanted: dict[tuple[int, int], bytes] = {}  # (disk, block) -> digest to come
        self.aliases: list[tuple[str, int, bytes, int]] = []  # same digest as a wanted block
        self.pending: set[bytes] = set()
        self.extend: dict[bytes, Entry] = {}  # reused digest -> where, lock to extend
        self.uploaded: dict[bytes, Entry] = {}
        self.repair_flags: dict[bytes, int] = {}
        self.spare: deque[bytearray] = deque()  # sent packs' buffers, for the next packs
        self.written = 0
        self.reused = 0

    def digests(self, suspect: set[tuple[str, int]]) -> None:
        idx = self.m.index
        need = locks.to_epoch(self.required) if self.required else 0
        while True:
            f = self.mv.end.expect(t.DIGESTS)
            if not f.payload:
                return
            if len(f.payload) % _DIG.size or len(f.payload) > 65536 * _DIG.size:
                raise t.StreamError("bad DIGESTS frame")
            bits = bytearray()
            for disk, block, raw, flags, dg in _DIG.iter_unpack(f.payload):
                if disk >= len(self.names) or block >= self.nblocks[disk] or raw > self.bs:
                    raise t.StreamError(f"DIGESTS names disk {disk} block {block}: not in plan")
                name = self.names[disk]
                if flags == FLAG_ZERO:
                    self.layer[name].blocks[block] = Entry(0, 0, raw, FLAG_ZERO, dg)
                    bits.append(1)
                    continue
                hit = idx.lookup(dg)
                if hit is not None and bool(hit.flags & FLAG_SEALED) != self.sealed:
                    hit = None  # plaintext and ciphertext never stand in for each other
                if (name, block) in suspect:
                    # rewritten as its own object, the very one older manifests name or
                    # fall back to when their packed copy is damaged
                    self.repair_flags[dg] = hit.flags if hit is not None else -1
                    hit = None
                if hit is not None:
                    e = hit.entry(raw, dg)
                    self.layer[name].blocks[block] = e
                    if need and (hit.lock_until == UNKNOWN or hit.lock_until < need):
                        self.extend[dg] = e
                    self.reused += 1
                    bits.append(1)
                elif dg in self.pending and (name, block) not in suspect:
                    self.aliases.append((name, block, dg, raw))
                    bits.append(1)
                else:
                    self.pending.add(dg)
                    self.wanted[(disk, block)] = dg
                    bits.append(0)
            self.mv.end.send(t.encode(t.HAVE, bytes(bits)))

    def blocks(self) -> None:
        inflight: deque[tuple[Future[list[Uploaded]], int]] = deque()
        queued = 0
        cap = PACK_BYTES + self.bs + 1024 + OVERHEAD  # a pack is closed past PACK_BYTES

        def fresh() -> _Pack:
            try:
                return _Pack(self.spare.pop())
            except IndexError:
                return _Pack(bytearray(cap))

        pack = fresh()

        def submit(p: _Pack) -> None:
            nonlocal queued
            p.seal()
            inflight.append((self.mv.pool.submit(self._upload, p), p.size))
            queued += p.size

        while True:
            f = self.mv.end.recv()
            if f.type == t.COMMIT:
                break
            if f.type == t.ABORT:
                raise t.StreamError("source aborted the point")
            if f.type != t.BLOCK:
                raise t.StreamError(f"unexpected frame {t.NAMES.get(f.type)}")
            disk, block, raw, flags, dg, payload = t.decode_block(f.payload)
            if self.wanted.pop((disk, block), None) != dg or flags not in self.accepted:
                raise BlockRefused(f"BLOCK {block} of disk {disk} was not asked for")
            store_as = self.repair_flags.get(dg)
            if store_as is not None:  # a repair: the block's own object
                one = _Pack(bytearray(len(payload)), flags if store_as < 0 else store_as)
                one.add(self.names[disk], block, raw, flags, dg, payload)
                submit(one)
            else:
                pack.add(self.names[disk], block, raw, flags, dg, payload)
                if pack.size >= PACK_BYTES:
                    submit(pack)
                    pack = fresh()
            while queued > IN_FLIGHT_BYTES or (inflight and inflight[0][0].done()):
                fut0, n = inflight.popleft()
                self._done(fut0.result())
                queued -= n
        if pack.items:
            submit(pack)
        while inflight:
            self._done(inflight.popleft()[0].result())
        if self.wanted:
            raise t.StreamError(f"{len(self.wanted)} block(s) asked for never arrived")

    def _upload(self, p: _Pack) -> list[Uploaded]:
        """Verify, then PUT one pack (or a repaired block as its own object); runs in the
        upload pool and touches no SQLite."""
        t0 = time.perf_counter()
        until = locks.block_lock(self.required)
        lock_s = locks.to_epoch(until)
        out: list[Uploaded] = []
        if p.single_as is not None:
            name, block, raw, flags, dg, _, _ = p.items[0]
            payload, flags = self._checked(name, block, raw, flags, dg, bytes(p.buf),
                                           p.single_as)
            p.buf.clear()
            self.m.bucket.put(self.m.block_key(dg, flags), payload, lock_until=until,
                              checksum=True)
            out.append((name, block, Entry(0, len(payload), raw, flags, dg), lock_s))
        else:
            pack = new_pack_id()
            with memoryview(p.buf) as view:
                for name, block, raw, flags, dg, off, n in p.items:
                    piece = view[off:off + n]
                    self._checked(name, block, raw, flags, dg, piece, flags)
                    out.append((name, block, Entry(pack_loc(pack, off), n, raw, flags, dg,
                                                   stored_check(piece)), lock_s))
                    piece.release()
            self.m.bucket.put(f"{self.m.key}/{pack_name(pack, self.sealed)}", p.buf,
                              lock_until=until, checksum=True)
            self.spare.append(p.buf)
        self.mv.busy += time.perf_counter() - t0
        return out

    def _checked(self, name: str, block: int, raw: int, flags: int, dg: bytes,
                 payload: bytes | memoryview, store_as: int) -> tuple[bytes | memoryview, int]:
        """(payload, flags) to store. A sealed payload cannot be opened here (the target
        never has the key): its size is checked, and its keyed digest is verified by every
        read with the key (export, check --deep)."""
        if flags & FLAG_SEALED:
            if not OVERHEAD <= len(payload) <= self.bs + 1024 + OVERHEAD:
                raise BlockRefused(f"block {block} of disk {name}: sealed payload of "
                                   f"{len(payload)} bytes")
        elif not self.mv.trusted or store_as != flags:
            data = verify_payload(payload, raw, flags, dg, f"block {block} of disk {name}")
            if store_as != flags and not store_as & FLAG_SEALED:
                flags = store_as
                payload = data if flags == FLAG_RAW else _zstd(data)
        return payload, flags

    def _done(self, results: list[Uploaded]) -> None:
        for name, block, e, _ in results:
            self.layer[name].blocks[block] = e
            self.uploaded[e.digest] = e
            self.written += e.stored
        self.m.index.add(row_of(e, until) for _, _, e, until in results)

    def commit(self) -> int:
        """Aliases filled, reused blocks' locks extended; the bytes the point uses."""
        for name, block, dg, raw in self.aliases:
            e = self.uploaded.get(dg)
            if e is None:
                raise t.StreamError(f"block {block} of disk {name}: its twin never arrived")
            self.layer[name].blocks[block] = Entry(e.offset, e.stored, raw, e.flags, dg, e.check)
        extend_locks(self.m, self.extend, self.required, self.mv.pool)
        return sum(e.stored for d in self.layer.values() for e in d.blocks.values())


def _zstd(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=1).compress(data)
