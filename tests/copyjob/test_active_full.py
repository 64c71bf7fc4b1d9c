""""Active full now" and "retry these machines": the engine hooks the console uses."""

from __future__ import annotations

from datetime import timedelta

import pytest

from engine.copy import active_full
from engine.copy.runner import run_job
from engine.jobs.load import load_job
from engine.model import Kind
from engine.repository.repository import BadName, Repository

from .conftest import T0, Source, write_job

JOBS = ["Daily", "Reverse"]


@pytest.fixture
def job(tmp_path):
    src = Source(tmp_path, methods=("forward", "reverse"))
    src.backup(T0)
    spec = load_job(write_job(tmp_path / "j.toml", "A", src.repo, JOBS, tmp_path / "dr"))
    assert run_job(spec, at=T0 + timedelta(minutes=5)).status == "Success"
    return src, spec, Repository(tmp_path / "dr")


def _kinds(dst: Repository, machine: str) -> list[Kind]:
    return [p.kind for p in dst.load("A", machine).points]


def test_active_full_with_a_new_point(job):
    src, spec, dst = job
    src.backup(T0 + timedelta(days=1))
    active_full.request(spec, "vm-forward")
    assert active_full.pending(spec) == ["vm-forward"]
    dry = run_job(spec, at=T0 + timedelta(days=1, minutes=5), dry_run=True)
    assert {t.machine: t.kind for t in dry.tasks}["vm-forward"] == "full"
    assert active_full.requested(spec, "vm-forward")  # a dry run changes nothing
    res = run_job(spec, at=T0 + timedelta(days=1, minutes=5))
    kinds = {t.machine: t.kind for t in res.tasks}
    assert res.status == "Success" and kinds == {"vm-forward": "full", "vm-reverse": "incremental"}
    assert _kinds(dst, "vm-forward") == [Kind.FULL, Kind.FULL]
    assert not active_full.requested(spec, "vm-forward")  # done: the next one is incremental
    src.backup(T0 + timedelta(days=2))
    res = run_job(spec, at=T0 + timedelta(days=2, minutes=5))
    assert {t.kind for t in res.tasks} == {"incremental"}


def test_active_full_without_a_new_point_rereads_the_latest(job):
    src, spec, dst = job
    src.backup(T0 + timedelta(days=1))
    assert run_job(spec, at=T0 + timedelta(days=1, minutes=5)).status == "Success"
    before = dst.load("A", "vm-forward").points
    assert [p.kind for p in before] == [Kind.FULL, Kind.INCREMENTAL]
    active_full.request(spec, "vm-forward")
    res = run_job(spec, at=T0 + timedelta(days=1, minutes=10))
    assert {t.machine: t.kind for t in res.tasks} == {"vm-forward": "full", "vm-reverse": "none"}
    after = dst.load("A", "vm-forward").points
    assert [p.kind for p in after] == [Kind.FULL, Kind.FULL]
    assert after[-1].id == before[-1].id  # the same point, now whole
    assert not active_full.pending(spec)


def test_active_full_on_a_full_waits_for_the_next_point(job):
    _, spec, dst = job
    active_full.request(spec, "vm-reverse")
    res = run_job(spec, at=T0 + timedelta(minutes=10))
    assert {t.kind for t in res.tasks} == {"none"}
    assert active_full.requested(spec, "vm-reverse")
    assert _kinds(dst, "vm-reverse") == [Kind.FULL]


def test_requests_refuse_unsafe_names(job):
    _, spec, _ = job
    with pytest.raises(BadName):
        active_full.request(spec, "../escape")
    assert not active_full.requested(spec, "../escape")


def test_retry_only_some_machines_leaves_the_others_alone(job):
    src, spec, dst = job
    src.backup(T0 + timedelta(days=1))
    res = run_job(spec, at=T0 + timedelta(days=1, minutes=5), only=["vm-reverse"])
    assert [t.machine for t in res.tasks] == ["vm-reverse"] and res.status == "Success"
    assert len(dst.load("A", "vm-forward").points) == 1  # not copied
    assert dst.load("A", "vm-forward").gone_since == ""  # and not taken for deleted
    res = run_job(spec, at=T0 + timedelta(days=1, minutes=10), only=["nope"])
    assert res.status in ("Warning", "Failed") and "nope: not a machine" in res.message
