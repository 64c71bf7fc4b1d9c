"""The target data mover: one stream's requests against a target repository.

After HELLO (the credential, its job) it serves STATE (the chain and its latest
point's digests), BEGIN..DONE (one point, `engine.copy.receive`: only missing blocks
travel, each checked before it is written, visible only once durable and named by
the metadata), RETAIN and SWEEP (retention, under the mover's floor when remote),
CHECK, PROVE and REPAIR, and sweeps the leftovers a machine's run leaves.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.copy import frames as fr
from engine.copy import transport as t
from engine.copy.payloads import CheckAnswer, Corrupt, HelloReply
from engine.repository.container import (
    FLAG_ZERO,
    Container,
    Entry,
)
from engine.repository.damage import DamagedBlocks
from engine.repository.locks import COPY_LOCK_WAIT
from engine.repository.metadata import MetadataError, meta_to_dict
from engine.repository.repository import Repository
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


# a received block waiting for its check: disk name, block, digest, raw, flags, payload, check


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
        self.cache: DigestCache | None = None  # WAN global cache, built on first use

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
        from engine.copy.receive import PointReceiver

        PointReceiver(self).point(begin)

    def wan_cache(self) -> DigestCache:
        """The job's digest cache, read once per stream (points of one stream only add)."""
        if self.cache is None:
            self.cache = DigestCache.of_job(self.repo, self.job)
        return self.cache

_PROOF = struct.Struct("<IB")  # stored length, flags; then the stored payload


def pack_digest(disk: int, block: int, raw: int, flags: int, digest: bytes) -> bytes:
    return _DIG.pack(disk, block, raw, flags, digest)
