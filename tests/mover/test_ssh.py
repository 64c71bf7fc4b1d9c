"""The SSH transport against a real sshd on 127.0.0.1: the authorized_keys forced command
runs `ferry mover --stdio --repo DIR --job Daily`; copies land and read back exactly; a
job the forced command does not name is refused; the host key is checked."""

from __future__ import annotations

import sys
from datetime import timedelta

import pytest
from copyjob.conftest import ROOT, T0, Source, exported, write_job

from engine.copy.runner import run_job
from engine.jobs.load import load_job
from engine.repository.repository import Repository

from . import sshd

JOB = "Daily"


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    reason = sshd.why_not()
    if reason:
        pytest.skip(reason)
    root = tmp_path_factory.mktemp("sshd")
    repo = root / "dr"
    forced = f"{sys.executable} -m engine.cli mover --stdio --repo {repo} --job {JOB}"
    s = sshd.start(root / "etc", forced)
    yield s, repo
    s.stop()


def ssh_job(tmp, src, s, repo, name=JOB):
    job = write_job(tmp / f"{name}.toml", name, src.repo, ["Daily"], tmp / "local",
                    extra="[transport]\nretries = 0\n")
    job.write_text(job.read_text().replace(
        "[target]\n", f'[target]\nmover = "ssh://{s.user}@127.0.0.1:{s.port}{repo}"\n'))
    return load_job(job)


def test_copies_over_ssh(tmp_path, server, monkeypatch):
    s, repo = server
    monkeypatch.setenv("FERRY_SSH", f"ssh -F {s.config}")
    src = Source(tmp_path, methods=("forward",), size=4 * (256 << 10) * 2 + 1000)
    spec = ssh_job(tmp_path, src, s, repo)
    for day in range(2):
        src.backup(T0 + timedelta(days=day))
        res = run_job(spec, at=T0 + timedelta(days=day))
        assert res.status == "Success", res.to_json()
    m = next(iter(src.machines.values()))
    meta = Repository(repo).load(JOB, m.name)
    assert len(meta.points) == 2
    last = meta.points[-1]
    assert exported(repo, JOB, m.name, last.id, tmp_path / "out") == m.states[last.source_point]
    log = (repo / ".ferry" / "mover.log").read_text()
    assert "ssh session from 127.0.0.1" in log and "point committed" in log
    assert ROOT.exists()


def test_forced_command_limits_the_job(tmp_path, server, monkeypatch):
    s, repo = server
    monkeypatch.setenv("FERRY_SSH", f"ssh -F {s.config}")
    src = Source(tmp_path, methods=("forward",), size=4 * (256 << 10) + 1000)
    src.backup(T0)
    res = run_job(ssh_job(tmp_path, src, s, repo, name="Other"), at=T0)
    assert res.status == "Failed"
    assert "this credential is for job 'Daily', not 'Other'" in res.tasks[0].message
    assert not (repo / "Other").exists()


def test_wrong_host_key_is_refused(tmp_path, server, monkeypatch):
    s, repo = server
    bad = tmp_path / "ssh_config"
    (tmp_path / "known_hosts").write_text(f"[127.0.0.1]:{s.port} ssh-ed25519 "
                                          "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9"
                                          "okWi0dh2l9GKJl\n")
    bad.write_text(s.config.read_text().replace(str(s.dir / "known_hosts"),
                                                str(tmp_path / "known_hosts")))
    monkeypatch.setenv("FERRY_SSH", f"ssh -F {bad}")
    src = Source(tmp_path, methods=("forward",), size=4 * (256 << 10) + 1000)
    src.backup(T0)
    res = run_job(ssh_job(tmp_path, src, s, repo), at=T0)
    assert res.status == "Failed" and "ssh exited 255" in res.tasks[0].message
