"""The chain lock (CONTRACT): `<repo>/<job>/<machine>/lock`, flock exclusive or shared.

Another process takes the lock with plain fcntl.flock, as any other program
writing source chains would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from enginekit import (
    BS,
    JOB,
    MACHINE,
    assert_images_equal,
    day,
    export_disks,
    popen_ferry,
)

from engine.repository.repository import Repository

HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX if sys.argv[2] == "ex" else fcntl.LOCK_SH)
print("held", flush=True)
sys.stdin.read()  # until the test closes our stdin
"""
WAIT = 1.5  # how long a blocked command must stay blocked


class Holder:
    """A separate process holding flock on a machine's lock file until released."""

    def __init__(self, lock: Path, mode: str):
        lock.parent.mkdir(parents=True, exist_ok=True)
        self.p = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock), mode],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.p.stdout.readline().strip() == "held"

    def release(self) -> None:
        if self.p.poll() is None:
            self.p.stdin.close()
            self.p.wait(timeout=10)

    def __enter__(self) -> Holder:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


@pytest.fixture
def chain(repo, make_machine):
    m = make_machine(61)
    m.add_disk("sda", size=6 * BS + 11)
    m.backup(repo, day(0))
    lock = Repository(repo).machine_dir(JOB, MACHINE) / "lock"
    assert lock.is_file()
    return repo, m, lock


def _backup(repo: Path, m, when) -> list[str]:
    return ["backup", "--repo", str(repo), "--job", JOB, "--machine", MACHINE, "--disk",
            str(m.path("sda")), "--block-size", "256KiB", "--at", when.isoformat(), "--json"]


def _points(repo: Path) -> list[str]:
    return [p.id for p in Repository(repo).load(JOB, MACHINE).points]


def test_backup_waits_for_an_exclusive_lock(chain, out):
    repo, m, lock = chain
    m.mutate("rewrite", "sda")
    with Holder(lock, "ex") as holder:
        before = _points(repo)
        p = popen_ferry(*_backup(repo, m, day(1)))
        time.sleep(WAIT)
        assert p.poll() is None, "backup did not wait for the chain lock"
        assert _points(repo) == before
        assert {f.name for f in lock.parent.iterdir()} == {
            "lock", f"{MACHINE}.fbm", *(Repository(repo).load(JOB, MACHINE).points[0].file,)}
        released = time.monotonic()
        holder.release()
        stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr
    assert time.monotonic() - released < 30
    made = json.loads(stdout)
    assert _points(repo) == before + [made["point"]]
    assert_images_equal(export_disks(repo, "latest", out), m.state(), "after the wait")


def test_backup_waits_for_a_shared_lock_too(chain):
    repo, m, lock = chain
    with Holder(lock, "sh") as holder:
        p = popen_ferry(*_backup(repo, m, day(1)))
        time.sleep(WAIT)
        assert p.poll() is None, "a writer must not change a chain someone is reading"
        holder.release()
        _out, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr


def test_export_and_check_share_the_lock_with_a_reader(chain, tmp_path):
    repo, m, lock = chain
    with Holder(lock, "sh"), Holder(lock, "sh"):  # two other readers at once
        t = time.monotonic()
        procs = [popen_ferry("export", "--repo", repo, "--job", JOB, "--machine", MACHINE,
                             "--out", tmp_path / "o"),
                 popen_ferry("check", "--repo", repo)]
        for p in procs:
            _o, err = p.communicate(timeout=30)
            assert p.returncode == 0, err
        assert time.monotonic() - t < 20
    assert (tmp_path / "o" / "sda").read_bytes() == m.state()["sda"]


def test_export_waits_for_a_writer(chain, tmp_path):
    repo, m, lock = chain
    with Holder(lock, "ex") as holder:
        p = popen_ferry("export", "--repo", repo, "--job", JOB, "--machine", MACHINE,
                        "--out", tmp_path / "o")
        time.sleep(WAIT)
        assert p.poll() is None, "export read a chain while a writer held it"
        assert not (tmp_path / "o" / "sda").exists()
        holder.release()
        _o, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert (tmp_path / "o" / "sda").read_bytes() == m.state()["sda"]


def test_two_backups_of_one_machine_serialise(chain, out):
    """Two writers at once: one waits for the other, both points end up in the chain."""
    repo, m, lock = chain
    with Holder(lock, "ex") as holder:
        a = popen_ferry(*_backup(repo, m, day(1)))
        b = popen_ferry(*_backup(repo, m, day(2)))
        time.sleep(WAIT)
        assert a.poll() is None and b.poll() is None
        holder.release()
        results = [p.communicate(timeout=60) + (p.returncode,) for p in (a, b)]
    # whichever ran second with the earlier time is refused (not after the latest point)
    codes = sorted(r[2] for r in results)
    assert codes in ([0, 0], [0, 2]), results
    for _o, err, code in results:
        if code == 2:
            assert "not after" in err and len(err.splitlines()) == 1
    meta = Repository(repo).load(JOB, MACHINE)
    assert len(meta.points) == 1 + codes.count(0)
    assert_images_equal(export_disks(repo, "latest", out), m.state(), "latest")


def test_lock_file_is_where_the_contract_says(repo, make_machine):
    m = make_machine(62)
    m.add_disk("sda", size=BS + 1)
    m.backup(repo, day(0), job="Nightly copy", machine="db 01")
    assert (repo / "Nightly copy" / "db 01" / "lock").is_file()
