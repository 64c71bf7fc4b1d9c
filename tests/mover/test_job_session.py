"""Remote mode keeps the job's lock, history and deleted-items cleanup on the mover side."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from copyjob.conftest import T0, Source

from engine.copy import moverauth
from engine.copy.jobsession import JobBusy, RemoteJob
from engine.copy.runner import RunError, run_job
from engine.daemon import Daemon
from engine.history import History
from engine.jobs.load import load_job
from engine.repository.repository import Repository

from .conftest import JOB, tls_job


def test_job_lock_lives_on_the_mover(tmp_path, golden, mover, monkeypatch):
    src, *_ = golden
    monkeypatch.setenv("FERRY_TEST_TOKEN", mover.token)
    spec = tls_job(tmp_path, src, mover)
    held = RemoteJob(spec)  # another host running the job holds the mover's job lock
    try:
        with pytest.raises(JobBusy):
            RemoteJob(spec)
        (tmp_path / "other-host").mkdir()
        spec2 = tls_job(tmp_path / "other-host", src, mover)
        with pytest.raises(RunError) as err:
            run_job(spec2, at=T0 + timedelta(days=3))
        assert err.value.exit_code == 3 and "already running" in str(err.value)
    finally:
        held.close()
    src.backup(T0 + timedelta(days=3))
    res = run_job(spec, at=T0 + timedelta(days=3))
    assert res.status == "Success", res.to_json()
    rows = History(mover.repo / ".ferry" / "history.sqlite").sessions(JOB)
    assert rows[0]["id"] == res.session and len(rows) == 4  # the 3 golden runs and this one
    assert (mover.repo / JOB / ".job.lock").exists()


def test_cleanup_runs_on_the_mover(tmp_path, monkeypatch):
    from .conftest import start

    src = Source(tmp_path, methods=("forward", "reverse"), size=4 * (256 << 10) + 1000)
    repo = tmp_path / "dr"
    fp = moverauth.init(repo)
    _, token = moverauth.add_token(repo, JOB)
    m = start(repo, token, fp)
    monkeypatch.setenv("FERRY_TEST_TOKEN", token)
    try:
        src.backup(T0)
        both = tls_job(tmp_path, src, m)
        both = replace(both, source=replace(both.source, jobs=["Daily", "Reverse"]))
        assert run_job(both, at=T0).status == "Success"
        one = tls_job(tmp_path, src, m)  # vm-reverse is no longer in the job's sources
        res = run_job(one, at=T0 + timedelta(days=1))
        assert res.status == "Success", res.to_json()
        gone = Repository(repo).load(JOB, "vm-reverse")
        assert gone.gone_since  # marked on the mover's repository, not in the local folder
        assert not Repository(tmp_path / "local").machines(JOB)
    finally:
        m.server.shutdown()
        m.server.server_close()


def test_daemon_runs_an_immediate_remote_job_once_per_new_point(tmp_path, golden, mover,
                                                                monkeypatch):
    src, *_ = golden
    monkeypatch.setenv("FERRY_TEST_TOKEN", mover.token)
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    spec = tls_job(jobs, src, mover)
    text = spec.path.read_text().replace('mode = "periodic"', 'mode = "immediate"')
    spec.path.write_text(text)
    load_job(spec.path)
    src.backup(T0 + timedelta(days=4))
    d = Daemon(jobs, poll=0.1)
    runs = [d.pass_once() for _ in range(3)]
    copies = [r for r in runs if any(name == JOB for name, _ in r)]
    assert len(copies) == 1, runs
    assert copies[0] == [(JOB, "Success")]
