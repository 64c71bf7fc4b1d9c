"""Metadata that survives one bad sector: every .fbm has a second copy (in the job
folder's `.fbm-copies/`); one flipped byte in either loses nothing, the next save
rewrites it, and `ferry check --rebuild` rebuilds a machine's metadata from its
backup files when both copies are gone."""

from __future__ import annotations

import json
from datetime import timedelta

from copyjob.conftest import ferry
from retention_e2e.replaykit import START, Lab

from engine.copy.runner import run_job
from engine.jobs.load import load_job
from engine.repository.metadata import copy_path, read_one
from engine.repository.repository import Repository


def _lab(work, days=3, keep=3, extra=""):
    lab = Lab(work, blocks=6)
    spec = load_job(lab.job("M", keep=keep, retention=extra))
    for d in range(days):
        t = START + timedelta(days=d)
        lab.backup(t)
        assert run_job(spec, at=t).status == "Success"
    return lab, spec, Repository(lab.dst).meta_path("M", "vm1")


def _flip(path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x20
    path.write_bytes(bytes(data))


def test_one_flipped_byte_in_the_fbm_loses_nothing(work):
    lab, spec, fbm = _lab(work)
    assert copy_path(fbm).read_bytes() == fbm.read_bytes()
    before = [p.id for p in lab.chain("M")]
    _flip(fbm, len(fbm.read_bytes()) // 2)
    assert [p.id for p in lab.chain("M")] == before  # read from the copy
    assert lab.check_exports("M") == 3
    res = ferry("check", "--repo", lab.dst)
    assert res.returncode == 2 and "vm1.fbm" in res.stderr  # the check still says so
    t = START + timedelta(days=3)
    lab.backup(t)
    assert run_job(spec, at=t).status == "Success"  # and the next save rewrites it
    read_one(fbm)
    assert ferry("check", "--repo", lab.dst).returncode == 0


def test_a_flipped_byte_in_the_copy_is_rewritten_by_rebuild(work):
    lab, spec, fbm = _lab(work, days=2)
    _flip(copy_path(fbm), 40)
    res = ferry("check", "--repo", lab.dst, "--rebuild")
    assert res.returncode == 0, res.stderr
    assert "rewritten from its sound copy" in res.stdout
    assert copy_path(fbm).read_bytes() == fbm.read_bytes()


def test_rebuild_from_the_backup_files_when_both_copies_are_gone(work):
    lab, spec, fbm = _lab(work, days=4, keep=3)
    before = lab.chain("M")
    fbm.unlink()
    copy_path(fbm).unlink()
    assert Repository(lab.dst).try_load("M", "vm1") is None
    res = ferry("check", "--repo", lab.dst, "--rebuild", "--json")
    assert res.returncode == 0, res.stderr
    js = json.loads(res.stdout)
    assert "rebuilt from 3 backup file(s)" in js["rebuilt"][0]
    after = lab.chain("M")
    assert [(p.id, p.kind, p.file, p.source_point, p.time) for p in after] == \
        [(p.id, p.kind, p.file, p.source_point, p.time) for p in before]
    assert lab.check_exports("M") == 3
    t = START + timedelta(days=4)
    lab.backup(t)
    res = run_job(spec, at=t)  # the chain goes on: an increment, not a new full
    assert res.status == "Success" and res.tasks[0].kind == "incremental", res.to_json()
    assert lab.check_exports("M") == 3
