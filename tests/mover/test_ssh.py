"""The SSH transport against a real sshd on 127.0.0.1: the authorized_keys forced command
runs `ferry mover --stdio --repo DIR --job Daily`; copies land and read back exactly; a
job the forced command does not name is refused; the host key is checked."""

from __future__ import annotations

import shutil
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


def test_ferry_rsh_is_the_ssh_command(tmp_path, server, monkeypatch):
    """The contract's FERRY_RSH runs ssh (and wins over the older FERRY_SSH)."""
    s, repo = server
    monkeypatch.setenv("FERRY_RSH", f"ssh -F {s.config}")
    monkeypatch.setenv("FERRY_SSH", "ssh -F /nonexistent/ssh_config")
    src = Source(tmp_path, methods=("forward",), size=4 * (256 << 10) + 1000)
    src.backup(T0)
    res = run_job(ssh_job(tmp_path, src, s, repo, name=JOB), at=T0)
    assert res.status == "Success", res.to_json()


def _ssh_g_ciphers(config):
    import subprocess

    out = subprocess.run(["ssh", "-F", str(config), "-G", "host.invalid"], capture_output=True,
                         text=True, check=True).stdout
    return next(x for x in out.splitlines() if x.startswith("ciphers ")).split()[1].split(",")


@pytest.mark.skipif(shutil.which("ssh") is None, reason="openssh-client not installed")
def test_fast_ciphers_only_reorders_what_ssh_would_offer(tmp_path):
    from engine.copy.links import fast_ciphers

    default = tmp_path / "default"
    default.write_text("Host *\n    BatchMode yes\n")
    got = fast_ciphers(("ssh", "-F", str(default)), "host.invalid")
    offered = _ssh_g_ciphers(default)
    assert got is not None and sorted(got.split(",")) == sorted(offered)
    assert got.split(",")[0].startswith("aes") and got.split(",")[0].endswith("-gcm@openssh.com")
    chacha = tmp_path / "chacha"  # an admin's choice without AES-GCM is kept as it is
    chacha.write_text("Host *\n    Ciphers chacha20-poly1305@openssh.com,aes256-ctr\n")
    assert fast_ciphers(("ssh", "-F", str(chacha)), "host.invalid") is None
    some = tmp_path / "some"
    some.write_text("Host *\n    Ciphers aes256-ctr,aes256-gcm@openssh.com\n")
    assert fast_ciphers(("ssh", "-F", str(some)), "host.invalid") == \
        "aes256-gcm@openssh.com,aes256-ctr"
    assert fast_ciphers(("/nonexistent/ssh",), "host.invalid") is None


def test_ssh_command_puts_aes_gcm_first_on_an_aes_cpu(monkeypatch, tmp_path):
    from engine.copy import links

    monkeypatch.setenv("FERRY_RSH", f"ssh -F {tmp_path / 'none'}")
    (tmp_path / "none").write_text("")
    cmd = links.ssh_command(links.parse_mover("ssh://u@127.0.0.1:2222/srv/dr"))
    assert cmd[:3] == ["ssh", "-F", str(tmp_path / "none")]
    if links.cpu_has_aes():
        assert cmd[cmd.index("-c") + 1].startswith("aes128-gcm@openssh.com,")
    else:
        assert "-c" not in cmd


def test_a_warmed_stream_goes_to_the_next_connect_only_while_young(tmp_path, server,
                                                                   monkeypatch):
    """RemoteJob warms the first task's ssh stream while its own handshakes; connect
    takes it while it is young and alive, drop_spares closes what nobody took."""
    from engine.copy import links
    from engine.copy import transport as t

    s, repo = server
    monkeypatch.setenv("FERRY_RSH", f"ssh -F {s.config}")
    src = Source(tmp_path, methods=("forward",), size=4 * (256 << 10) + 1000)
    spec = ssh_job(tmp_path, src, s, repo)
    links.warm(spec)
    spare = links._spares[spec.target.mover][0][1]
    end = links.connect(spec)
    assert end is spare and not links._spares[spec.target.mover]
    end.send_json(t.HELLO, {"version": t.PROTOCOL_VERSION, "job": JOB, "machine": "vm01"})
    assert end.expect(t.HELLO, timeout=30).json()["version"] == t.PROTOCOL_VERSION
    end.send_json(t.BYE, {})
    end.close()
    links.warm(spec)
    old = links._spares[spec.target.mover][0][1]
    monkeypatch.setattr(links, "SPARE_AGE", 0.0)
    fresh = links.connect(spec)
    assert fresh is not old and old.proc.poll() is not None
    fresh.close()
    links.warm(spec)
    left = links._spares[spec.target.mover][0][1]
    links.drop_spares(spec)
    assert left.proc.poll() is not None and spec.target.mover not in links._spares


@pytest.mark.skipif(shutil.which("ssh") is None, reason="openssh-client not installed")
def test_ssh_command_turns_compression_off_unless_ferry_rsh_asks(monkeypatch, tmp_path):
    """The blocks are compressed already; ssh -G (the options applied as ssh would)
    says the stream runs uncompressed, and an admin's -o in FERRY_RSH still wins."""
    import subprocess

    from engine.copy import links

    config = tmp_path / "config"
    config.write_text("Host *\n    Compression yes\n")

    def compression(rsh):
        monkeypatch.setenv("FERRY_RSH", rsh)
        cmd = links.ssh_command(links.parse_mover("ssh://u@127.0.0.1:2222/srv/dr"))
        opts = cmd[:cmd.index("--")]
        out = subprocess.run([*opts, "-G", "--", "u@127.0.0.1"], capture_output=True,
                             text=True, check=True).stdout
        return next(x for x in out.splitlines() if x.startswith("compression ")).split()[1]

    assert compression(f"ssh -F {config}") == "no"
    assert compression(f"ssh -F {config} -o Compression=yes") == "yes"
