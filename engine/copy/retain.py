"""Executes the retention rules of `engine.retention` on a real target chain.

The rules are pure and shared with `ferry preview`; this module only turns
their actions into file operations (merge into the full, synthesize a GFS
full or an immutable job's periodic full, delete a chain, drop a flag), each
committed by the metadata file.
After the rules' actions it runs the scheduled compact of the full.

Crash safety (kill -9 at any moment): every step commits through the metadata
file, so a killed run leaves a chain whose every named point reads exactly, and
the next run finishes the job:

* merges and chain deletions are re-planned from the chain by the rules;
* a GFS full is recorded in `facts["gfs_pending"]` (point + flags) before the
  full is synthesized and cleared in the save that puts the flags on it, so a
  run killed mid-synthesis has its GFS full finished by the next retention run
  (the rules cannot re-plan it: the point already exists, and `last_run` may
  already be past the GFS day);
* a compact writes a new file and swaps it in with one metadata save (see
  `synthesize_full`); leftovers of a killed one are swept by the next writer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine import retention as rules
from engine.errors import FerryError, one_line
from engine.gfs import FLAGS
from engine.immutability import (
    gfs_full_waits,
    periodic_full_due,
    periodic_full_reason,
    waiting_line,
    with_waiting,
)
from engine.model import GfsCycle, GfsPolicy, Kind, MachineMeta, RestorePoint, RetentionPolicy
from engine.repository.container import DATA_START, FLAG_ZERO, Container
from engine.repository.damage import DamagedBlocks, add_records
from engine.repository.locks import COPY_LOCK_WAIT
from engine.repository.repository import Repository
from engine.repository.transforms import delete_points, merge_oldest_increment, synthesize_full

if TYPE_CHECKING:
    from engine.objstore.repo import S3Repository


def policy_to_dict(policy: RetentionPolicy) -> dict[str, Any]:
    return asdict(policy)


def policy_from_dict(d: dict[str, Any]) -> RetentionPolicy:
    g = d.get("gfs")
    gfs = None
    if g:
        weekly, monthly, yearly = (GfsCycle(**g[k]) if g.get(k) else None
                                   for k in ("weekly", "monthly", "yearly"))
        gfs = GfsPolicy(weekly, monthly, yearly, method=g.get("method", "synthetic"))
    return RetentionPolicy(keep=d["keep"], unit=d["unit"], gfs=gfs,
                           deleted_items_days=d.get("deleted_items_days", 30),
                           min_points_days_mode=d.get("min_points_days_mode", 3),
                           immutable_days=int(d.get("immutable_days") or 0))


def gfs_flags_for_run(meta: dict[str, Any] | None, policy: RetentionPolicy, now: datetime,
                      mode: str) -> dict[str, str]:
    """Flags (with the GFS day each stands for) the point this run makes must carry."""
    if policy.gfs is None or not policy.gfs.enabled:
        return {}
    from engine.repository.metadata import meta_from_dict

    points = []
    last_run = None
    if meta:
        m = meta_from_dict(meta)
        points = rules.points_from_chain(m.points)
        lr = m.facts.get("last_run")
        last_run = datetime.fromisoformat(str(lr)) if lr else None
    dates = rules.plan_gfs_dates(points, policy, now, mode, last_run)
    if meta:
        dates = with_waiting(dates, gfs_waiting(m), points)
    return {f: d.isoformat() for f, d in dates.items()}


def gfs_waiting(meta: MachineMeta) -> dict[str, date]:
    """The GFS fulls an immutable chain left for its next new point
    (`facts["gfs_waiting"]`, flag -> GFS day; what does not parse is dropped)."""
    raw = meta.facts.get("gfs_waiting")
    out: dict[str, date] = {}
    for flag, day in (raw.items() if isinstance(raw, dict) else ()):
        try:
            if flag in FLAGS:
                out[flag] = date.fromisoformat(str(day))
        except ValueError:
            continue
    return out


@dataclass(frozen=True)
class ChainOps:
    """How a repository carries out the chain operations the rules plan (files by
    default; object storage does them as manifest operations, `engine.objstore.retain`)."""

    merge: Callable[[Any, MachineMeta, int], object]
    delete: Callable[[Any, MachineMeta, set[str]], object]
    synthesize: Callable[[Any, MachineMeta, RestorePoint], RestorePoint]
    compact: Callable[[Any, MachineMeta, RetentionPolicy, str, datetime], list[dict[str, Any]]]


class RetentionFailed(FerryError):
    """A retention step could not be done (a full file system, an I/O error) after the
    copy. Every step commits through the metadata file, so the chain is as the last
    committed step left it: each point it names reads exactly, and the next run
    plans the step again."""


@contextmanager
def _step(what: str) -> Iterator[None]:
    """Name the step in the one line of a file-system failure (not only "No space
    left on device"): the admin sees what was not done and that nothing is lost."""
    try:
        yield
    except OSError as exc:
        raise RetentionFailed(f"{what} failed: {one_line(exc)}; the copied points are "
                              "intact and the next run tries again") from exc


def _when(meta: MachineMeta, point_id: str) -> str:
    p = next((p for p in meta.points if p.id == point_id), None)
    return f"{p.time:%Y-%m-%d %H:%M}" if p is not None else point_id


def apply_retention(repo: Repository | S3Repository, job: str, machine: str, request: dict[str, Any],
                    ops: ChainOps | None = None) -> list[dict[str, Any]]:
    """Run GFS and short-term retention (then a due compact) for one machine under its
    exclusive lock. Returns the actions done, oldest first."""
    ops = ops or FILE_OPS
    now = datetime.fromisoformat(request["now"])
    policy = policy_from_dict(request["policy"])
    if request.get("background"):
        return background_retention(repo, job, machine, now, policy, ops,
                                    _bounded_wait(request.get("lock_wait")))
    done: list[dict[str, Any]] = []
    with repo.lock(job, machine, exclusive=True, wait=COPY_LOCK_WAIT):
        try:
            meta = repo.try_load(job, machine)
            if meta is None or not meta.points:
                return done
            method = request.get("gfs_method") or "synthetic"
            pending = meta.facts.get("gfs_pending")
            gfs_on = policy.gfs is not None and policy.gfs.enabled
            if gfs_on and isinstance(pending, dict) and \
                    any(p.id == pending.get("point") for p in meta.points):
                # a GFS full a killed run began: finish it first
                on = pending.get("assigned") or now.date().isoformat()
                with _step(f"the GFS full of the {_when(meta, pending['point'])} point"):
                    done.append(_gfs_full(repo, meta, pending["point"], pending["flags"],
                                          pending.get("method") or method, ops, policy,
                                          date.fromisoformat(on), resumed=True))
            elif pending is not None:
                # its point is gone, or GFS was switched off since: nothing to finish
                meta.facts.pop("gfs_pending", None)
                repo.save(meta)
            point_id = request.get("point")
            waiting = {f: d.isoformat() for f, d in gfs_waiting(meta).items()} if gfs_on else {}
            flags = _not_made(meta, {**waiting, **(request.get("gfs_full") or {})})
            new_point = meta.facts.get("retained_point") != point_id
            if flags and point_id and gfs_full_waits(policy, new_point):
                done.append(_gfs_waits(repo, meta, point_id, flags, policy))
            elif flags and point_id:
                with _step(f"the GFS full of the {_when(meta, point_id)} point"):
                    done.append(_gfs_full(repo, meta, point_id, flags, method, ops, policy,
                                          now.date()))
            if point_id:
                made = _periodic_full(repo, meta, point_id, policy, ops)
                done.extend([made] if made else [])
            views = rules.points_from_chain(meta.points)
            actions = rules.plan_retention(views, policy, now)
            expected = rules.apply(views, actions)
            for act in actions:
                with _step(_what(meta, act)):
                    done.append(_execute(repo, meta, act, ops))
            meta.facts["last_run"] = now.isoformat()
            if point_id:  # its files may be locked from now on: never made a full later
                meta.facts["retained_point"] = point_id
            if request.get("health_checked"):
                meta.facts["last_health_check"] = now.isoformat()
            repo.save(meta)
            got = [(p.id, p.kind.value, sorted(p.gfs)) for p in meta.points]
            want = [(p.id, p.kind, sorted(p.gfs)) for p in expected]
            if got != want:
                raise RuntimeError(f"retention left {got}, the rules planned {want}")
            with _step("the compact of the full"):
                done.extend(ops.compact(repo, meta, policy, request.get("compact") or "off", now))
        except DamagedBlocks as exc:  # nothing of that transform was committed
            meta = repo.load(job, machine)
            add_records(meta, exc.blocks)  # the next run (or `check --repair`) re-fetches them
            repo.save(meta)
            raise
    return done


def _periodic_full(repo: Repository | S3Repository, meta: MachineMeta, point_id: str,
                   policy: RetentionPolicy, ops: ChainOps) -> dict[str, Any] | None:
    """An immutable job's periodic synthetic full (`engine.immutability.periodic_full_due`,
    the rule `ferry preview` replays): the run's new increment becomes a full, through the
    synthesize operation GFS fulls use. Only the newest point, and only before its first
    retention pass (`facts["retained_point"]`): after that its files may be locked. A
    chain that never recorded one (written before Ferry did) waits for one pass."""
    last = meta.points[-1]
    retained = meta.facts.get("retained_point")
    if last.id != point_id or retained is None or retained == point_id:
        return None
    views = rules.points_from_chain(meta.points)
    if not periodic_full_due(views, policy):
        return None
    detail = periodic_full_reason(views, policy)
    with _step(f"the periodic synthetic full of the {_when(meta, point_id)} point"):
        ops.synthesize(repo, meta, last)
    return {"action": "synthetic-full", "point": point_id, "detail": detail}


def _what(meta: MachineMeta, act: rules.Action) -> str:
    """A retention action in words, for a failure's one line."""
    if act.kind == "merge":
        return f"the merge of the {_when(meta, act.point)} point into the full"
    if act.kind == "delete-chain":
        return f"the deletion of the chain of {_when(meta, act.points[0])}"
    return f"the {act.kind} of the {_when(meta, act.point)} point"


def background_retention(repo: Repository | S3Repository, job: str, machine: str, now: datetime,
                         policy: RetentionPolicy, ops: ChainOps | None = None,
                         lock_wait: float = COPY_LOCK_WAIT) -> list[dict[str, Any]]:
    """The daily background pass of one machine (`rules.plan_background`): expired GFS
    flags are removed and the files they alone kept are deleted, under the exclusive
    chain lock. Nothing is merged, synthesized or compacted, an interrupted GFS full
    is left for the next run, and `last_run` is not touched (it is what GFS catch-up
    counts from). A busy chain raises `LockBusy` after `lock_wait` seconds."""
    ops = ops or FILE_OPS
    done: list[dict[str, Any]] = []
    with repo.lock(job, machine, exclusive=True, wait=lock_wait):
        meta = repo.try_load(job, machine)
        if meta is None or not meta.points:
            return done
        views = rules.points_from_chain(meta.points)
        actions = rules.plan_background(views, policy, now)
        if not actions:
            return done
        expected = rules.apply(views, actions)
        for act in actions:
            done.append(_execute(repo, meta, act, ops))
        repo.save(meta)
        got = [(p.id, p.kind.value, sorted(p.gfs)) for p in meta.points]
        want = [(p.id, p.kind, sorted(p.gfs)) for p in expected]
        if got != want:
            raise RuntimeError(f"background retention left {got}, the rules planned {want}")
    return done


def _bounded_wait(value: object) -> float:
    """A lock wait asked for over the wire: a number within (0, COPY_LOCK_WAIT]."""
    try:
        wait = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return COPY_LOCK_WAIT
    return min(max(wait, 0.0), COPY_LOCK_WAIT) if wait == wait else COPY_LOCK_WAIT


def _not_made(meta: MachineMeta, flags: dict[str, str]) -> dict[str, str]:
    """The requested flags no point carries yet for the same GFS day.

    The run planned them before its copy, from the chain as it was; an interrupted
    GFS full finished just above may already stand for that day (a GFS day is
    counted once, as in `retention.plan_gfs_dates`).
    """
    return {f: d for f, d in flags.items()
            if not any(f in p.gfs and p.gfs_dates.get(f) == d for p in meta.points)}


def _gfs_waits(repo: Repository | S3Repository, meta: MachineMeta, point_id: str,
               flags: dict[str, str], policy: RetentionPolicy) -> dict[str, Any]:
    """No new point on an immutable chain's GFS day: the full is left for the next new
    point (`engine.immutability.gfs_full_waits`), the latest point's files untouched."""
    meta.facts["gfs_waiting"] = dict(flags)
    repo.save(meta)
    days = {f: date.fromisoformat(d) for f, d in flags.items()}
    return {"action": "gfs-waits", "point": point_id, "detail": waiting_line(days, policy)}


def _gfs_full(repo: Repository | S3Repository, meta: MachineMeta, point_id: str, flags: dict[str, str],
              method: str, ops: ChainOps, policy: RetentionPolicy, assigned: date,
              resumed: bool = False) -> dict[str, Any]:
    """Make `point_id` a full carrying `flags` (flag -> ISO date of its GFS day),
    assigned on `assigned` with the expiry `policy` gives them on that day."""
    p = next(p for p in meta.points if p.id == point_id)
    if p.kind != Kind.FULL:
        meta.facts["gfs_pending"] = {"point": point_id, "flags": dict(flags), "method": method,
                                     "assigned": assigned.isoformat()}
        repo.save(meta)  # durable intent first: a kill from here on is finished next run
        p = ops.synthesize(repo, meta, p)
    p.gfs = sorted(set(p.gfs) | set(flags), key="WMY".index)
    p.gfs_dates.update(flags)
    p.gfs_assigned.update({f: assigned.isoformat() for f in flags})
    p.gfs_until.update({f: d.isoformat() for f, d in
                        rules.expiries_at_assignment(list(flags), policy, assigned).items()})
    meta.facts.pop("gfs_pending", None)
    left = {f: d for f, d in gfs_waiting(meta).items() if f not in flags}
    if left:
        meta.facts["gfs_waiting"] = {f: d.isoformat() for f, d in left.items()}
    else:
        meta.facts.pop("gfs_waiting", None)
    repo.save(meta)
    detail = f"{'+'.join(flags)} full ({method})"
    if resumed:
        detail += ", finished after an interrupted run"
    return {"action": "gfs-full", "point": p.id, "detail": detail}


def _execute(repo: Repository | S3Repository, meta: MachineMeta, act: rules.Action, ops: ChainOps) -> dict[str, Any]:
    if act.kind == "expire-flag":
        next(p for p in meta.points if p.id == act.point).drop_flag(act.flag)
        repo.save(meta)
        return {"action": "expire-flag", "point": act.point, "detail": f"{act.flag}: {act.reason}"}
    if act.kind == "delete-chain":
        ops.delete(repo, meta, set(act.points))
        return {"action": "delete-chain", "point": ",".join(act.points), "detail": act.reason}
    if act.kind == "merge":
        i = next(i for i, p in enumerate(meta.points) if p.id == act.point)
        if i < 1 or meta.points[i - 1].kind != Kind.FULL:
            raise RuntimeError(f"merge of {act.point}: not an increment right after a full")
        ops.merge(repo, meta, i)
        return {"action": "merge", "point": act.point, "detail": act.reason}
    raise RuntimeError(f"unknown retention action {act.kind}")


# --------------------------------------------------------------------------- compact


def full_usage(path: Path, state: str) -> tuple[int, int]:
    """(file size, bytes the `state` still uses: headers, its blocks, its index).

    The difference is dead space: payloads of blocks merged over and the indexes of
    older states, which an in-place merge leaves behind (it only appends).
    """
    with Container(path, state=state) as c:
        offsets: dict[int, int] = {}
        for d in c.disks.values():
            for e in d.blocks.values():
                if e.flags != FLAG_ZERO:
                    offsets[e.offset] = e.stored
        copies = 2 if c.slot.offset2 else 1
        return c.data_end(), DATA_START + sum(offsets.values()) + copies * c.slot.length


def _compact(repo: Repository, meta: MachineMeta, policy: RetentionPolicy, slot: str,
             now: datetime) -> list[dict[str, Any]]:
    """Rewrite the full contiguously when `[storage] compact` is due; the actions done.

    Only without GFS (the job file refuses compact with GFS; a stale request is
    ignored the same way). The slot counts from `facts["last_compact"]`; a chain
    that has none yet waits for its first slot from the first run that sees the
    setting (`facts["compact_since"]`), so turning compact on does not rewrite a
    full at once. A forever-forward chain has one full; after GFS was switched off
    older fulls may remain, so every unflagged full with dead space is rewritten
    (merges grow the newest one). A due slot with nothing to reclaim only records
    the slot: rewriting would copy the same bytes to a new file.
    """
    from engine.schedule import check_due, parse_health_check

    sched = parse_health_check(slot)
    gfs = policy.gfs
    if sched is None or (gfs is not None and gfs.enabled):
        return []
    last = meta.facts.get("last_compact") or meta.facts.get("compact_since")
    if not last:
        meta.facts["compact_since"] = now.isoformat()
        repo.save(meta)
        return []
    if not check_due(sched, datetime.fromisoformat(str(last)), now):
        return []
    folder = repo.machine_dir(meta.job, meta.machine)
    done = []
    from engine.repository.immutable import immutable_now

    for full in [p for p in meta.points if p.kind == Kind.FULL and not p.gfs
                 and not immutable_now(meta, p.id)]:
        before, live = full_usage(folder / full.file, full.id)
        if before <= live:
            continue
        new = synthesize_full(repo, meta, full)  # a new file, swapped in by one save
        after = (folder / new.file).stat().st_size
        done.append({"action": "compact", "point": full.id,
                     "detail": f"full rewritten: {_mib(before)} -> {_mib(after)} "
                               f"({_mib(before - after)} reclaimed)"})
    meta.facts["last_compact"] = now.isoformat()
    meta.facts.pop("compact_since", None)
    repo.save(meta)
    return done


FILE_OPS = ChainOps(merge_oldest_increment, delete_points, synthesize_full, _compact)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


__all__ = ["ChainOps", "FILE_OPS", "apply_retention", "background_retention", "full_usage", "gfs_flags_for_run", "policy_to_dict",
           "policy_from_dict"]
