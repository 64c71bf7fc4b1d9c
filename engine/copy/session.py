"""One machine's part of a copy session: plan, stream each point, then retention.

A `MachineCopy` sees its session only through a `TaskContext` (the job, its machine,
the clock, the controls and where events go) and fills its `TaskResult`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from engine import events as ev
from engine.copy import active_full
from engine.copy import transport as t
from engine.copy.control import MachineControl
from engine.copy.payloads import CheckAnswer, RetainAnswer
from engine.copy.planner import PlanError, PlanItem, plan_machine
from engine.copy.results import TaskResult
from engine.copy.source import Busy, RateLimit, SourceMover, TargetState, request_state
from engine.copy.source import PlanItem as BlockItem
from engine.keys import KeyRing
from engine.model import Kind, MachineMeta, Stats, Status
from engine.repository.repository import new_point_id
from engine.repository.resolve import PointView
from engine.schedule import in_window, window_end
from engine.units import rfc3339

STAGES = ("Source", "Compress", "Stream", "Target", "Throttled")
PROVE_SAMPLE = 4  # blocks a remote target proves it holds, per point


def bottleneck(busy: Busy, elapsed: float) -> tuple[str, dict[str, float]]:
    """Busy-time share per stage; the primary bottleneck is the busiest stage."""
    elapsed = max(elapsed, 1e-9)
    load = {"Source": busy.source, "Compress": busy.compress, "Stream": busy.stream,
            "Target": busy.target, "Throttled": busy.throttled}
    load = {k: round(min(1.0, v / elapsed), 3) for k, v in load.items()}
    if not load["Throttled"]:
        del load["Throttled"]  # said only when the job's rate limit held the stream back
    return max(load, key=lambda k: load[k]), load


@dataclass(frozen=True)
class TaskContext:
    """What one machine's copy needs from its session (`engine.copy.runner.Runner`),
    and nothing more: the task cannot reach the other tasks or the session's state."""

    spec: Any  # the job (engine.jobs.schema.JobSpec)
    source_job: str
    machine: str
    folder: Path  # the machine's folder in the source repository
    control: MachineControl  # operator hold / stop of this machine
    rate: RateLimit  # the job's rate limit, shared by its tasks
    keys: KeyRing  # the job's password and chain keys, shared by its tasks
    facts: dict[str, Any]  # what the hypervisor says about the machine (inventory)
    emit: Callable[[ev.Event], None]
    log: Callable[[str, str], None]  # (level, text): the session's log, for this machine
    clock: Callable[[], datetime]  # the run's clock (advances in a replay too)
    task_clock: Callable[[], datetime]  # "now" for decisions: `--at` itself in a replay
    dry_run: bool = False
    repair_only: bool = False  # `ferry check --repair`: only the repair exchange
    respect_window: bool = True  # False: an operator's run now, outside the window too
    replay: bool = False  # `--at`: the copy window does not cut the transfer short


class MachineCopy:
    """Copies what the plan says for one machine over one mover stream."""

    def __init__(self, ctx: TaskContext, src_meta: MachineMeta, end: t.Endpoint, pool: Any,
                 res: TaskResult):
        self.ctx = ctx
        self.src_meta = src_meta
        self.end = end
        self.pool = pool
        self.res = res
        self.spec = ctx.spec
        self.folder = ctx.folder

    def run(self) -> TaskResult:
        """The copy, its retention, then the result (errors raise: the runner makes them
        a Failed result that keeps what was copied)."""
        ctx, spec, res = self.ctx, self.spec, self.res
        job, machine = spec.name, ctx.machine
        level = spec.storage.compression
        recompress = None if level in ("auto", self.src_meta.compression) else level
        t0 = time.monotonic()
        mover = SourceMover(self.end, self.pool, recompress=recompress,
                            control=ctx.control,
                            progress=lambda s, b: self._progress(s, b, t0),
                            rate=ctx.rate,
                            on_hold=lambda by: ctx.emit(ev.TaskOnHold(
                                job, machine, f"held by {by}", "operator")),
                            on_resume=lambda: ctx.emit(ev.TaskResumed(job, machine)))
        # a folder target or a mover decodes and checks every block; this process's own
        # S3 target trusts its source mover's decode (engine.objstore.target: trusted)
        mover.target_decodes = spec.target.s3 is None or bool(spec.target.mover)
        self.mover = mover
        self.left_uncopied = False
        if spec.target.mover:
            from engine.copy.links import token_of

            # a remote target is not trusted: it proves it holds what it says it has
            mover.prove, mover.token = PROVE_SAMPLE, token_of(spec)
        mover.hello(job, machine)
        state = request_state(self.end)
        wants_full = active_full.requested(spec, machine)
        items = plan_machine(self.src_meta, state.meta, spec.mode,
                             encrypted=spec.storage.encryption, active_full=wants_full)
        now = ctx.task_clock()
        outside = not in_window(spec.schedule, now)
        if outside and items and not ctx.respect_window:
            ctx.log("info", f"{machine}: started by the operator outside the copy window")
        elif outside and items and not ctx.dry_run:
            # the window limits data transfer only; retention still runs (notes section 4)
            res.kind = "none"
            res.warn(f"outside the copy window ({', '.join(spec.schedule.window)}): "
                     f"nothing copied")
            items = []
            self.left_uncopied = True  # a partial point stays for the next run to resume
        mover.deadline = self._window_deadline(now)
        blocked = outside and ctx.respect_window
        self.checked = False
        self.damaged_left: list[dict[str, Any]] = []
        if not ctx.dry_run:
            found = self._health_repair(state, now)
            self._repair_damaged(state, found)
            if ctx.repair_only:
                self._fail_if_damaged()
                return res
        self.repair = {tuple(x) for x in (state.meta or {}).get("facts", {}).get("repair", [])}
        # a GFS day with nothing new still gets its full, from the latest chain (notes 6)
        gfs_flags = self._gfs_plan(state, now) if (items or state.latest) else {}
        if gfs_flags and self._active():
            if items:
                items[-1].kind = Kind.FULL
            elif not blocked:
                items = self._reread(state.latest, state.meta)
        if wants_full and not blocked:
            items = self._active_full(items, state.latest, state.meta)
        if not items and not res.message:
            res.kind, res.message = "none", "no new restore point to copy"
            ctx.log("info", f"{machine}: up to date")
        total = sum(i.source.logical_size for i in items)  # what `processed` grows to
        self.total = total
        ctx.emit(ev.TaskStarted(job, machine, items[-1].kind if items else "none", total))
        self.previous = state.digests if state.latest else None
        self.base = state.latest["id"] if state.latest else None
        self.state = state
        self.chain_key = state.latest.get("key", "") if state.latest else ""
        self._send(mover, items)
        if wants_full and not ctx.dry_run and items and items[0].kind == Kind.FULL:
            active_full.clear(spec, machine)  # committed: the request is done
        if items and not ctx.dry_run:
            gfs_flags, now = self._due_during_transfer(mover, state, now, gfs_flags)
        res.held_s += mover.held
        res.bottleneck, res.load = bottleneck(mover.busy, time.monotonic() - t0)
        if not ctx.dry_run and (items or state.latest):
            self._retain(now, gfs_flags, self.base)
        self._fail_if_damaged()
        return res

    def _repair_damaged(self, state: TargetState, found: list[dict[str, Any]] | None = None) -> None:
        """Re-fetch the target's recorded damaged blocks from the source (Warning when
        repaired; what the source no longer has fails the task at the end, named)."""
        from engine.copy.repair import source_repair
        from engine.repository.damage import damaged_records
        from engine.repository.metadata import meta_from_dict

        if not state.meta:
            return
        records = {(r["file"], r["disk"], r["block"]): r
                   for r in damaged_records(meta_from_dict(state.meta)) + (found or [])}
        if not records:
            return
        machine = self.ctx.machine
        fixed, left = source_repair(self.end, self.folder, self.src_meta, state.meta,
                                    list(records.values()), self.ctx.keys)
        if fixed:
            text = f"{fixed} damaged block(s) of the target re-fetched from the source"
            self.ctx.log("warning", f"{machine}: {text}")
            self.res.warn(text)
        self.damaged_left = left

    def _fail_if_damaged(self) -> None:
        if self.damaged_left:
            from engine.repository.damage import DamagedBlocks

            raise DamagedBlocks(self.damaged_left)

    def _active(self) -> bool:
        gfs = self.spec.retention.gfs
        return gfs is not None and gfs.enabled and gfs.method == "active"

    def _active_full(self, items: list[PlanItem], latest: dict[str, Any] | None,
                     meta: dict[str, Any] | None) -> list[PlanItem]:
        """The operator asked for a full: the planner made the next point one; without a
        new point the latest copied point is read whole again (as an active GFS full)."""
        machine = self.ctx.machine
        if not items:
            items = self._reread(latest, meta)
        if items:
            self.ctx.log("info", f"{machine}: active full requested by the operator: "
                         f"copying a full")
        else:
            self.ctx.log("info", f"{machine}: active full requested: the newest copy is a "
                         f"full or immutable; the request waits for the next new restore point")
        return items

    def _reread(self, latest: dict[str, Any] | None, meta: dict[str, Any] | None) -> list[PlanItem]:
        """An active GFS full without a new source point: the latest copied point read
        whole from the source again, replacing its increment (notes 6: "copies the latest
        available point"). Nothing to do when it already is a full; when its source
        point is gone the full is synthesized on the target instead."""
        if not latest or latest.get("kind") == Kind.FULL:
            return []
        from engine.immutability import retained_immutable

        facts = (meta or {}).get("facts")
        if retained_immutable(facts, str(latest.get("id")), self.spec.storage.immutable_days):
            self.ctx.log("info", f"{self.ctx.machine}: the latest point is immutable: the "
                         f"full waits for the next new restore point")
            return []
        src = next((p for p in self.src_meta.points if p.id == latest.get("source_point")), None)
        if src is None:
            self.ctx.log("warning", f"{self.ctx.machine}: source point "
                         f"{latest.get('source_point')} is gone; the active GFS full is "
                         f"synthesized on the target")
            return []
        return [PlanItem(src, Kind.FULL, replaces=latest["id"])]

    def _send(self, mover: SourceMover, items: list[PlanItem]) -> None:
        """Stream each planned point; `self.base` ends as the target's latest point."""
        ctx, spec, res = self.ctx, self.spec, self.res
        machine, level = ctx.machine, spec.storage.compression
        for item in items:
            with PointView(self.folder, self.src_meta, item.source) as view:
                prev = None if item.kind == Kind.FULL else self.previous
                envelope = self._point_key(mover, self.state, item, self.base, self.chain_key)
                plan = mover.plan_blocks(view, prev, self.repair)
                repaired, self.repair = sorted(self.repair), set()
                if ctx.dry_run:
                    res.stats.processed += item.source.logical_size
                    self._dry(item, view, plan)
                    continue
                begin = {"kind": item.kind, "point": item.replaces or new_point_id(),
                         "time": item.source.time.isoformat(),
                         "source_point": item.source.id, "base": self.base,
                         "block_size": view.block_size,
                         "compression": level if level != "auto" else self.src_meta.compression,
                         "disks": [asdict(d) for d in view.disks],
                         "wan": bool(spec.transport.wan_acceleration),
                         "repaired": repaired,
                         # every block sent is decoded, checked and recompressed here
                         # (only an in-process target relies on it: engine.copy.receive)
                         **({"decoded": True} if mover.comp is not None else {}),
                         **({"replaces": item.replaces} if item.replaces else {}),
                         **({"key": mover.key.key_id, "envelope": envelope}
                            if mover.key is not None else {}),
                         **({"immutable_until": (item.source.time + timedelta(
                             days=spec.storage.immutable_days)).isoformat()}
                            if spec.storage.immutable_days else {}),
                         "facts": {"source_job": ctx.source_job, **ctx.facts}}
                done = mover.send_point(view, begin, plan, res.stats,
                                        item.source.logical_size)
                self.previous = mover.target_digests(view)
            self.base = done.point
            self.chain_key = mover.key.key_id if mover.key is not None else ""
            res.kind, res.point, res.source_point = item.kind, done.point, item.source.id
            what = "re-read whole for the active GFS full" if item.replaces else ""
            ctx.log("info", f"{machine}: copied {item.kind} of {item.source.time:%Y-%m-%d %H:%M}"
                    f" ({res.stats.blocks_sent} blocks sent){' ' + what if what else ''}")

    def _due_during_transfer(self, mover: SourceMover, state: TargetState, started: datetime,
                             flags: dict[str, str]) -> tuple[dict[str, str], datetime]:
        """Periodic mode: a GFS full that fell due while the run was still transferring
        is made after the transfer, with a warning, as the reference product does
        (notes 6: finish the run, then synthesize the full or copy it whole). Returns
        the flags to make and the time retention runs at (the end, if it changed)."""
        if self.spec.mode != "periodic":
            return flags, started
        end = self.ctx.clock()
        if end.date() == started.date():
            return flags, started
        later = {f: d for f, d in self._gfs_plan(state, end).items() if f not in flags}
        if not later:
            return flags, started
        from engine.gfs import FLAG_NAMES

        names = "+".join(FLAG_NAMES[f] for f in later)
        text = (f"the {names} GFS full fell due at 00:00 while the run (started "
                f"{started:%Y-%m-%d %H:%M}) was still transferring; it is made after the transfer")
        self.ctx.log("warning", f"{self.ctx.machine}: {text}")
        self.res.warn(text)
        if self._active() and self.res.kind != Kind.FULL:
            latest = {"id": self.base, "kind": self.res.kind, "source_point": self.res.source_point}
            self._send(mover, self._reread(latest, None))  # the run's own point
        return {**flags, **later}, end

    def _point_key(self, mover: SourceMover, state: TargetState, item: PlanItem, base: str | None,
                   chain_key: str) -> dict[str, Any]:
        """Set the mover's chain key for this point; the envelope to send with it.

        An encrypted full starts a chain with a new random key (or the key of the
        partial file a killed run of the same plan left, so the rerun resumes it);
        an increment uses its chain's key, opened with the job's password.
        """
        mover.key = None
        if not self.spec.storage.encryption:
            return {}
        keys = self.ctx.keys
        if item.kind == Kind.FULL:
            pending = state.resume or {}
            plan = pending.get("plan") or {}
            if pending.get("key") and plan.get("source_point") == item.source.id and \
                    plan.get("kind") == item.kind and plan.get("base") == base:
                mover.key = keys.open(pending["key"], pending.get("envelope"))
                resumed: dict[str, Any] = pending["envelope"]  # opened just above: a key envelope
                return resumed
            mover.key, envelope = keys.create()
            return envelope
        envelopes = (state.meta or {}).get("keys", {})
        if base is None or not chain_key or chain_key not in envelopes:
            raise PlanError("the target chain has no key for its encrypted points")
        mover.key = keys.open(chain_key, envelopes[chain_key])
        chain_envelope: dict[str, Any] = envelopes[chain_key]  # opened just above: a key envelope
        return chain_envelope

    def _window_deadline(self, now: datetime) -> float | None:
        """Monotonic time the copy window closes (only on the real clock)."""
        end = window_end(self.spec.schedule, now)
        if end is None or self.ctx.replay:
            return None
        return time.monotonic() + (end - now).total_seconds()

    def _progress(self, stats: Stats, busy: Busy, t0: float) -> None:
        elapsed = time.monotonic() - t0
        _, load = bottleneck(busy, elapsed)
        rate = stats.read / elapsed if elapsed > 0 else 0.0
        mover = self.mover
        self.ctx.emit(ev.TaskProgress(self.spec.name, self.ctx.machine,
                                      Stats(**asdict(stats)), self.total, rate, load,
                                      mover.to_read, dict(mover.disks)))

    def _dry(self, item: PlanItem, view: PointView, plan: list[BlockItem]) -> None:
        raw = sum(loc.entry.raw for _, _, loc in plan if loc is not None)
        unique = {loc.entry.digest: loc.entry.stored for _, _, loc in plan if loc is not None}
        stored = sum(unique.values())  # identical blocks travel once, compressed
        self.res.kind = item.kind
        self.res.source_point = item.source.id
        self.res.stats.read += raw
        self.res.plan.append({"source_point": item.source.id, "time": rfc3339(item.source.time),
                              "kind": item.kind, "blocks": len(plan), "bytes": raw,
                              "bytes_after_dedup": stored})

    def _health_repair(self, state: TargetState, now: datetime) -> list[dict[str, Any]]:
        """Run the scheduled health check; corrupt blocks are re-sent in this increment."""
        from engine.schedule import check_due, parse_health_check

        sched = parse_health_check(self.spec.storage.health_check)
        meta = state.meta
        if sched is None or not state.latest or meta is None:  # (a latest point has a meta)
            return []
        facts = meta.get("facts", {})
        last = facts.get("last_health_check")
        if not check_due(sched, datetime.fromisoformat(last) if last else None, now):
            return []
        self.end.send_json(t.CHECK, {"now": now.isoformat()})
        answer = CheckAnswer.parse(self.end.expect(t.CHECK).json())
        self.checked = True
        bad = [[c.disk, c.block] for c in answer.corrupt]
        machine = self.ctx.machine
        if bad:
            meta.setdefault("facts", {})["repair"] = bad
            self.ctx.log("warning", f"{machine}: health check found {len(bad)} corrupt "
                         f"block(s); the next increment re-sends them from the source")
            self.res.message = f"health check found {len(bad)} corrupt block(s)"
        else:
            self.ctx.log("info", f"{machine}: health check passed")
        return answer.damaged

    def _gfs_plan(self, state: TargetState, now: datetime) -> dict[str, str]:
        from engine.copy.retain import gfs_flags_for_run

        return gfs_flags_for_run(state.meta, self.spec.retention, now, self.spec.mode)

    def _retain(self, now: datetime, gfs_flags: dict[str, str], point: str | None) -> None:
        from engine.copy.retain import policy_to_dict

        request = {"now": now.isoformat(), "mode": self.spec.mode, "gfs_full": gfs_flags,
                   "point": point, "policy": policy_to_dict(self.spec.retention),
                   "gfs_method": self.spec.retention.gfs.method if self.spec.retention.gfs else "",
                   "health_checked": self.checked, "compact": self.spec.storage.compact,
                   # every planned point is copied: the target sweeps this run's leftovers
                   "sweep": "keep-partial" if self.left_uncopied else "all"}
        self.end.send_json(t.RETAIN, request)
        answer = RetainAnswer.parse(self.end.expect(t.RETAIN).json())
        if answer.damaged:  # a transform met damaged blocks: repair, then once again
            self._repair_damaged(self.state, answer.damaged)
            self.end.send_json(t.RETAIN, request)
            answer = RetainAnswer.parse(self.end.expect(t.RETAIN).json())
            if answer.damaged:
                from engine.repository.damage import DamagedBlocks

                raise DamagedBlocks(answer.damaged)
        if answer.refused:
            text = f"retention refused by the target: {answer.refused[:300]}"
            self.ctx.log("warning", f"{self.ctx.machine}: {text}")
            if self.res.status == Status.SUCCESS:
                self.res.status = Status.WARNING
            self.res.message = "; ".join(x for x in (self.res.message, text) if x)
        for a in answer.actions:  # this machine's, whatever the target wrote in `machine`
            self.res.retention.append({"machine": self.ctx.machine, "action": a.action,
                                       "point": a.point, "detail": a.detail})
            self.ctx.emit(ev.RetentionAction(self.spec.name, self.ctx.machine, a.action,
                                             a.point, a.detail))
