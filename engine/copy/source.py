"""The source data mover: reads a source point's blocks and streams what the target lacks.

Digests go first (they are in the source index: no data is read for them);
the target answers which blocks it already holds; only the rest are read,
verified against their digest (decompress + xxh3 in the block pool, so a
corrupt source block is never copied), recompressed when the job's level
differs from the source's, and sent in order.
"""

from __future__ import annotations

import json
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Set
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from engine.blockio import Compressor, decompressor, digest, tune_malloc
from engine.copy import transport as t
from engine.copy.control import MachineControl, RunControl, Stopped
from engine.copy.payloads import Done, Hello, HelloReply
from engine.copy.target import pack_digest
from engine.errors import FerryError
from engine.keys import OVERHEAD, ChainKey
from engine.model import Stats
from engine.repository.container import (
    FLAG_SEALED,
    FLAG_ZERO,
    Entry,
    decode_block,
    stored_problem,
)
from engine.repository.resolve import Located, PointView

BATCH = 8192
# blocks read, verified and encoded ahead of the one being sent (`_stream`): each holds its
# BLOCK frame (the stored or recompressed payload) until sent; the THREADS being worked on
# hold their stored payload, decoded block and (recompressing) new payload besides
IN_FLIGHT = 8
_PROOF = struct.Struct("<IB")  # as engine.copy.target answers PROVE
# one block to send: (disk index, block, where it is; None = the block became zero)
PlanItem = tuple[int, int, Located | None]


class SourceCorrupt(FerryError):
    """A source block does not match its digest: the copy must not propagate it."""


@dataclass
class TargetState:
    """What the target holds of this machine (from a STATE answer)."""

    meta: dict[str, Any] | None
    digests: dict[str, dict[int, bytes]] = field(default_factory=dict)
    resume: dict[str, Any] | None = None  # a killed run's partial point: its plan and chain key

    @property
    def latest(self) -> dict[str, Any] | None:
        return self.meta["points"][-1] if self.meta and self.meta["points"] else None


def request_state(end: t.Endpoint) -> TargetState:
    end.send_json(t.STATE, {})
    f = end.expect(t.STATE)
    head, _, rest = bytes(f.payload).partition(b"\n")
    meta = json.loads(head)
    resume = meta.pop("resume", None) if isinstance(meta, dict) else None
    meta = meta or None
    digests: dict[str, dict[int, bytes]] = {}
    if meta:
        names = [d["name"] for d in meta["points"][-1]["disks"]] if meta["points"] else []
        for disk, block, dg in t.STATE_ENTRY.iter_unpack(rest):
            digests.setdefault(names[disk], {})[block] = dg
    return TargetState(meta, digests, resume if isinstance(resume, dict) else None)


@dataclass
class Busy:
    """Busy seconds per stage, for the bottleneck line."""

    source: float = 0.0
    compress: float = 0.0
    stream: float = 0.0  # sending frames (not rate-limit waits: those are `throttled`)
    target: float = 0.0
    throttled: float = 0.0  # waiting for the job's rate limit


class RateLimit:
    """A token bucket on bytes sent (0 = unlimited); bursts of at most 0.1 s worth.

    One bucket per job run, shared by its tasks (`[transport] rate_limit` is the
    job's limit, not each task's): a taker reserves its bytes under the lock and
    sleeps outside it until they are paid for, so concurrent takers queue up.
    """

    def __init__(self, rate: int):
        self.rate = rate
        self.burst = rate * 0.1
        self._t = time.monotonic()
        self._tokens = 0.0
        self._lock = threading.Lock()

    def take(self, n: int) -> float:
        if not self.rate:
            return 0.0
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._t) * self.rate)
            self._t = now
            self._tokens -= n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)
        return wait


class SourceMover:
    """Sends points of one machine over one stream."""

    def __init__(self, end: t.Endpoint, pool: ThreadPoolExecutor, *, recompress: str | None,
                 control: RunControl | MachineControl,
                 progress: Callable[[Stats, Busy], None], rate: RateLimit | None = None,
                 on_hold: Callable[[str], None] | None = None,
                 on_resume: Callable[[], None] | None = None):
        self.end = end
        self.pool = pool
        self.comp = Compressor(recompress) if recompress else None
        self.control = control
        self.progress = progress
        self.rate = rate or RateLimit(0)
        self.on_hold, self.on_resume = on_hold, on_resume
        self.busy = Busy()
        self.held = 0.0  # seconds held by the operator
        self.throttled = 0.0  # seconds waiting for the rate limit
        self.to_read = 0  # raw bytes this task reads in all (grows as each point is planned)
        self.disks: dict[str, float] = {}  # disk -> share of its blocks covered, this point
        self.deadline: float | None = None  # monotonic end of the copy window
        self.key: ChainKey | None = None  # seals the blocks of the point being sent
        self.prove = 0  # blocks a remote target must prove it holds, per point (0: trusted)
        self.token: str | None = None  # the job's mover token (tls://), sent in HELLO
        self.append_only = False  # the target said this credential cannot delete
        # the target decodes each block and checks its digest before storing it: a payload
        # passed through as stored then needs only its stored-bytes check here
        self.target_decodes = False

    def target_digest(self, e: Entry) -> bytes:
        """The digest the target knows a block by: keyed when the point is encrypted."""
        return self.key.digest(e.digest, e.raw) if self.key is not None else e.digest

    def target_digests(self, view: PointView) -> dict[str, dict[int, bytes]]:
        """Every disk's block digests as the target stores them (the next plan's base)."""
        return {d.name: {b: self.target_digest(loc.entry)
                         for b, loc in view.blocks(d.name).items()} for d in view.disks}

    def hello(self, job: str, machine: str) -> None:
        self.end.send_json(t.HELLO, Hello(job, machine, self.token).to_json())
        reply = HelloReply.parse(self.end.expect(t.HELLO, timeout=60).json())
        self.append_only = reply.append_only

    def plan_blocks(self, view: PointView, previous: dict[str, dict[int, bytes]] | None,
                    repair: Set[tuple[str, int]] = frozenset()) -> list[PlanItem]:
        """(disk index, block, Located | None) to send; None = the block became zero."""
        out: list[PlanItem] = []
        bs = view.block_size
        for i, d in enumerate(view.disks):
            blocks = view.blocks(d.name)
            if previous is None:
                out += [(i, b, loc) for b, loc in sorted(blocks.items())]
                continue
            prev = previous.get(d.name, {})
            nblocks = -(-d.size // bs)
            for b, loc in sorted(blocks.items()):
                if prev.get(b) != self.target_digest(loc.entry) or (d.name, b) in repair:
                    out.append((i, b, loc))
            out += [(i, b, None) for b in sorted(prev) if b < nblocks and b not in blocks]
        return out

    def send_point(self, view: PointView, begin: dict[str, Any], plan: list[PlanItem], stats: Stats,
                   logical: int = 0) -> Done:
        """Stream one point; returns the target's DONE answer.

        `stats.processed` advances from its value now by `logical` (the point's
        logical size) as the plan is worked through, so progress is continuous.
        """
        sent0 = self.end.sent
        base = stats.processed
        self.end.send_json(t.BEGIN, begin)
        missing: list[PlanItem] = []
        positions: list[int] = []
        for start in range(0, len(plan), BATCH):
            batch = plan[start:start + BATCH]
            packed = []
            for i, b, loc in batch:
                if loc is None:
                    packed.append(pack_digest(i, b, _raw_len(view, i, b), FLAG_ZERO, bytes(16)))
                else:
                    e = loc.entry
                    packed.append(pack_digest(i, b, e.raw, e.flags, self.target_digest(e)))
            self.end.send(t.encode(t.DIGESTS, b"".join(packed)))
            have = self.end.expect(t.HAVE).payload
            for n, (x, h) in enumerate(zip(batch, have, strict=True)):
                if not h:
                    missing.append(x)
                    positions.append(start + n)
        self.end.send(t.encode(t.DIGESTS, b""))
        stats.blocks += len(plan)
        self.to_read += sum(loc.entry.raw for _, _, loc in missing if loc is not None)
        self._coverage = _Coverage(view, plan, base, logical)
        self._stream(view, missing, positions, stats)
        stats.processed = base + logical
        self.disks = dict.fromkeys((d.name for d in view.disks), 1.0)
        self.end.send(t.encode(t.COMMIT, b""))
        done = Done.parse(self.end.expect(t.DONE).json())
        if self.prove:
            sent = {(i, b) for i, b, _ in missing}
            self._check_proof(view, done.point, sent)
        stats.transferred += self.end.sent - sent0
        stats.written += done.written
        self.busy.target += done.busy
        self.busy.stream, self.busy.throttled = self.end.busy, self.throttled
        return done

    def _check_proof(self, view: PointView, point: str, sent: set[tuple[int, int]]) -> None:
        """Ask the target for a random sample of the blocks it did not receive in this
        stream (it answered HAVE, or already held them) and check each against the
        source's own digest: a target that lies about holding data fails the run."""
        have = [(i, b, loc) for i, d in enumerate(view.disks)
                for b, loc in view.blocks(d.name).items()
                if loc.entry.flags != FLAG_ZERO and (i, b) not in sent]
        if not have:
            return
        import secrets  # only for remote targets (secrets pulls in hmac and OpenSSL)

        sample = secrets.SystemRandom().sample(have, min(self.prove, len(have)))
        self.end.send_json(t.PROVE, {"point": point, "blocks": [[i, b] for i, b, _ in sample]})
        proof = memoryview(self.end.expect(t.PROVE).payload)
        pos = 0
        for i, b, loc in sample:
            e = loc.entry
            try:
                n, flags = _PROOF.unpack_from(proof, pos)
                stored = proof[pos + _PROOF.size:pos + _PROOF.size + n]
                pos += _PROOF.size + n
                if len(stored) != n:
                    raise ValueError("short")
                ok = self._proven(stored, flags, e)
            except Exception:  # noqa: BLE001 - any malformed answer is a failed proof
                ok = False
            if not ok:
                raise SourceCorrupt(f"the target mover could not prove it holds block {b} of "
                                    f"disk {view.disks[i].name}: the copy is not trusted")

    def _proven(self, stored: memoryview, flags: int, e: Entry) -> bool:
        if flags == FLAG_ZERO:
            return False
        if flags & FLAG_SEALED:
            if self.key is None:
                return False
            base = flags & ~FLAG_SEALED
            payload = self.key.open(stored, self.key.digest(e.digest, e.raw), e.raw, base)
            flags = base
        else:
            payload = bytes(stored)  # a sample of a few blocks: the copy is cheap
        data = decode_block(payload, Entry(0, len(payload), e.raw, flags, e.digest), decompressor())
        return len(data) == e.raw and digest(data) == e.digest

    def _stream(self, view: PointView, missing: list[PlanItem], positions: list[int], stats: Stats) -> None:
        depth = IN_FLIGHT
        if missing:
            tune_malloc()  # the block buffers start now (the runner's pool leaves it to here)
        pending: deque[tuple[int, Future[tuple[bytes | bytearray, int]]]] = deque()
        self._last_progress = time.monotonic()
        for item, pos in zip(missing, positions, strict=True):
            held = self.control.checkpoint(self.on_hold)
            if held:
                self.held += held
                if self.on_resume:
                    self.on_resume()
            if self.deadline is not None and time.monotonic() >= self.deadline:
                raise Stopped("the copy window closed before the transfer finished")
            pending.append((pos, self.pool.submit(self._prepare, view, item)))
            if len(pending) >= depth:
                self._send_one(*pending.popleft(), stats)
        while pending:
            self._send_one(*pending.popleft(), stats)
        self.progress(stats, self.busy)

    def _send_one(self, pos: int, future: Future[tuple[bytes | bytearray, int]],
                  stats: Stats) -> None:
        frame, raw = future.result()
        self.throttled += self.rate.take(len(frame))
        self.end.send(frame)
        stats.read += raw
        stats.blocks_sent += 1
        stats.processed = self._coverage.processed(pos)
        self.disks = self._coverage.disks
        self.busy.stream, self.busy.throttled = self.end.busy, self.throttled
        if time.monotonic() - self._last_progress > 0.1:  # about 10 events/s per task
            self._last_progress = time.monotonic()
            self.progress(stats, self.busy)

    def _prepare(self, view: PointView, item: PlanItem) -> tuple[bytes | bytearray, int]:
        """Read, verify and (re)compress one block: runs in the block pool."""
        i, b, loc = item
        if loc is None:  # a block that became zero is in the DIGESTS, never asked for
            raise ValueError(f"block {b} of disk {i} is zero: nothing to send")
        t0 = time.perf_counter()
        payload = view.read_stored(loc)
        t1 = time.perf_counter()
        e = loc.entry
        if self.target_decodes and self.comp is None and self.key is None \
                and e.check is not None:
            # passed through as stored: the xxh3-64 of the stored bytes (format 2) proves
            # they are what the source wrote, at xxh3 speed instead of a decompression;
            # the target decodes the payload and checks it against the block digest
            corrupt = bool(stored_problem(e, payload))
        else:  # recompressed or sealed here: this decoded block is what the target gets
            data = decode_block(payload, e, decompressor())
            corrupt = digest(data) != e.digest
        if corrupt:
            layer = view.layers[loc.layer].path.name
            raise SourceCorrupt(f"source block {b} of disk {view.disks[i].name} in {layer} "
                                f"does not match its digest")
        flags = e.flags
        if self.comp is not None:
            flags, payload = self.comp.compress(data)
        if self.key is not None:  # after compression: ciphertext does not compress
            dg = self.key.digest(e.digest, e.raw)
            frame: bytes | bytearray
            frame, room = t.block_frame(i, b, e.raw, flags | FLAG_SEALED, dg,
                                        len(payload) + OVERHEAD)
            self.key.seal_into(room, payload, dg, e.raw, flags)
        else:
            frame = t.encode_block(i, b, e.raw, flags, e.digest, payload)
        t2 = time.perf_counter()
        self.busy.source += t1 - t0
        self.busy.compress += t2 - t1
        return frame, e.raw


class _Coverage:
    """How much of a point the plan has covered up to a position: processed bytes and
    each disk's share (blocks the target already had count as covered too)."""

    def __init__(self, view: PointView, plan: list[PlanItem], base: int, logical: int):
        self.base, self.logical, self.n = base, logical, max(1, len(plan))
        self.names = [d.name for d in view.disks]
        self.per_disk = [0] * len(self.names)
        self.index: list[tuple[int, int]] = []  # plan position -> (disk, its count so far)
        for i, _, _ in plan:
            self.per_disk[i] += 1
            self.index.append((i, self.per_disk[i]))
        self.disks = dict.fromkeys(self.names, 0.0)

    def processed(self, pos: int) -> int:
        disk, count = self.index[pos]
        self.disks[self.names[disk]] = count / self.per_disk[disk]
        for d in range(disk):  # the plan is in disk order: earlier disks are done
            self.disks[self.names[d]] = 1.0
        return self.base + self.logical * (pos + 1) // self.n


def _raw_len(view: PointView, disk: int, block: int) -> int:
    size = view.disks[disk].size
    return max(0, min(view.block_size, size - block * view.block_size))




