"""A real mover (TLS on 127.0.0.1, in a thread of the test process) and a raw client.

The chain the attacks aim at is built once per module by two real copy runs through
TLS; each test serves its own copy of it, so an attack that changed anything shows.
"""

from __future__ import annotations

import hashlib
import shutil
import socket
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from copyjob.conftest import T0, Source, write_job

from engine.copy import moverauth
from engine.copy import transport as t
from engine.copy.links import MoverAddress, connect_tls
from engine.copy.runner import run_job
from engine.copy.server import MoverServer, make_server
from engine.jobs.load import load_job

JOB, OTHER = "Daily", "Other"


@dataclass
class Mover:
    repo: Path
    port: int
    fingerprint: str
    server: MoverServer
    token: str  # full token for JOB

    def client(self, tls: bool = True, timeout: float = 10.0) -> t.Endpoint:
        if tls:
            end = connect_tls(MoverAddress("tls", "127.0.0.1", self.port), self.fingerprint)
        else:
            end = t.SocketEndpoint(socket.create_connection(("127.0.0.1", self.port), 5))
        end.timeout = timeout
        return end

    def session(self, job: str = JOB, machine: str = "vm-forward", token: str | None = None):
        """A TLS client past HELLO (raises StreamError with the mover's refusal)."""
        end = self.client()
        end.send_json(t.HELLO, {"version": t.PROTOCOL_VERSION, "job": job, "machine": machine,
                                "token": self.token if token is None else token})
        end.expect(t.HELLO)
        return end


def snapshot(repo: Path) -> dict[str, str]:
    """Every file of the repository and its content hash (the mover's log aside)."""
    out = {}
    for p in sorted(repo.rglob("*")):
        rel = str(p.relative_to(repo))
        if rel.endswith("mover.log"):
            continue
        out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def tls_job(tmp: Path, source: Source, mover: Mover, env: str = "FERRY_TEST_TOKEN",
            keep: int = 7, fingerprint: str | None = None):
    job = write_job(tmp / "job.toml", JOB, source.repo, ["Daily"], tmp / "local", keep=keep,
                    extra="[transport]\nretries = 0\n")
    text = job.read_text().replace("[target]\n", f'[target]\nmover = "tls://127.0.0.1:'
                                   f'{mover.port}"\nfingerprint = '
                                   f'"{fingerprint or mover.fingerprint}"\n'
                                   f'token_env = "{env}"\n')
    job.write_text(text)
    return load_job(job)


def start(repo: Path, token: str, fingerprint: str, floor=None) -> Mover:
    srv = make_server("127.0.0.1:0", repo, idle=3.0, max_connections=4, floor=floor)
    srv.hello_timeout = 2.0
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    return Mover(repo, srv.server_address[1], fingerprint, srv, token)


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    """A source and a target chain of 3 points made through TLS (Success each)."""
    root = tmp_path_factory.mktemp("golden")
    src = Source(root, methods=("forward",), size=4 * (256 << 10) * 2 + 1000)
    repo = root / "dr"
    fp = moverauth.init(repo)
    _, token = moverauth.add_token(repo, JOB)
    m = start(repo, token, fp)
    mp = pytest.MonkeyPatch()
    mp.setenv("FERRY_TEST_TOKEN", token)
    try:
        spec = tls_job(root, src, m)
        for day in range(3):
            src.backup(T0 + timedelta(days=day))
            res = run_job(spec, at=T0 + timedelta(days=day))
            assert res.status == "Success", res.to_json()
    finally:
        mp.undo()
        m.server.shutdown()
        m.server.server_close()
    return src, repo, token, fp


@pytest.fixture
def mover(tmp_path, golden):
    """A fresh mover serving a copy of the golden chain."""
    _, repo, token, fp = golden
    mine = tmp_path / "dr"
    shutil.copytree(repo, mine)
    m = start(mine, token, fp)
    yield m
    m.server.shutdown()
    m.server.server_close()


def assert_serving(m: Mover) -> None:
    """The mover still answers a legitimate session."""
    end = m.session()
    end.send_json(t.STATE, {})
    f = end.expect(t.STATE)
    assert b'"points"' in f.payload
    end.send_json(t.BYE, {})
    end.close()
