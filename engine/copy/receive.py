"""One point arriving at a target mover: BEGIN, the DIGESTS/HAVE exchange, the BLOCKs,
COMMIT, DONE.

The point is written into a new file (or the partial one a killed run of the same
plan left, `resume.json`), with what the target already holds taken from its own
files (the WAN cache, every copy re-read and checked) and every BLOCK checked
against its digest before it is written (a remote mover checks a few ahead in a
small pool). It becomes visible only when its file is durable and the metadata
file is replaced; a refused point leaves no file, no marker and no new folder.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.blockio import tune_malloc
from engine.copy import frames as fr
from engine.copy import transport as t
from engine.copy.guard import floor_until
from engine.copy.payloads import Done
from engine.copy.target import RESUME, DigestCache
from engine.immutability import retained_immutable
from engine.keys import valid_key_id
from engine.model import DiskInfo, Kind, MachineMeta, Method, RestorePoint
from engine.repository.container import FLAG_ZERO, Container, ContainerError, ContainerWriter, Entry
from engine.repository.fileformat import stored_check
from engine.repository.locks import COPY_LOCK_WAIT
from engine.repository.metadata import point_record
from engine.repository.repository import point_file_name

if TYPE_CHECKING:
    from engine.copy.target import TargetMover

log = logging.getLogger("ferry.target")
_DIG = t._BLOCK
Wanted = dict[tuple[int, int], tuple[int, bytes]]  # (disk, block) -> (raw size, digest) asked for
_Checked = tuple[str, int, bytes, int, int, memoryview, "Future[int] | None"]
_NONE = Entry(0, 0, 0, FLAG_ZERO, b"")


class PointReceiver:
    """One BEGIN..DONE exchange of a target mover's stream (`m`)."""

    def __init__(self, m: TargetMover) -> None:
        self.m = m

    def point(self, begin: dict[str, Any]) -> None:
        repo, job, machine = self.m.repo, self.m.job, self.m.machine
        fr.begin(begin)
        if begin.get("replaces") and self.m.grant.append_only:
            raise fr.Refused("an append-only credential cannot replace a point")
        folder = repo.machine_dir(job, machine)
        made = [d for d in (folder.parent, folder) if not d.exists()]
        folder.mkdir(parents=True, exist_ok=True)
        try:
            self._point_in(begin, folder)
        except fr.Refused:
            for d in reversed(made):  # a refused stream leaves no trace, not even folders
                try:
                    d.rmdir()
                except OSError:
                    pass
            raise

    def _point_in(self, begin: dict[str, Any], folder: Path) -> None:
        repo, job, machine = self.m.repo, self.m.job, self.m.machine
        meta = repo.try_load(job, machine)
        if not begin.get("replaces") and meta and any(p.id == begin["point"] for p in meta.points):
            raise fr.Refused("BEGIN: the chain already has that point id")
        if begin.get("replaces") and meta and retained_immutable(
                meta.facts, str(begin["replaces"]),
                self.m.policy.immutable_days if self.m.policy else 0):
            raise fr.Refused("BEGIN: the point to replace is immutable; its files stay as "
                             "they are")
        expect_base(meta, begin)
        kind = Kind(begin["kind"])
        when = datetime.fromisoformat(begin["time"])
        disks = [DiskInfo(d["name"], d["size"]) for d in begin["disks"]]
        names = [d.name for d in disks]
        bs = begin["block_size"]
        key = point_key(meta, begin, kind)
        writer, have_blocks, name, point_id = self._open_writer(folder, begin, kind, when, names, bs)
        for d in disks:
            writer.set_disk(d.name, d.size)
        for dname, block, e in writer.resumed_entries():
            if dname in writer.disks:
                writer.put_entry(dname, block, e)
                if e.flags != FLAG_ZERO:
                    writer.dedup.setdefault(e.digest, e)
        cache = self.m.wan_cache() if begin.get("wan") else DigestCache()
        stats = {"local": 0, "resumed": 0}
        rules = fr.BlockRules([d.size for d in disks], bs)
        try:
            suspect = {(d, b) for d, b in begin.get("repaired", [])}
            wanted: Wanted = {}
            self._digests(writer, names, have_blocks, cache.view(key), stats, suspect,
                          rules, wanted)
            # this process's own source mover decoded and checked every block it sends
            # (it recompresses them): checking its compressor's output again is not asked
            self._blocks(writer, names, wanted,
                         checked=not self.m.remote and begin.get("decoded") is True)
            size = writer.commit(state=point_id, info=self._info(meta, begin, point_id, when,
                                                                  kind, name, disks, key))
        except BaseException as exc:
            # a failed write leaves nothing to resume, nor does a refused (hostile) stream
            keep = not isinstance(exc, fr.Refused)
            if not writer.abort(keep_partial=keep):
                (folder / RESUME).unlink(missing_ok=True)
            raise
        with repo.lock(job, machine, exclusive=True, wait=COPY_LOCK_WAIT):
            meta = repo.try_load(job, machine) or MachineMeta(
                job, machine, bs, Method.FOREVER_FORWARD, begin.get("compression", "auto"))
            meta.block_size = bs
            new = RestorePoint(point_id, when, kind, name, disks, size=size,
                               source_point=begin["source_point"], block_size=bs, key=key)
            if begin.get("replaces"):
                # an active GFS full of the latest point: it takes that point's place
                # (same id and state); the old file, now unnamed, goes with the sweep
                last = meta.points[-1] if meta.points else None
                if last is None or last.id != begin["replaces"] or last.id != point_id \
                        or last.source_point != begin["source_point"]:
                    writer_path = folder / name
                    writer_path.unlink(missing_ok=True)
                    raise t.StreamError(f"cannot replace {begin['replaces']}: not the latest "
                                        f"point of the same source point")
                meta.points[-1] = new
            else:
                meta.points.append(new)
            if key:
                meta.keys.setdefault(key, begin["envelope"])
            meta.facts.update(begin.get("facts", {}))
            # the mover's floor (`ferry mover --immutable-days`) raises what the client asked
            imm = floor_until(begin.get("immutable_until"), when, self.m.policy)
            if imm is not None:  # retention keeps it until then
                ids = {p.id for p in meta.points}
                old = meta.facts.get("immutable_until")
                kept = {k: v for k, v in old.items() if k in ids} if isinstance(old, dict) else {}
                meta.facts["immutable_until"] = {**kept, point_id: imm}
            if begin.get("repaired"):
                meta.facts.pop("repair", None)
            repo.save(meta)
            (folder / RESUME).unlink(missing_ok=True)
            repo.sweep(meta, job, machine)
        if self.m.cache is not None:  # the next point of this stream may reuse these blocks
            self.m.cache.add_container(folder / name, point_id, key)
        if self.m.remote:
            log.info("point committed: %s/%s %s %s (%d bytes written)", job, machine, kind.value,
                     point_id, writer.written)
        self.m.end.send_json(t.DONE, Done(point_id, name, size, writer.written, stats["local"],
                                        stats["resumed"], self.m.busy).to_json())

    def _info(self, meta: MachineMeta | None, begin: dict[str, Any], point_id: str, when: datetime,
              kind: Kind, name: str, disks: list[DiskInfo], key: str) -> dict[str, Any]:
        """The point's record for its file's index (`ferry check --rebuild`)."""
        m = MachineMeta(self.m.job, self.m.machine, begin["block_size"],
                        meta.method if meta else Method.FOREVER_FORWARD,
                        begin.get("compression", "auto"),
                        keys={key: begin["envelope"]} if key else {})
        p = RestorePoint(point_id, when, kind, name, disks, source_point=begin["source_point"],
                         block_size=begin["block_size"], key=key)
        return point_record(m, p)

    def _open_writer(self, folder: Path, begin: dict[str, Any], kind: Kind, when: datetime,
                     names: list[str], bs: int
                     ) -> tuple[ContainerWriter, set[tuple[str, int]], str, str]:
        """A new file, or the partial one a killed run of the same plan left."""
        marker = folder / RESUME
        plan = {k: begin[k] for k in ("source_point", "kind", "base", "block_size")}
        plan["key"] = begin.get("key", "")
        if marker.exists():
            try:
                old = json.loads(marker.read_text())
                if old["plan"] == plan and old["disks"] == names:
                    w, have = ContainerWriter.resume(folder / old["file"], kind.value, bs)
                    return w, have, old["file"], old["point"]
            except ContainerError as exc:
                log.warning("%s/%s: partial file not resumed: %s", self.m.job, self.m.machine, exc)
            except (OSError, ValueError, KeyError, TypeError):
                pass
            self.m.repo.sweep(self.m.repo.try_load(self.m.job, self.m.machine), self.m.job, self.m.machine)
        point_id = begin["point"]
        name = point_file_name(self.m.machine, when, point_id, kind)
        marker.write_text(json.dumps({"plan": plan, "disks": names, "file": name,
                                      "point": point_id, "key": plan["key"],
                                      "envelope": begin.get("envelope")}))
        w = ContainerWriter(folder / name, kind.value, bs)
        w.enable_journal(names)
        return w, set(), name, point_id

    def _digests(self, writer: ContainerWriter, names: list[str],
                 have_blocks: set[tuple[str, int]], cache: dict[bytes, tuple[Path, Entry]],
                 stats: dict[str, int], suspect: set[tuple[int, int]],
                 rules: fr.BlockRules, wanted: Wanted) -> None:
        """Answer DIGESTS batches with HAVE bitmaps until the empty batch; `wanted`
        collects the blocks answered 0 (the only BLOCK frames the point accepts)."""
        readers: dict[Path, Container] = {}
        try:
            while True:
                f = self.m.end.expect(t.DIGESTS)
                if not f.payload:
                    return
                if len(f.payload) % _DIG.size:
                    raise fr.Refused("DIGESTS: not a whole number of entries")
                bits = bytearray()
                for disk, block, raw, flags, digest in _DIG.iter_unpack(f.payload):
                    rules.entry(disk, block, raw, flags)
                    name = names[disk]
                    if flags == FLAG_ZERO:
                        writer.put(name, block, digest, raw, FLAG_ZERO)
                        bits.append(1)
                    elif (name, block) in have_blocks and \
                            writer.disks[name].blocks.get(block, _NONE).digest == digest:
                        stats["resumed"] += 1
                        bits.append(1)
                    elif digest in writer.dedup and writer.dedup[digest].raw == raw:
                        e = writer.dedup[digest]
                        writer.put(name, block, digest, raw, e.flags)
                        bits.append(1)
                    elif digest in cache and (name, block) not in suspect:
                        path, e = cache[digest]
                        c = readers.get(path) or readers.setdefault(path, Container(path))
                        t0 = time.perf_counter()
                        payload, problem = c.read_verified(e)
                        if problem:  # never copied: the source sends the block instead
                            log.warning("%s/%s: WAN cache copy of block %s of disk %s in %s: "
                                        "%s; fetched from the source", self.m.job, self.m.machine,
                                        block, name, path.name, problem)
                            del cache[digest]
                            wanted[(disk, block)] = (raw, digest)
                            bits.append(0)
                            continue
                        writer.put(name, block, digest, e.raw, e.flags, payload)
                        self.m.busy += time.perf_counter() - t0
                        stats["local"] += 1
                        bits.append(1)
                    else:
                        wanted[(disk, block)] = (raw, digest)
                        bits.append(0)
                self.m.end.send(t.encode(t.HAVE, bytes(bits)))
        finally:
            for c in readers.values():
                c.close()

    def _blocks(self, writer: ContainerWriter, names: list[str], wanted: Wanted,
                checked: bool = False) -> None:
        """Store the BLOCK frames of the blocks asked for, each checked first (frames.py:
        only a block answered missing, with the digest announced, that matches it).

        `checked`: the in-process source decoded each block, matched it to its digest and
        compressed it again right before sending, as `ferry backup` stores what it read;
        the payload is then stored as sent (the writer's xxh3-64 is taken over the bytes
        it writes), without decoding it a second time.

        A remote mover checks up to VERIFY_AHEAD blocks in a small pool (zstd and xxh3
        release the GIL) while it receives the next ones; each is written, in order,
        only after its check passed."""
        pending: deque[_Checked] = deque()
        if self.m.remote and wanted:
            # each frame is a fresh buffer of its size (and each check decompresses into
            # another): kept in the heap, not a new mmap whose pages fault in again
            tune_malloc()
        try:
            while True:
                f = self.m.end.recv()
                if f.type == t.COMMIT:
                    while pending:
                        self._write_checked(writer, *pending.popleft())
                    if wanted:
                        raise fr.Refused(f"COMMIT: {len(wanted)} block(s) answered missing "
                                         f"were never sent")
                    return
                if f.type in (t.ABORT, t.BYE):  # stopped or killed: the partial stays
                    raise t.StreamError("source aborted the point")
                if f.type != t.BLOCK:
                    raise fr.Refused(f"unexpected frame {t.NAMES.get(f.type, f.type)}")
                if len(f.payload) < _DIG.size:
                    raise fr.Refused("BLOCK: frame too short")
                disk, block, raw, flags, digest, payload = t.decode_block(f.payload)
                if wanted.pop((disk, block), None) != (raw, digest):
                    raise fr.Refused(f"BLOCK: block {block} of disk {disk} was not asked for "
                                     f"with that digest")
                if flags == FLAG_ZERO or flags not in fr._FLAGS:
                    raise fr.Refused(f"BLOCK: block {block}: bad flags {flags:#x}")
                item = (names[disk], block, digest, raw, flags, payload)
                if not self.m.remote:
                    if not checked:
                        fr.verify_block(payload, raw, flags, digest)
                    self._write_checked(writer, *item, None)
                    continue
                pending.append((*item, _verify_pool().submit(_verified_check, payload, raw,
                                                             flags, digest)))
                if len(pending) >= VERIFY_AHEAD:
                    self._write_checked(writer, *pending.popleft())
        finally:
            for *_, fut in pending:  # a failed point: let the checks end, write nothing
                if fut is not None:
                    fut.cancel()

    def _write_checked(self, writer: ContainerWriter, name: str, block: int, digest: bytes,
                       raw: int, flags: int, payload: bytes | memoryview,
                       fut: Future[int] | None) -> None:
        # the view is into its own frame's buffer (transport.read_payload, or the
        # in-process pipe's frame): nothing reuses it, so the writer keeps it uncopied
        check = None if fut is None else fut.result()  # raises Refused: digest mismatch
        t0 = time.perf_counter()
        writer.put(name, block, digest, raw, flags, payload, check=check, owned=True)
        self.m.busy += time.perf_counter() - t0


def _verified_check(payload: memoryview, raw: int, flags: int, dg: bytes) -> int:
    """In the verify pool: the block checked against its digest (Refused if not), and
    the checksum of its stored bytes the writer records (off the receiving thread)."""
    fr.verify_block(payload, raw, flags, dg)
    return stored_check(payload)


VERIFY_AHEAD = 8
_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _verify_pool() -> ThreadPoolExecutor:
    """The block checks of a mover's streams (2 threads: one per core here)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(2, "ferry-verify")
        return _POOL


def expect_base(meta: MachineMeta | None, begin: dict[str, Any]) -> None:
    """A point is added only on top of the chain's latest point, as the source planned it
    (another run may have moved the chain since the source read its state)."""
    base = begin.get("base")
    latest = meta.points[-1].id if meta and meta.points else None
    if base != latest:
        raise t.StreamError(f"target chain moved: expected base {base}, have {latest}")


def point_key(meta: MachineMeta | None, begin: dict[str, Any], kind: Kind) -> str:
    """The chain key id a point is sealed with ("" = plaintext), checked.

    The target cannot open keys; it only keeps a chain consistent: an increment
    uses its full's key, and a new key comes with its envelope (bounded in size).
    """
    key = begin.get("key") or ""  # absent or null: plaintext
    if not isinstance(key, str) or (key and not valid_key_id(key)):
        raise t.StreamError("BEGIN: bad chain key id")
    env = begin.get("envelope")
    if key and (not isinstance(env, dict) or len(json.dumps(env)) > 4096):
        raise t.StreamError("BEGIN: an encrypted point needs its key envelope")
    if kind != Kind.FULL:
        chain = meta.points[-1].key if meta and meta.points else ""
        if key != chain:
            raise t.StreamError("BEGIN: an increment must use its chain's key "
                                f"({chain or 'plaintext'}), not {key or 'plaintext'}")
    return key
