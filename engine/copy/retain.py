"""Executes the retention rules of `engine.retention` on a real target chain.

The rules are pure and shared with `ferry preview`; this module only turns
their actions into file operations (merge into the full, synthesize a GFS
full, delete a chain, drop a flag), each committed by the metadata file.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime

from engine import retention as rules
from engine.model import GfsCycle, GfsPolicy, Kind, RetentionPolicy
from engine.repository.repository import Repository
from engine.repository.transforms import delete_points, merge_oldest_increment, synthesize_full


def policy_to_dict(policy: RetentionPolicy) -> dict:
    return asdict(policy)


def policy_from_dict(d: dict) -> RetentionPolicy:
    g = d.get("gfs")
    gfs = None
    if g:
        gfs = GfsPolicy(*(GfsCycle(**g[k]) if g.get(k) else None
                          for k in ("weekly", "monthly", "yearly")), method=g.get("method",
                                                                                 "synthetic"))
    return RetentionPolicy(keep=d["keep"], unit=d["unit"], gfs=gfs,
                           deleted_items_days=d.get("deleted_items_days", 30),
                           min_points_days_mode=d.get("min_points_days_mode", 3))


def gfs_flags_for_run(meta: dict | None, policy: RetentionPolicy, now: datetime,
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
        last_run = datetime.fromisoformat(lr) if lr else None
    dates = rules.plan_gfs_dates(points, policy, now, mode, last_run)
    return {f: d.isoformat() for f, d in dates.items()}


def apply_retention(repo: Repository, job: str, machine: str, request: dict) -> list[dict]:
    """Run GFS and short-term retention for one machine under its exclusive lock."""
    now = datetime.fromisoformat(request["now"])
    policy = policy_from_dict(request["policy"])
    done: list[dict] = []
    with repo.lock(job, machine, exclusive=True):
        meta = repo.try_load(job, machine)
        if meta is None or not meta.points:
            return done
        flags: dict[str, str] = request.get("gfs_full") or {}
        point_id = request.get("point")
        if flags and point_id:
            p = next(p for p in meta.points if p.id == point_id)
            if p.kind != Kind.FULL:
                p = synthesize_full(repo, meta, p)
            p.gfs = sorted(set(p.gfs) | set(flags), key="WMY".index)
            p.gfs_dates.update(flags)
            repo.save(meta)
            done.append({"action": "gfs-full", "point": p.id,
                         "detail": f"{'+'.join(flags)} full ({request.get('gfs_method') or 'synthetic'})"})
        views = rules.points_from_chain(meta.points)
        actions = rules.plan_retention(views, policy, now)
        expected = rules.apply(views, actions)
        for act in actions:
            done.append(_execute(repo, meta, act))
        meta.facts["last_run"] = now.isoformat()
        if request.get("health_checked"):
            meta.facts["last_health_check"] = now.isoformat()
        repo.save(meta)
        got = [(p.id, p.kind.value, sorted(p.gfs)) for p in meta.points]
        want = [(p.id, p.kind, sorted(p.gfs)) for p in expected]
        if got != want:
            raise RuntimeError(f"retention left {got}, the rules planned {want}")
    return done


def _execute(repo: Repository, meta, act: rules.Action) -> dict:
    if act.kind == "expire-flag":
        p = next(p for p in meta.points if p.id == act.point)
        p.gfs = [f for f in p.gfs if f != act.flag]
        p.gfs_dates.pop(act.flag, None)
        repo.save(meta)
        return {"action": "expire-flag", "point": act.point, "detail": f"{act.flag}: {act.reason}"}
    if act.kind == "delete-chain":
        delete_points(repo, meta, set(act.points))
        return {"action": "delete-chain", "point": ",".join(act.points), "detail": act.reason}
    if act.kind == "merge":
        i = next(i for i, p in enumerate(meta.points) if p.id == act.point)
        if i < 1 or meta.points[i - 1].kind != Kind.FULL:
            raise RuntimeError(f"merge of {act.point}: not an increment right after a full")
        merge_oldest_increment(repo, meta, i)
        return {"action": "merge", "point": act.point, "detail": act.reason}
    raise RuntimeError(f"unknown retention action {act.kind}")


__all__ = ["apply_retention", "gfs_flags_for_run", "policy_to_dict", "policy_from_dict", "date"]
