"""The object storage target mover: the frames of `engine.copy.target`, written to S3.

Same protocol (HELLO, STATE, BEGIN/DIGESTS/HAVE/BLOCK/COMMIT, RETAIN, CHECK, BYE),
so the source mover does not know the difference. Digests are answered from the
local block index (no request per block): a block the bucket already holds never
travels, whichever point or killed run uploaded it - that is the WAN acceleration
and the resume of object storage. Every BLOCK is verified against its digest
before its upload; blocks go out packed ~4 MiB to an object (the gateway's cost is
per request, not per byte), in a thread pool with a bounded number in flight.
Commit order of a point: packs, lock extensions, manifest, then `chain.json`.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

from engine.blockio import decompressor, digest, limit_arenas
from engine.copy import transport as t
from engine.copy.receive import expect_base, point_key
from engine.keys import OVERHEAD
from engine.model import DiskInfo, Kind, MachineMeta, Method, RestorePoint
from engine.objstore import locks
from engine.objstore.generations import extend_locks, hold_chain
from engine.objstore.index import UNKNOWN, BlockIndex, new_epoch, row_of
from engine.objstore.manifest import (
    Manifest,
    ManifestError,
    ManifestLayer,
    block_name,
    manifest_name,
    new_pack_id,
    object_name,
    pack_loc,
    pack_name,
    split_loc,
)
from engine.objstore.repo import EPOCH, S3Repository
from engine.objstore.store import S3Error
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
from engine.repository.metadata import meta_to_dict
from engine.repository.repository import safe_name

log = logging.getLogger("ferry.s3")
_DIG = t._BLOCK
UPLOAD_THREADS = 16  # lock extensions are many small requests; packs are few
PACK_BYTES = 4 << 20  # a pack is closed once it holds this many stored bytes
IN_FLIGHT_BYTES = 16 << 20  # payload bytes queued for upload at most (memory bound):
# 4 packs uploading at once, as the gateway's own ceiling is measured


class BlockRefused(Exception):
    """A BLOCK frame that does not match what was asked for, or its digest."""


class ObjectLockMissing(Exception):
    """immutable_days set on a bucket created without Object Lock."""


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
    sent as it is (no second copy). Pack buffers are recycled (`_PointWriter.spare`):
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


class Machine:
    """One machine's prefix: its key, its block index synced with the bucket."""

    def __init__(self, repo: S3Repository, job: str, machine: str):
        self.repo, self.job, self.machine = repo, job, machine
        self.bucket = repo.bucket
        self.key = repo.machine_key(job, machine)
        state = repo.loc.state_dir() / "index" / safe_name(job) / f"{safe_name(machine)}.sqlite"
        self.index = BlockIndex(state)
        self._synced = False

    def block_key(self, dg: bytes, flags: int) -> str:
        return f"{self.key}/{block_name(dg, flags)}"

    def object_key(self, e: Entry) -> str:
        return f"{self.key}/{object_name(e)}"

    def _packed(self) -> Iterator[Entry]:
        """The packed entries of the chain's manifests (what a rebuilt cache learns)."""
        meta = self.repo.try_load(self.job, self.machine)
        for p in meta.points if meta else ():
            try:
                layer = ManifestLayer(self.bucket, self.key, p.file, p.id)
            except (ManifestError, S3Error) as exc:  # its blocks are sent again, if needed
                log.warning("%s: block index cache: %s", self.key, exc)
                continue
            for d in layer.disks.values():
                yield from (e for e in d.blocks.values() if split_loc(e.offset)[0])

    def sync(self, create: bool) -> None:
        """Trust the cache only at the bucket's epoch; rebuild it from a LIST otherwise."""
        if self._synced:
            return
        epoch_key = f"{self.key}/{EPOCH}"
        raw = self.bucket.try_get(epoch_key, 64)
        epoch = raw.decode(errors="replace") if raw else ""
        if not epoch:
            if not create:
                return
            epoch = new_epoch()
            self.bucket.put(epoch_key, epoch.encode())
        if self.index.epoch() != epoch:
            log.info("%s: rebuilding the block index cache from the bucket", self.key)
            self.index.rebuild(self.repo.keys(self.job, self.machine, "blocks"),
                               self._packed(), epoch)
        self._synced = True

    def close(self) -> None:
        self.index.close()


def preflight(repo: S3Repository, days: int) -> str:
    """Why this bucket cannot take the job's copies ("" = it can): checked before a
    run writes anything, so a refused run leaves the bucket untouched."""
    if days and not repo.bucket.lock_enabled():
        return (f"s3://{repo.bucket.name}: Object Lock is not enabled on this bucket, "
                f"so immutable_days = {days} cannot be honoured; nothing was written "
                f"(create the bucket with Object Lock enabled, or set immutable_days = 0)")
    return ""


class S3TargetMover:
    """Serves one stream for an `s3://` repository."""

    def __init__(self, repo: S3Repository, end: t.Endpoint, immutable_days: int = 0,
                 threads: int = UPLOAD_THREADS, trusted: bool = False):
        """`trusted`: the stream is this process's own source mover, which checked every
        payload against its digest right before sending it (what folder targets rely on
        in-process); verifying the same bytes again would only take CPU from the
        gateway. Any other stream is verified block by block."""
        self.repo = repo
        self.trusted = trusted
        self.end = end
        self.days = immutable_days
        self.threads = threads
        self.busy = 0.0
        self.m: Machine | None = None

    @property
    def open_machine(self) -> Machine:
        """The machine HELLO named; every other request comes after HELLO."""
        assert self.m is not None, "a request before HELLO"
        return self.m

    def serve(self) -> None:
        limit_arenas(4)  # 16 upload threads must not mean 16 heaps of freed buffers
        pool = ThreadPoolExecutor(self.threads, "ferry-s3")
        self.pool = pool
        try:
            hello = self.end.expect(t.HELLO).json()
            if hello.get("version") != t.PROTOCOL_VERSION:
                raise t.StreamError(f"protocol version {hello.get('version')} not supported")
            job, machine = str(hello["job"]), str(hello["machine"])
            self.m = Machine(self.repo, safe_name(job, "job name"),
                             safe_name(machine, "machine name"))
            refusal = preflight(self.repo, self.days)
            if refusal:
                raise ObjectLockMissing(refusal)
            self.end.send_json(t.HELLO, {"version": t.PROTOCOL_VERSION})
            while True:
                f = self.end.recv()
                if f.type == t.BYE:
                    return
                handler = {t.BEGIN: self._point, t.STATE: self._state, t.RETAIN: self._retain,
                           t.CHECK: self._check, t.SWEEP: self._sweep}.get(f.type)
                if handler is None:
                    raise t.StreamError(f"unexpected frame {t.NAMES.get(f.type)}")
                handler(f.json())
        except t.StreamError:
            return
        except Exception as exc:  # noqa: BLE001 - reported to the source side, then end
            from engine.errors import one_line

            log.error("%s", one_line(exc))
            final = isinstance(exc, ObjectLockMissing)
            try:
                self.end.send_json(t.ERROR, {"message": one_line(exc), "final": final})
            except t.StreamError:
                pass
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            if self.m is not None:
                self.m.close()

    # -- STATE / CHECK / RETAIN ------------------------------------------------------
    def _state(self, _: dict[str, Any]) -> None:
        import json

        m = self.open_machine
        meta = self.repo.try_load(m.job, m.machine)
        parts = [json.dumps(meta_to_dict(meta) if meta else None).encode(), b"\n"]
        if meta and meta.points:
            with self.repo.view(meta, meta.points[-1]) as view:
                for i, d in enumerate(view.disks):
                    for b, dg in view.digests(d.name).items():
                        parts.append(t.STATE_ENTRY.pack(i, b, dg))
        self.end.send(t.encode(t.STATE, b"".join(parts)))

    def _check(self, _: dict[str, Any]) -> None:
        from engine.health import check_machine

        m = self.open_machine
        res = check_machine(self.repo, m.job, m.machine)
        if res.corrupt:
            meta = self.repo.load(m.job, m.machine)
            meta.facts["repair"] = sorted({(c.disk, c.block) for c in res.corrupt})
            self.repo.save(meta)
        self.end.send_json(t.CHECK, {"corrupt": [[c.disk, c.block, c.file, c.reason]
                                                 for c in res.corrupt], "errors": res.errors})

    def _retain(self, request: dict[str, Any]) -> None:
        from engine.objstore.retain import apply_s3_retention

        self.open_machine.sync(create=True)
        actions = apply_s3_retention(self.open_machine, self._floor({**request, "background": False}),
                                     self.days, self.pool)
        self.end.send_json(t.RETAIN, {"actions": actions})

    def _floor(self, request: dict[str, Any]) -> dict[str, Any]:
        """The target's own immutable_days is a floor the request cannot lower."""
        policy = request.get("policy")
        if isinstance(policy, dict) and self.days:
            policy["immutable_days"] = max(int(policy.get("immutable_days") or 0), self.days)
        return request

    def _sweep(self, request: dict[str, Any]) -> None:
        """Background retention: expired flags and the objects they alone kept."""
        from engine.objstore.retain import apply_s3_retention

        self.open_machine.sync(create=True)
        actions = apply_s3_retention(self.open_machine, self._floor({**request, "background": True}),
                                     self.days, self.pool)
        self.end.send_json(t.SWEEP, {"actions": actions})

    # -- one point -------------------------------------------------------------------
    def _point(self, begin: dict[str, Any]) -> None:
        m, repo = self.open_machine, self.repo
        m.sync(create=True)
        meta = repo.try_load(m.job, m.machine)
        expect_base(meta, begin)
        kind = Kind(begin["kind"])
        when = datetime.fromisoformat(begin["time"])
        disks = [DiskInfo(safe_name(d["name"], "disk name"), int(d["size"]))
                 for d in begin["disks"]]
        bs = int(begin["block_size"])
        if not 0 < bs <= 64 << 20 or len(disks) > 256:
            raise t.StreamError(f"bad plan: block size {bs}, {len(disks)} disks")
        point_id = safe_name(str(begin["point"]), "point id")
        key = point_key(meta, begin, kind)  # sealed blocks: the target never holds the key
        replaces = begin.get("replaces")
        if replaces:  # an active GFS full of the latest point takes its place
            last = meta.points[-1] if meta and meta.points else None
            if last is None or last.id != replaces or last.id != point_id or \
                    last.source_point != begin.get("source_point"):
                raise t.StreamError(f"cannot replace {replaces}: not the latest point of the "
                                    f"same source point")
        required = locks.point_lock(when, self.days)
        w = _PointWriter(self, disks, bs, required, sealed=bool(key))
        suspect = {(str(d), int(b)) for d, b in begin.get("repaired", [])}
        w.digests(suspect)
        w.blocks()
        size = w.commit()
        if meta is not None and meta.points:  # what the new point reads of its base
            hold_chain(m, meta, meta.points[-1], required, self.pool)
        name = manifest_name(point_id)
        until = locks.effective(required)
        manifest = Manifest(point_id, bs, w.layer, until.isoformat() if until else "",
                            {"id": point_id, "time": when.isoformat(), "kind": kind.value})
        blob = manifest.encode()
        repo.bucket.put(f"{m.key}/{name}", blob, lock_until=until)
        meta = meta or MachineMeta(
            m.job, m.machine, bs, Method.FOREVER_FORWARD, begin.get("compression", "auto"))
        meta.block_size = bs
        new = RestorePoint(point_id, when, kind, name, disks, size=size + len(blob),
                           source_point=str(begin["source_point"]), block_size=bs, key=key)
        if replaces:
            meta.points[-1] = new
            meta.facts["gc_pending"] = True  # the old manifest is garbage now
        else:
            meta.points.append(new)
        if key:
            meta.keys.setdefault(key, begin["envelope"])
        meta.facts.update(begin.get("facts", {}))
        if until is not None:
            locks.lock_facts(meta)[point_id] = until.isoformat()
        if begin.get("repaired"):
            meta.facts.pop("repair", None)
        repo.save(meta)  # the commit point
        self.end.send_json(t.DONE, {"point": point_id, "file": name, "size": size + len(blob),
                                    "written": w.written + len(blob), "local": w.reused,
                                    "resumed": 0, "busy": self.busy})


class _PointWriter:
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


__all__ = ["S3TargetMover", "S3Error", "verify_payload", "Machine"]
