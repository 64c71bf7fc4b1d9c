"""Copy jobs against remote movers: append-only runs end Warning and the admin retains
on the mover host; a fake mover that answers HAVE for data it lacks fails the run; a
wrong certificate pin fails it; plain addresses only on loopback; TLS needs init."""

from __future__ import annotations

import socket
import struct
import threading
from datetime import timedelta

import pytest
from copyjob.conftest import T0, Source, write_job

from engine.copy import moverauth
from engine.copy import transport as t
from engine.copy.guard import Floor, retain_job
from engine.copy.runner import run_job
from engine.copy.server import make_server
from engine.jobs.load import JobFileError, load_job
from engine.repository.container import FLAG_RAW
from engine.repository.repository import Repository

from .conftest import JOB, snapshot, tls_job

MACHINE = "vm-forward"


def test_append_only_run_warns_and_the_mover_host_retains(tmp_path, golden, mover,
                                                         monkeypatch):
    src, *_ = golden
    _, token = moverauth.add_token(mover.repo, JOB, append_only=True)
    monkeypatch.setenv("FERRY_TEST_TOKEN", token)
    spec = tls_job(tmp_path, src, mover, keep=2)
    src.backup(T0 + timedelta(days=3))
    res = run_job(spec, at=T0 + timedelta(days=3))
    assert res.status == "Warning", res.to_json()
    assert "retention refused by the target: append-only" in res.tasks[0].message
    repo = Repository(mover.repo)
    assert len(repo.load(JOB, MACHINE).points) == 4  # added, nothing merged or deleted
    done = retain_job(repo, JOB, Floor())
    assert done and all(a["action"] != "refused" for a in done)
    assert len(repo.load(JOB, MACHINE).points) == 2


def test_a_remote_run_sweeps_what_a_killed_run_left_on_the_mover(tmp_path, golden, mover,
                                                                  monkeypatch):
    """Leftovers on the mover's side (a killed run's metadata temp file, a backup file no
    point names) go at the end of the next run through it, append-only or not, also when
    it finds nothing new to copy (no point committed, only its retention request)."""
    src, *_ = golden
    _, token = moverauth.add_token(mover.repo, JOB, append_only=True)
    monkeypatch.setenv("FERRY_TEST_TOKEN", token)
    spec = tls_job(tmp_path, src, mover)
    run_job(spec, at=T0 + timedelta(days=4))  # copies what the shared source has new
    folder = mover.repo / JOB / MACHINE
    named = {f.name for f in folder.iterdir()}
    points = len(Repository(mover.repo).load(JOB, MACHINE).points)
    left = {f"{MACHINE}.fbm.tmp", f"{MACHINE}D2026-10-01T220000_0badc0de.fib"}
    for name in left:
        (folder / name).write_bytes(b"x" * 9000)
    res = run_job(spec, at=T0 + timedelta(days=4, hours=1))
    assert res.tasks[0].kind == "none", res.to_json()
    now = {f.name for f in folder.iterdir()}
    assert not now & left, sorted(now & left)
    assert named <= now and len(Repository(mover.repo).load(JOB, MACHINE).points) == points


def test_wrong_pin_fails_the_run(tmp_path, golden, mover, monkeypatch):
    src, *_ = golden
    monkeypatch.setenv("FERRY_TEST_TOKEN", mover.token)
    before = snapshot(mover.repo)
    spec = tls_job(tmp_path, src, mover, fingerprint="sha256:" + "0" * 64)
    res = run_job(spec, at=T0 + timedelta(days=3))
    assert res.status == "Failed"
    assert "not the pinned sha256:000" in res.tasks[0].message
    assert snapshot(mover.repo) == before


def test_missing_token_variable_fails_the_run(tmp_path, golden, mover, monkeypatch):
    src, *_ = golden
    monkeypatch.delenv("FERRY_TEST_TOKEN", raising=False)
    res = run_job(tls_job(tmp_path, src, mover), at=T0 + timedelta(days=3))
    assert res.status == "Failed" and "FERRY_TEST_TOKEN is not set" in res.tasks[0].message


class FakeMover(threading.Thread):
    """Speaks the frames but stores nothing: answers HAVE 1 for every block."""

    def __init__(self, done=None):
        super().__init__(daemon=True)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.proved = 0
        self.done = done  # a DONE answer to send instead of the well-formed one

    def run(self) -> None:
        """Serves the run's job stream and its task stream (at most 4 connections)."""
        self.sock.settimeout(30)
        try:
            for _ in range(4):
                conn, _ = self.sock.accept()
                threading.Thread(target=self.serve, args=(conn,), daemon=True).start()
        except OSError:
            return
        finally:
            self.sock.close()

    def serve(self, conn) -> None:
        end = t.SocketEndpoint(conn, timeout=30)
        try:
            begin = None
            while True:
                f = end.recv()
                if f.type == t.HELLO:
                    end.send_json(t.HELLO, {"version": t.PROTOCOL_VERSION})
                elif f.type == t.STATE:
                    end.send(t.encode(t.STATE, b"null\n"))
                elif f.type == t.BEGIN:
                    begin = f.json()
                elif f.type == t.DIGESTS and f.payload:
                    end.send(t.encode(t.HAVE, b"\x01" * (len(f.payload) // 31)))
                elif f.type == t.COMMIT:
                    end.send_json(t.DONE, self.done or {
                        "point": begin["point"], "file": "x", "size": 0, "written": 0,
                        "local": 0, "resumed": 0})
                elif f.type == t.PROVE:
                    self.proved += 1
                    n = len(f.json()["blocks"])
                    end.send(t.encode(t.PROVE, (struct.pack("<IB", 4, FLAG_RAW) + b"junk") * n))
                elif f.type in (t.HISTORY, t.MAINTAIN):
                    end.send_json(f.type, {"actions": []})
                elif f.type == t.BYE:
                    return
        except t.StreamError:
            return
        finally:
            end.close()


def _job_to(tmp_path, src, fake):
    """A job copying `src` to the fake mover (no retries: one attempt to count)."""
    job = write_job(tmp_path / "j.toml", JOB, src.repo, ["Daily"], tmp_path / "local",
                    extra="[transport]\nretries = 0\n")
    job.write_text(job.read_text().replace("[target]\n", f'[target]\nmover = "127.0.0.1:'
                                                         f'{fake.port}"\n'))
    return load_job(job)


def test_fake_mover_cannot_pass_for_one(tmp_path):
    src = Source(tmp_path, methods=("forward",), size=4 * (256 << 10) + 1000)
    src.backup(T0)
    fake = FakeMover()
    fake.start()
    res = run_job(_job_to(tmp_path, src, fake), at=T0)
    assert fake.proved == 1
    assert res.status == "Failed"
    assert "could not prove it holds block" in res.tasks[0].message


@pytest.mark.parametrize("done,match", [
    ({"point": "0123456789abcdef", "file": "x", "size": 0}, "DONE answer: written is not a count"),
    ({"point": "../../etc", "file": "x", "size": 0, "written": 0}, "point is not a point id"),
    ({"point": "0123456789abcdef", "file": "x", "size": -1, "written": 0},
     "size is not a count"),
])
def test_a_broken_done_answer_fails_the_task_with_one_line(tmp_path, done, match):
    """What a target answers is hostile too: a DONE that breaks the protocol fails the
    task, naming the frame and the field, before anything is recorded from it."""
    src = Source(tmp_path, methods=("forward",), size=4 * (256 << 10) + 1000)
    src.backup(T0)
    fake = FakeMover(done=done)
    fake.start()
    res = run_job(_job_to(tmp_path, src, fake), at=T0)
    assert res.status == "Failed"
    assert match in res.tasks[0].message and "\n" not in res.tasks[0].message
    assert res.tasks[0].point in ("", None)


@pytest.mark.parametrize("mover,match", [
    ("10.1.2.3:9000", "loopback only"),
    ("tls://10.1.2.3:9000", "needs fingerprint and token_env"),
    ("ssh://backup@dr-host:2222/srv/../etc", "expected tls://"),
    ("ssh://backup@dr-host", "expected tls://"),
])
def test_mover_addresses_are_checked(tmp_path, mover, match):
    (tmp_path / "src").mkdir()
    job = write_job(tmp_path / "j.toml", JOB, tmp_path / "src", ["Daily"], tmp_path / "local")
    job.write_text(job.read_text().replace("[target]\n", f'[target]\nmover = "{mover}"\n'))
    with pytest.raises(JobFileError, match=match):
        load_job(job)


def test_tls_listen_needs_init_and_plain_needs_loopback(tmp_path):
    with pytest.raises(moverauth.AuthError, match="ferry mover init"):
        make_server("127.0.0.1:0", tmp_path / "r")
    with pytest.raises(moverauth.AuthError, match="loopback addresses only"):
        make_server("0.0.0.0:0", tmp_path / "r", plain=True)
    fp = moverauth.init(tmp_path / "r")
    with pytest.raises(moverauth.AuthError, match="already initialised"):
        moverauth.init(tmp_path / "r")
    assert moverauth.fingerprint(tmp_path / "r") == fp
    key = tmp_path / "r" / ".ferry" / "mover" / "key.pem"
    assert oct(key.stat().st_mode)[-3:] == "600"
