"""Compact of the full (`[storage] compact`): merges leave dead space in the full; on
its slot the full is rewritten contiguously, the file shrinks to what the point uses
and every point still exports exactly."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from engine.copy.retain import apply_retention, full_usage, policy_to_dict
from engine.copy.runner import run_job
from engine.jobs.load import load_job
from engine.model import GfsCycle, GfsPolicy, Kind, RetentionPolicy
from engine.repository.repository import Repository, point_file_name

from .replaykit import START, Lab, fast_dir, no_fsync


@pytest.fixture
def work(tmp_path, monkeypatch):
    no_fsync(monkeypatch)
    yield from fast_dir(tmp_path)


def _usage(lab: Lab, job: str) -> tuple[int, int]:
    full = lab.chain(job)[0]
    return full_usage(Repository(lab.dst).machine_dir(job, "vm1") / full.file, full.id)


def test_compact_on_its_slot_reclaims_the_dead_space_of_merges(work):
    lab = Lab(work, blocks=16)
    spec = load_job(lab.job("C", keep=3, storage='compact = "last sunday 05:00"'))
    folder = Repository(lab.dst).machine_dir("C", "vm1")
    compacted: dict[date, dict] = {}
    sizes = []
    for d in range(60):  # Nov 1 2026 .. Dec 30 2026; last Sundays: Nov 29, Dec 27
        t = START + timedelta(days=d)
        lab.backup(t, mutate=5)
        res = run_job(spec, at=t)
        assert res.status == "Success", res.to_json()
        size, live = _usage(lab, "C")
        for a in res.retention:
            if a["action"] == "compact":
                compacted[t.date()] = a
                assert size == live, "a compacted full holds no dead space"
                assert size < sizes[-1][0], "the compact made the full smaller"
        sizes.append((size, live))
        # only the files the metadata names (and the metadata and lock) are left
        names = {p.file for p in lab.chain("C")} | {"vm1.fbm", "lock"}
        assert {f.name for f in folder.iterdir()} == names
        lab.check_exports("C")
    assert sorted(compacted) == [date(2026, 11, 29), date(2026, 12, 27)]
    before = sizes[(date(2026, 11, 29) - START.date()).days - 1]
    # merges reuse dead space, but fragments smaller than a block and a merge's own
    # working room stay: there is something to reclaim, and no more than an increment
    assert before[1] < before[0] <= 2 * before[1], f"dead space before compact: {before}"
    assert "reclaimed" in compacted[date(2026, 11, 29)]["detail"]
    facts = Repository(lab.dst).load("C", "vm1").facts
    assert facts["last_compact"] == datetime(2026, 12, 27, 22, 0).isoformat()
    # merges go on after a compact, and dead space builds up again
    assert sizes[-1][0] > sizes[-1][1]


def test_first_run_waits_for_the_slot_and_a_clean_full_is_not_rewritten(work):
    """Turning compact on does not rewrite the full at once; a due slot with nothing to
    reclaim only records the slot."""
    lab = Lab(work, blocks=8)
    spec = load_job(lab.job("D", keep=10, storage='compact = "daily 04:00"'))
    for d in range(3):  # keep 10: no merge yet, so the full has no dead space
        t = START + timedelta(days=d)
        lab.backup(t)
        res = run_job(spec, at=t)
        assert not [a for a in res.retention if a["action"] == "compact"]
        full = lab.chain("D")[0]
        # not rewritten: still the file the copy wrote (a compact writes a new name; the
        # name's hex id may itself end in "c", so the whole name is compared)
        assert full.file == point_file_name("vm1", full.time, full.id, Kind.FULL)
    facts = Repository(lab.dst).load("D", "vm1").facts
    assert facts["last_compact"] == (START + timedelta(days=2)).isoformat()
    assert "compact_since" not in facts


def test_compact_is_never_done_with_gfs(work):
    """The job file refuses compact with GFS; a request that has both anyway does not
    compact (a GFS full is flagged and must not be rewritten)."""
    lab = Lab(work, blocks=8)
    spec = load_job(lab.job("G", keep=2))
    for d in range(6):
        t = START + timedelta(days=d)
        lab.backup(t, mutate=4)
        run_job(spec, at=t)
    size, live = _usage(lab, "G")
    assert size > live
    gfs = RetentionPolicy(keep=2, gfs=GfsPolicy(weekly=GfsCycle(2, "sunday")))
    t = START + timedelta(days=10)
    for _ in range(2):  # first call starts the slot clock, the second would be due
        acts = apply_retention(Repository(lab.dst), "G", "vm1",
                               {"now": t.isoformat(), "policy": policy_to_dict(gfs),
                                "compact": "daily 04:00"})
        assert not [a for a in acts if a["action"] == "compact"]
        t += timedelta(days=1)
    assert _usage(lab, "G") == (size, live)


def test_merges_reuse_the_fulls_dead_space(work):
    lab = Lab(work, blocks=16)
    spec = load_job(lab.job("R", keep=3))
    for d in range(40):
        t = START + timedelta(days=d)
        lab.backup(t, mutate=5)
        assert run_job(spec, at=t).status == "Success"
    size, live = _usage(lab, "R")
    # one merge in flight may need room for one increment beyond the live data
    assert size <= 2 * live, f"full file {size / 2**20:.1f} MiB for {live / 2**20:.1f} MiB live"
