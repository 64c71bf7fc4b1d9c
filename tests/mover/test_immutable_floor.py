"""`ferry mover --immutable-days N`: a floor the client cannot lower, through a real TLS
mover on 127.0.0.1. A client job with immutable_days = 0 gets points locked N days
(`ferry chain --json`), its retention runs under the floor (forward incremental with a
periodic synthetic full, not a merge), and a RETAIN or SWEEP whose plan would delete a
point still locked by the mover's clock is refused with nothing changed."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from copyjob.conftest import Source, ferry

from engine.copy import moverauth
from engine.copy import transport as t
from engine.copy.guard import Floor
from engine.copy.runner import run_job
from engine.repository.repository import Repository
from engine.restore import export_point

from .conftest import JOB, assert_serving, snapshot, start, tls_job

MACHINE = "vm-forward"


@pytest.fixture
def floored(tmp_path, monkeypatch):
    """A TLS mover with --immutable-days 3 and a client job without immutability."""
    src = Source(tmp_path, methods=("forward",))
    repo = tmp_path / "dr"
    fp = moverauth.init(repo)
    _, token = moverauth.add_token(repo, JOB)
    m = start(repo, token, fp, floor=Floor(immutable_days=3))
    monkeypatch.setenv("FERRY_TEST_TOKEN", token)
    yield src, m, tls_job(tmp_path, src, m, keep=2)
    m.server.shutdown()
    m.server.server_close()


def _chain(repo) -> list[dict]:
    res = ferry("chain", "--repo", repo, "--job", JOB, "--machine", MACHINE, "--json",
                check=True)
    return json.loads(res.stdout)["chains"][0]["points"]


def _request(now: datetime, keep: int = 2) -> dict:
    return {"now": now.isoformat(), "mode": "periodic", "gfs_full": {}, "point": None,
            "policy": {"keep": keep, "unit": "points", "gfs": None, "deleted_items_days": 30,
                       "min_points_days_mode": 3, "immutable_days": 0},
            "gfs_method": "", "health_checked": False, "compact": "off"}


def test_client_cannot_lower_the_movers_immutability(floored, tmp_path):
    src, m, spec = floored
    assert spec.retention.immutable_days == 0
    wall = datetime.now().replace(microsecond=0)
    # daily points from 9 days ago: the 8th (day 7) becomes the periodic synthetic full,
    # the first chain's last point (day 6) is locked until 10 hours from now
    first = wall - timedelta(days=9) + timedelta(hours=10)
    times = [first + timedelta(days=d) for d in range(8)] + [first + timedelta(days=7, hours=1)]
    for when in times:
        src.backup(when)
        res = run_job(spec, at=when + timedelta(minutes=5))
        assert res.status == "Success", res.to_json()
        assert not [a for a in res.retention if a["action"] == "merge"]  # keep = 2 would
    made = [a for a in res.retention if a["action"] == "synthetic-full"]
    assert not made  # made by the day-7 run, not this one
    points = _chain(m.repo)
    meta = Repository(m.repo).load(JOB, MACHINE)
    assert [p["kind"] for p in points] == ["full"] + ["incremental"] * 6 + ["full",
                                                                           "incremental"]
    for p, shown in zip(meta.points, points, strict=True):
        want = (p.time + timedelta(days=3)).astimezone().isoformat(timespec="seconds")
        assert shown["immutable_until"] == want, shown
        out = tmp_path / "x" / p.id
        export_point(m.repo, JOB, MACHINE, p.id, out)
        assert (out / "disk0.img").read_bytes() == src.machines[MACHINE].states[p.source_point]
    # a RETAIN whose clock runs 20 h ahead (within the day of skew the mover allows):
    # under the floor its plan would delete the first chain, whose last point is still
    # immutable by the mover's clock -> refused, nothing changed; the background SWEEP too
    before = snapshot(m.repo)
    end = m.session()
    for kind in (t.RETAIN, t.SWEEP):
        end.send_json(kind, _request(wall + timedelta(hours=20)))
        answer = end.expect(kind).json()
        assert answer["actions"] == [], answer
        until = meta.points[6].time + timedelta(days=3)
        assert answer["refused"] == (
            f"the request would delete the point of {meta.points[6].time:%Y-%m-%d %H:%M}, "
            f"immutable until {until:%Y-%m-%d %H:%M} on this mover")
    assert snapshot(m.repo) == before
    # at the mover's own clock the same request runs, under the floor: nothing to delete
    end.send_json(t.RETAIN, _request(wall))
    assert end.expect(t.RETAIN).json() == {"actions": []}
    end.send_json(t.BYE, {})
    end.close()
    assert [p.id for p in Repository(m.repo).load(JOB, MACHINE).points] == \
        [p.id for p in meta.points]
    assert_serving(m)


def test_begin_raises_immutable_until_to_the_floor(floored):
    """A client asking for less than the floor (here: 1 day) gets the floor's date; one
    asking for more keeps its own."""
    src, m, spec = floored
    when = datetime.now().replace(microsecond=0) - timedelta(hours=1)
    for days, extra in ((1, 0), (5, 0)):
        text = spec.path.read_text()
        if "[storage]" not in text:
            text += "\n[storage]\nimmutable_days = 1\n"
        spec.path.write_text(text.replace("immutable_days = 1", f"immutable_days = {days}"))
        from engine.jobs.load import load_job

        src.backup(when)
        res = run_job(load_job(spec.path), at=when + timedelta(minutes=1))
        assert res.status == "Success", res.to_json()
        shown = _chain(m.repo)[-1]["immutable_until"]
        want = (when + timedelta(days=max(days, 3))).astimezone().isoformat(timespec="seconds")
        assert shown == want
        when += timedelta(minutes=10 + extra)


def test_mover_retain_keeps_the_floor_for_an_append_only_job(tmp_path, golden, mover,
                                                            monkeypatch):
    """`ferry mover retain --immutable-days N` (`retain_job` with the floor): the stored
    request of an append-only client (keep = 2, immutable_days = 0: forever-forward
    merges) runs under the floor: nothing younger than N days is merged away."""
    from copyjob.conftest import T0

    from engine.copy.guard import retain_job

    src, *_ = golden
    _, token = moverauth.add_token(mover.repo, JOB, append_only=True)
    monkeypatch.setenv("FERRY_TEST_TOKEN", token)
    spec = tls_job(tmp_path, src, mover, keep=2)
    src.backup(T0 + timedelta(days=3))
    assert run_job(spec, at=T0 + timedelta(days=3)).status == "Warning"
    repo = Repository(mover.repo)
    ids = [p.id for p in repo.load(JOB, MACHINE).points]
    assert len(ids) == 4
    clock = T0 + timedelta(days=3, hours=1)  # days 1..3 are younger than 3 days
    done = retain_job(repo, JOB, Floor(immutable_days=3), clock=clock)
    assert all(a["action"] not in ("refused", "merge", "delete-chain") for a in done), done
    assert [p.id for p in repo.load(JOB, MACHINE).points] == ids
    # without the floor the same stored request merges down to 2 points
    retain_job(repo, JOB, Floor(), clock=clock)
    assert len(repo.load(JOB, MACHINE).points) == 2


def test_a_gfs_day_without_a_new_point_leaves_a_floor_locked_point(floored):
    """An active weekly GFS full on a day with no new point, through a mover whose floor
    makes every point immutable (the client's job has none): the client sees the lock
    the mover recorded and reads nothing again, the mover leaves the latest point's file
    as it is and the full waits for the next new point (which then carries the flag);
    a raw BEGIN replacing the locked point is refused, nothing changed."""
    src, m, spec = floored
    # noon yesterday and the day before, whatever the hour now: both of the first day's
    # points fall before the GFS day (a second point an hour after a late-evening first
    # one fell on the GFS day itself and took the weekly flag)
    gfs_day = (datetime.now() - timedelta(days=1)).replace(hour=12, minute=0, second=0,
                                                           microsecond=0)
    first = gfs_day - timedelta(days=1)
    weekday = gfs_day.strftime("%A").lower()
    spec.path.write_text(spec.path.read_text() + "\n[retention.gfs]\nweekly = { keep_weeks "
                         f'= 2, day = "{weekday}" }}\nmethod = "active"\n')
    from engine.jobs.load import load_job

    spec = load_job(spec.path)
    src.backup(first)
    assert run_job(spec, at=first + timedelta(minutes=5)).status == "Success"
    src.backup(first + timedelta(hours=1))
    assert run_job(spec, at=first + timedelta(hours=1, minutes=5)).status == "Success"
    repo = Repository(m.repo)
    last = repo.load(JOB, MACHINE).points[-1]
    path = repo.machine_dir(JOB, MACHINE) / last.file
    before = (path.stat().st_ino, path.read_bytes())
    res = run_job(spec, at=gfs_day + timedelta(minutes=5))  # no new source point
    assert res.status == "Success", res.to_json()
    assert res.tasks[0].kind == "none"
    assert [a["action"] for a in res.retention] == ["gfs-waits"]
    meta = repo.load(JOB, MACHINE)
    assert meta.points[-1] == last and (path.stat().st_ino, path.read_bytes()) == before
    # the raw replace a client unaware of the lock would send: refused
    snap = snapshot(m.repo)
    end = m.session()
    end.send_json(t.BEGIN, {"kind": "full", "point": last.id, "replaces": last.id,
                            "time": last.time.isoformat(), "source_point": last.source_point,
                            "base": meta.points[-2].id, "block_size": last.block_size,
                            "compression": "auto", "wan": False, "repaired": [], "facts": {},
                            "disks": [{"name": d.name, "size": d.size} for d in last.disks]})
    with pytest.raises(t.StreamError, match="the point to replace is immutable"):
        end.expect(t.HAVE)
    end.close()
    assert snapshot(m.repo) == snap
    src.backup(gfs_day + timedelta(hours=1))
    res = run_job(spec, at=gfs_day + timedelta(hours=1, minutes=5))
    assert res.status == "Success", res.to_json()
    newest = repo.load(JOB, MACHINE).points[-1]
    assert (newest.kind.value, newest.gfs, newest.gfs_dates) == (
        "full", ["W"], {"W": gfs_day.date().isoformat()})
    assert_serving(m)


def test_preview_of_a_mover_job_says_the_mover_may_keep_more(floored):
    """The client cannot see a mover's floor offline: its preview says so, once."""
    from engine.preview_cli import WhatIf, build_preview

    _, m, spec = floored
    notes = [n for n in build_preview(spec, WhatIf()).notes if "its own floor" in n]
    assert notes == [f"the target is reached through the mover tls://127.0.0.1:{m.port}: its "
                     "own floor (ferry mover --min-points, --immutable-days) may keep points "
                     "longer than this preview of the job's policy shows; on the mover host "
                     "`ferry chain --repo DIR --json` shows each point's immutable_until"]
