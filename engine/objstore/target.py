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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from engine.blockio import limit_arenas
from engine.copy import transport as t
from engine.copy.receive import expect_base, point_key
from engine.model import DiskInfo, Kind, MachineMeta, Method, RestorePoint
from engine.objstore import locks
from engine.objstore.generations import hold_chain
from engine.objstore.index import BlockIndex, new_epoch
from engine.objstore.manifest import (
    Manifest,
    ManifestError,
    ManifestLayer,
    block_name,
    manifest_name,
    object_name,
    split_loc,
)
from engine.objstore.repo import EPOCH, S3Repository
from engine.objstore.store import S3Error
from engine.objstore.upload import PointWriter
from engine.repository.container import (
    Entry,
)
from engine.repository.metadata import meta_to_dict
from engine.repository.repository import safe_name

log = logging.getLogger("ferry.s3")
_DIG = t._BLOCK
UPLOAD_THREADS = 16  # lock extensions are many small requests; packs are few


class ObjectLockMissing(Exception):
    """immutable_days set on a bucket created without Object Lock."""


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
        w = PointWriter(self, disks, bs, required, sealed=bool(key))
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


__all__ = ["S3TargetMover", "S3Error", "Machine"]
