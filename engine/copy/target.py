"""The target data mover: receives a point over the stream and writes it.

It answers the source's digest list with the blocks it already holds — in the
partial file a killed run left behind (resume), or with WAN acceleration
anywhere in its repository (its global cache) — and rebuilds those from its
own files, so only missing blocks travel. The point becomes visible only when
its file is durable and the metadata file has been replaced.
"""

from __future__ import annotations

import json
import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.copy import frames as fr
from engine.copy import transport as t
from engine.copy.guard import floor_until
from engine.copy.payloads import CheckAnswer, Corrupt, Done, HelloReply
from engine.keys import valid_key_id
from engine.model import DiskInfo, Kind, MachineMeta, Method, RestorePoint
from engine.repository.container import (
    FLAG_ZERO,
    Container,
    ContainerError,
    ContainerWriter,
    Entry,
)
from engine.repository.damage import DamagedBlocks
from engine.repository.locks import COPY_LOCK_WAIT
from engine.repository.metadata import MetadataError, meta_to_dict, point_record
from engine.repository.repository import Repository, point_file_name
from engine.repository.resolve import PointView

if TYPE_CHECKING:
    from engine.copy.guard import Floor

RESUME = "resume.json"
log = logging.getLogger("ferry.target")
_DIG = t._BLOCK


@dataclass
class DigestCache:
    """(chain key, digest) -> (file, entry) over the target's own files (the WAN global
    cache). A sealed payload opens only with its own chain's key, so reuse never
    crosses keys; plaintext files share the key "" (keys.py: why per-chain keys)."""

    where: dict[str, dict[bytes, tuple[Path, Entry]]] = field(default_factory=dict)

    def add_container(self, path: Path, state: str | None = None, key: str = "") -> None:
        try:
            with Container(path, state=state) as c:
                where = self.view(key)
                for d in c.disks.values():
                    for e in d.blocks.values():
                        if e.flags != FLAG_ZERO:
                            where.setdefault(e.digest, (path, e))
        except Exception:  # noqa: BLE001 - a damaged file simply is no cache
            return

    def view(self, key: str) -> dict[bytes, tuple[Path, Entry]]:
        """digest -> (file, entry) of the files sealed with `key` ("" = plaintext)."""
        return self.where.setdefault(key, {})

    @classmethod
    def of_job(cls, repo: Repository, job: str) -> DigestCache:
        cache = cls()
        for j, m in repo.machines(job):
            meta = repo.try_load(j, m)
            for p in meta.points if meta else []:
                cache.add_container(repo.machine_dir(j, m) / p.file, p.id, p.key)
        return cache


def sweep_leftovers(repo: Repository, job: str, machine: str, *, keep_partial: bool) -> list[str]:
    """The end of a machine's run: delete what no committed point names (a killed
    run's metadata temp file, unnamed backup files, orphans of a deleted chain) and,
    unless `keep_partial`, the partial point and its resume.json too (the run copied
    everything it planned, so nothing will resume it). `keep_partial` is for a run
    that left points uncopied (the copy window was closed): the next run resumes them.

    Under the exclusive chain lock; nothing is swept when the metadata cannot be read
    (it names nothing then, and the chain is `ferry check`'s to judge). Returns the
    names removed."""
    with repo.lock(job, machine, exclusive=True, wait=COPY_LOCK_WAIT):
        try:
            meta = repo.try_load(job, machine)
        except MetadataError:
            return []
        if meta is None:
            return []
        marker = repo.machine_dir(job, machine) / RESUME
        keep: set[str] = set()
        if marker.exists():
            partial = _partial_name(marker) if keep_partial else None
            if partial is not None:
                keep = {RESUME, f"{partial}.part", f"{partial}.part.journal"}
        removed = repo.sweep(meta, job, machine, keep_also=frozenset(keep))
        if marker.exists() and RESUME not in keep:
            marker.unlink()
            removed.append(RESUME)
    if removed:
        log.info("%s/%s: swept leftovers: %s", job, machine, ", ".join(sorted(removed)))
    return removed


def _partial_name(marker: Path) -> str | None:
    """The file name resume.json names (None when it is unreadable or names no plain file)."""
    try:
        name = json.loads(marker.read_text()).get("file")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        return None
    return name


@dataclass
class Grant:
    """What the peer of a stream may do (from its token, or the forced command)."""
    job: str | None = None  # None: any job (in-process, loopback plain, unrestricted ssh)
    append_only: bool = False
    who: str = "local"  # for the log: token id, "ssh", "loopback"


Wanted = dict[tuple[int, int], tuple[int, bytes]]  # (disk, block) -> (raw size, digest) asked for
# a received block waiting for its check: disk name, block, digest, raw, flags, payload, check
_Checked = tuple[str, int, bytes, int, int, memoryview, "Future[None] | None"]


class TargetMover:
    """Serves one stream: a HELLO, then any number of points, then BYE.

    `remote`: the peer is another host (`ferry mover`): its errors are scrubbed of
    server paths, and `grant` bounds what it may touch. `authorize` (remote TLS) turns
    the HELLO's token into a grant, or refuses it."""

    def __init__(self, repo: Repository, end: t.Endpoint, *, remote: bool = False,
                 grant: Grant | None = None,
                 authorize: Callable[[object, str], Grant] | None = None,
                 policy: Floor | None = None,
                 hello_timeout: float = 30.0):
        self.repo = repo
        self.end = end
        self.remote = remote
        self.grant = grant or Grant()
        self.authorize = authorize
        self.hello_timeout = hello_timeout
        self.policy = policy  # the mover's retention floor (engine.copy.guard), remote only
        self.busy = 0.0  # seconds spent writing (the 'target' stage)
        self._cache: DigestCache | None = None  # WAN global cache, built on first use

    def serve(self) -> None:
        self.job = self.machine = ""
        try:
            hello = self.end.expect(t.HELLO, timeout=self.hello_timeout if self.remote else None)
            obj = fr.json_payload(hello.payload, "HELLO")
            if obj.get("version") != t.PROTOCOL_VERSION:
                raise fr.Refused(f"protocol version {obj.get('version')} not supported")
            session = obj.get("session") is True and self.remote
            if session:  # the job stream of a remote run (engine.copy.jobsession)
                self.job = fr.name(obj.get("job"), "job name")
            else:
                self.job, self.machine = fr.hello(obj)
            if self.authorize is not None:
                self.grant = self.authorize(obj.get("token"), self.job)
            if self.grant.job is not None and self.grant.job != self.job:
                raise fr.Refused(f"this credential is for job {self.grant.job!r}, "
                                 f"not {self.job!r}")
            if session:
                from engine.copy.jobsession import serve_session

                serve_session(self)
                return
            if self.remote:
                log.info("session: job %s machine %s (%s%s)", self.job, self.machine,
                         self.grant.who, ", append-only" if self.grant.append_only else "")
            self.end.send_json(t.HELLO, HelloReply(t.PROTOCOL_VERSION,
                                                   self.grant.append_only).to_json())
            while True:
                f = self.end.recv()
                if f.type == t.BYE:
                    return
                handler = {t.BEGIN: self._point, t.STATE: self._state, t.RETAIN: self._retain,
                           t.CHECK: self._check, t.SWEEP: self._sweep,
                           t.PROVE: self._prove, t.REPAIR: self._repair}.get(f.type)
                if handler is None:
                    raise fr.Refused(f"unexpected frame {t.NAMES.get(f.type, f.type)}")
                handler(fr.json_payload(f.payload, t.NAMES[f.type]))
        except t.StreamError as exc:
            if self.remote:
                log.info("stream of %s/%s ended: %s", self.job or "-", self.machine or "-",
                         fr.scrub(str(exc), self.repo.path))
            return
        except Exception as exc:  # noqa: BLE001 - reported to the source side, then end
            from engine.errors import one_line

            msg = one_line(exc)
            if self.remote:
                msg = fr.scrub(msg, self.repo.path)
                level = logging.WARNING if isinstance(exc, fr.Refused) else logging.ERROR
                log.log(level, "refused %s/%s: %s", self.job or "-", self.machine or "-", msg)
            try:
                self.end.send_json(t.ERROR, {"message": msg})
            except t.StreamError:
                pass
        finally:  # wakes a source blocked on this stream (no wait outlives its peer)
            self.end.close()

    def _state(self, _: dict[str, Any]) -> None:
        """The machine's chain and its latest point's digests (for the planner)."""
        meta = self.repo.try_load(self.job, self.machine)
        head = meta_to_dict(meta) if meta else {}
        pending = self._pending_key()
        if pending:  # a killed run's partial point is sealed with this key: reuse it
            head["resume"] = pending
        parts = [json.dumps(head or None).encode(), b"\n"]
        if meta and meta.points:
            folder = self.repo.machine_dir(self.job, self.machine)
            with self.repo.lock(self.job, self.machine, exclusive=False, wait=COPY_LOCK_WAIT), \
                    PointView(folder, meta, meta.points[-1]) as view:
                for i, d in enumerate(view.disks):
                    for b, dg in view.digests(d.name).items():
                        parts.append(t.STATE_ENTRY.pack(i, b, dg))
        self.end.send(t.encode(t.STATE, b"".join(parts)))

    def _pending_key(self) -> dict[str, Any] | None:
        """The plan and wrapped chain key of a partial point (resume.json), if any."""
        marker = self.repo.machine_dir(self.job, self.machine) / RESUME
        try:
            old = json.loads(marker.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(old, dict) or not old.get("key"):
            return None
        return {"plan": old.get("plan"), "key": old["key"], "envelope": old.get("envelope")}

    def _retain(self, request: dict[str, Any]) -> None:
        from engine.copy.retain import apply_retention

        self._attributes(lift=True)
        try:
            if self.remote:  # the target decides (its floor, an append-only credential)
                from engine.copy.guard import guarded_retain

                answer = guarded_retain(self, request, background=False)
            else:
                answer = {"actions": apply_retention(self.repo, self.job, self.machine,
                                                     {**request, "background": False})}
        except DamagedBlocks as exc:  # recorded: the source may still have them
            self._attributes(lift=False)
            self.end.send_json(t.RETAIN, {"actions": [], "damaged": exc.blocks,
                                          "message": str(exc)})
            return
        self._attributes(lift=False)
        # the end of the machine's run: what no committed point names goes (never a
        # point, so also when retention was refused or the credential is append-only)
        if request.get("sweep") in ("all", "keep-partial"):
            sweep_leftovers(self.repo, self.job, self.machine,
                            keep_partial=request["sweep"] == "keep-partial")
        self.end.send_json(t.RETAIN, answer)

    def _sweep(self, request: dict[str, Any]) -> None:
        """Background retention (`engine.copy.background`): expired flags, freed files."""
        from engine.copy.retain import apply_retention

        self._attributes(lift=True)
        if self.remote:
            from engine.copy.guard import guarded_retain

            answer = guarded_retain(self, request, background=True)
            self._attributes(lift=False)
            self.end.send_json(t.SWEEP, answer)
            return
        actions = apply_retention(self.repo, self.job, self.machine,
                                  {**request, "background": True})
        self._attributes(lift=False)
        self.end.send_json(t.SWEEP, {"actions": actions})

    def _repair(self, request: dict[str, Any]) -> None:
        from engine.copy.repair import target_repair

        answer = target_repair(self.repo, self.job, self.machine, self.end, request)
        self.end.send_json(t.REPAIR, answer)

    def _attributes(self, lift: bool) -> None:
        """The immutable attribute (engine.repository.immutable) of points that record an
        immutability: lifted when it passed before retention, set after it."""
        from engine.repository import immutable
        from engine.repository.locks import LockBusy

        try:  # never waits: a busy chain is the retention pass's to report
            with self.repo.lock(self.job, self.machine, exclusive=True, wait=0):
                try:
                    meta = self.repo.try_load(self.job, self.machine)
                except MetadataError:
                    return
                if meta is None or not meta.facts.get("immutable_until"):
                    return
                folder = self.repo.machine_dir(self.job, self.machine)
                if lift:
                    immutable.lift_expired(folder, meta)
                else:
                    immutable.hold(folder, meta)
        except LockBusy:
            return

    def _prove(self, request: dict[str, Any]) -> None:
        """The stored payloads of a few blocks of a committed point: the source checks
        them against its own digests, so a target cannot answer HAVE for data it lacks."""
        pid = fr.point_id(request.get("point"))
        asks = request.get("blocks")
        if not isinstance(asks, list) or len(asks) > fr.MAX_PROVE:
            raise fr.Refused(f"PROVE: at most {fr.MAX_PROVE} blocks")
        meta = self.repo.try_load(self.job, self.machine)
        point = next((p for p in meta.points if p.id == pid), None) if meta else None
        if meta is None or point is None:
            raise fr.Refused("PROVE: no such point")
        folder = self.repo.machine_dir(self.job, self.machine)
        parts = []
        with self.repo.lock(self.job, self.machine, exclusive=False, wait=COPY_LOCK_WAIT), \
                PointView(folder, meta, point) as view:
            for ask in asks:
                if not (isinstance(ask, list) and len(ask) == 2 and isinstance(ask[0], int)
                        and isinstance(ask[1], int) and 0 <= ask[0] < len(view.disks)):
                    raise fr.Refused("PROVE: a block is not [disk index, block]")
                loc = view.blocks(view.disks[ask[0]].name).get(ask[1])
                if loc is None or loc.entry.flags == FLAG_ZERO:
                    parts.append(_PROOF.pack(0, FLAG_ZERO))
                    continue
                stored = view.read_stored(loc)
                parts += [_PROOF.pack(len(stored), loc.entry.flags), bytes(stored)]
        self.end.send(t.encode(t.PROVE, b"".join(parts)))

    def _check(self, _: dict[str, Any]) -> None:
        from engine.health import check_machine

        res = check_machine(self.repo, self.job, self.machine)
        if res.corrupt:
            from engine.repository.damage import add_records

            with self.repo.lock(self.job, self.machine, exclusive=True, wait=COPY_LOCK_WAIT):
                meta = self.repo.load(self.job, self.machine)
                meta.facts["repair"] = sorted({(c.disk, c.block) for c in res.corrupt})
                add_records(meta, [c.record() for c in res.corrupt if c.digest and c.point])
                self.repo.save(meta)
        self.end.send_json(t.CHECK, CheckAnswer(
            [Corrupt(c.disk, c.block, c.file, c.reason) for c in res.corrupt],
            [c.record() for c in res.corrupt if c.digest and c.point], res.errors).to_json())

    # -- one point -------------------------------------------------------------------
    def _point(self, begin: dict[str, Any]) -> None:
        repo, job, machine = self.repo, self.job, self.machine
        fr.begin(begin)
        if begin.get("replaces") and self.grant.append_only:
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
        repo, job, machine = self.repo, self.job, self.machine
        meta = repo.try_load(job, machine)
        if not begin.get("replaces") and meta and any(p.id == begin["point"] for p in meta.points):
            raise fr.Refused("BEGIN: the chain already has that point id")
        base = begin.get("base")
        latest = meta.points[-1].id if meta and meta.points else None
        if base != latest:
            raise t.StreamError(f"target chain moved: expected base {base}, have {latest}")
        kind = Kind(begin["kind"])
        when = datetime.fromisoformat(begin["time"])
        disks = [DiskInfo(d["name"], d["size"]) for d in begin["disks"]]
        names = [d.name for d in disks]
        bs = begin["block_size"]
        key = self._point_key(meta, begin, kind)
        writer, have_blocks, name, point_id = self._open_writer(folder, begin, kind, when, names, bs)
        for d in disks:
            writer.set_disk(d.name, d.size)
        for dname, block, e in writer.resumed_entries():
            if dname in writer.disks:
                writer.put_entry(dname, block, e)
                if e.flags != FLAG_ZERO:
                    writer.dedup.setdefault(e.digest, e)
        cache = self._wan_cache() if begin.get("wan") else DigestCache()
        stats = {"local": 0, "resumed": 0}
        rules = fr.BlockRules([d.size for d in disks], bs)
        try:
            suspect = {(d, b) for d, b in begin.get("repaired", [])}
            wanted: Wanted = {}
            self._digests(writer, names, have_blocks, cache.view(key), stats, suspect,
                          rules, wanted)
            self._blocks(writer, names, wanted)
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
            imm = floor_until(begin.get("immutable_until"), when, self.policy)
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
        if self._cache is not None:  # the next point of this stream may reuse these blocks
            self._cache.add_container(folder / name, point_id, key)
        if self.remote:
            log.info("point committed: %s/%s %s %s (%d bytes written)", job, machine, kind.value,
                     point_id, writer.written)
        self.end.send_json(t.DONE, Done(point_id, name, size, writer.written, stats["local"],
                                        stats["resumed"], self.busy).to_json())

    def _info(self, meta: MachineMeta | None, begin: dict[str, Any], point_id: str, when: datetime,
              kind: Kind, name: str, disks: list[DiskInfo], key: str) -> dict[str, Any]:
        """The point's record for its file's index (`ferry check --rebuild`)."""
        m = MachineMeta(self.job, self.machine, begin["block_size"],
                        meta.method if meta else Method.FOREVER_FORWARD,
                        begin.get("compression", "auto"),
                        keys={key: begin["envelope"]} if key else {})
        p = RestorePoint(point_id, when, kind, name, disks, source_point=begin["source_point"],
                         block_size=begin["block_size"], key=key)
        return point_record(m, p)

    def _point_key(self, meta: MachineMeta | None, begin: dict[str, Any], kind: Kind) -> str:
        return point_key(meta, begin, kind)

    def _wan_cache(self) -> DigestCache:
        """The job's digest cache, read once per stream (points of one stream only add)."""
        if self._cache is None:
            self._cache = DigestCache.of_job(self.repo, self.job)
        return self._cache

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
                log.warning("%s/%s: partial file not resumed: %s", self.job, self.machine, exc)
            except (OSError, ValueError, KeyError, TypeError):
                pass
            self.repo.sweep(self.repo.try_load(self.job, self.machine), self.job, self.machine)
        point_id = begin["point"]
        name = point_file_name(self.machine, when, point_id, kind)
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
                f = self.end.expect(t.DIGESTS)
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
                                        "%s; fetched from the source", self.job, self.machine,
                                        block, name, path.name, problem)
                            del cache[digest]
                            wanted[(disk, block)] = (raw, digest)
                            bits.append(0)
                            continue
                        writer.put(name, block, digest, e.raw, e.flags, payload)
                        self.busy += time.perf_counter() - t0
                        stats["local"] += 1
                        bits.append(1)
                    else:
                        wanted[(disk, block)] = (raw, digest)
                        bits.append(0)
                self.end.send(t.encode(t.HAVE, bytes(bits)))
        finally:
            for c in readers.values():
                c.close()

    def _blocks(self, writer: ContainerWriter, names: list[str], wanted: Wanted) -> None:
        """Store the BLOCK frames of the blocks asked for, each checked first (frames.py:
        only a block answered missing, with the digest announced, that matches it).

        A remote mover checks up to VERIFY_AHEAD blocks in a small pool (zstd and xxh3
        release the GIL) while it receives the next ones; each is written, in order,
        only after its check passed."""
        pending: deque[_Checked] = deque()
        try:
            while True:
                f = self.end.recv()
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
                if not self.remote:
                    fr.verify_block(payload, raw, flags, digest)
                    self._write_checked(writer, *item, None)
                    continue
                pending.append((*item, _verify_pool().submit(fr.verify_block, payload, raw,
                                                             flags, digest)))
                if len(pending) >= VERIFY_AHEAD:
                    self._write_checked(writer, *pending.popleft())
        finally:
            for *_, fut in pending:  # a failed point: let the checks end, write nothing
                if fut is not None:
                    fut.cancel()

    def _write_checked(self, writer: ContainerWriter, name: str, block: int, digest: bytes,
                       raw: int, flags: int, payload: bytes | memoryview,
                       fut: Future[None] | None) -> None:
        if fut is not None:
            fut.result()  # raises Refused: the block does not match its digest
        t0 = time.perf_counter()
        writer.put(name, block, digest, raw, flags, payload)
        self.busy += time.perf_counter() - t0


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



_NONE = Entry(0, 0, 0, FLAG_ZERO, b"")
_PROOF = struct.Struct("<IB")  # stored length, flags; then the stored payload


def pack_digest(disk: int, block: int, raw: int, flags: int, digest: bytes) -> bytes:
    return _DIG.pack(disk, block, raw, flags, digest)
