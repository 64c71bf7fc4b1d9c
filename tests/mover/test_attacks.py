"""Attacks on a TLS mover over 127.0.0.1: each is refused, nothing on disk changes, and
the mover goes on serving (bounded in count and time: no test waits more than a few
seconds, none loops without a limit)."""

from __future__ import annotations

import json
import os
import socket
import time
from datetime import datetime, timedelta

import pytest

from engine.blockio import digest
from engine.copy import moverauth
from engine.copy import transport as t
from engine.copy.frames import MAX_FRAME, scrub
from engine.copy.target import pack_digest
from engine.repository.container import FLAG_RAW
from engine.repository.repository import Repository

from .conftest import JOB, OTHER, assert_serving, snapshot

BS = 256 << 10
MACHINE = "vm-forward"


def refused(m, job=JOB, machine=MACHINE, token=None) -> str:
    with pytest.raises(t.StreamError) as err:
        m.session(job, machine, token)
    return str(err.value)


def retain_request(keep: int, now: str = "2026-11-05T22:00:00") -> dict:
    return {"now": now, "mode": "periodic", "gfs_full": {}, "point": None,
            "policy": {"keep": keep, "unit": "points", "gfs": None, "deleted_items_days": 30,
                       "min_points_days_mode": 3}, "gfs_method": "", "health_checked": False,
            "compact": "off"}


def test_no_tls_is_refused(mover):
    before = snapshot(mover.repo)
    end = mover.client(tls=False, timeout=5)
    end.send_json(t.HELLO, {"version": 1, "job": JOB, "machine": MACHINE})
    with pytest.raises(t.StreamError):
        end.recv()
    end.close()
    assert snapshot(mover.repo) == before
    assert_serving(mover)


@pytest.mark.parametrize("token", ["", "ferry-mover-00000000-forged", "not-a-token"])
def test_wrong_token_is_refused(mover, token):
    before = snapshot(mover.repo)
    assert "a valid mover token is needed" in refused(mover, token=token)
    assert snapshot(mover.repo) == before
    assert_serving(mover)


def test_other_jobs_token_is_refused(mover):
    _, other = moverauth.add_token(mover.repo, OTHER)
    before = snapshot(mover.repo)
    assert "not for job 'Daily'" in refused(mover, token=other)
    # and the job's own token cannot reach the other job's folder
    assert "not for job 'Other'" in refused(mover, job=OTHER)
    assert snapshot(mover.repo) == before
    assert_serving(mover)


def test_revoked_token_is_refused_at_the_next_connection(mover):
    tid, token = moverauth.add_token(mover.repo, JOB)
    mover.session(token=token).close()
    assert moverauth.revoke_token(mover.repo, tid)
    assert "a valid mover token is needed" in refused(mover, token=token)
    stored = (mover.repo / ".ferry" / "mover" / "tokens.json").read_text()
    assert mover.token not in stored and token not in stored  # only hashes are kept
    assert oct(os.stat(mover.repo / ".ferry" / "mover" / "tokens.json").st_mode)[-3:] == "600"


def test_append_only_token_cannot_delete(mover):
    _, token = moverauth.add_token(mover.repo, JOB, append_only=True)
    before = snapshot(mover.repo)
    end = mover.session(token=token)
    end.send_json(t.RETAIN, retain_request(keep=2))
    answer = end.expect(t.RETAIN).json()
    assert answer == {"actions": [], "refused": "append-only"}
    end.send_json(t.BYE, {})
    end.close()
    changed = {k for k in set(snapshot(mover.repo)) ^ set(before)}
    assert all("/retain/" in k or k.endswith("retain") or k.endswith(JOB) for k in changed)
    assert len(Repository(mover.repo).load(JOB, MACHINE).points) == 3
    assert_serving(mover)


@pytest.mark.parametrize("keep,now,why", [
    (1, "2026-11-05T22:00:00", "below the mover's floor of 2"),
    (0, "2026-11-05T22:00:00", "below the mover's floor of 2"),
    (3, "2099-01-01T00:00:00", "ahead of the mover's"),
])
def test_short_retain_is_refused(mover, keep, now, why):
    before = snapshot(mover.repo)
    end = mover.session()
    end.send_json(t.RETAIN, retain_request(keep, now))
    answer = end.expect(t.RETAIN).json()
    assert answer["actions"] == [] and why in answer["refused"]
    end.send_json(t.BYE, {})
    end.close()
    assert snapshot(mover.repo) == before
    assert_serving(mover)


def _begin(repo, **over) -> dict:
    meta = Repository(repo).load(JOB, MACHINE)
    last = meta.points[-1]
    begin = {"kind": "incremental", "point": "0123456789abcdef", "time": "2026-11-04T22:00:00",
             "source_point": "fedcba9876543210", "base": last.id, "block_size": BS,
             "compression": "auto", "disks": [{"name": d.name, "size": d.size}
                                              for d in last.disks],
             "wan": False, "repaired": [], "facts": {}}
    begin.update(over)
    return begin


@pytest.mark.parametrize("claim", [{}, {"decoded": True}])
def test_forged_block_is_refused(mover, claim):
    """Also when BEGIN claims the source checked every block: only an in-process
    target takes that word (engine.copy.receive)."""
    before = snapshot(mover.repo)
    end = mover.session()
    end.send_json(t.BEGIN, _begin(mover.repo, **claim))
    real = os.urandom(BS)
    end.send(t.encode(t.DIGESTS, pack_digest(0, 0, BS, FLAG_RAW, digest(real))))
    assert end.expect(t.HAVE).payload == b"\x00"
    end.send(t.encode(t.DIGESTS, b""))
    end.send(t.encode_block(0, 0, BS, FLAG_RAW, digest(real), os.urandom(BS)))  # not `real`
    end.send(t.encode(t.COMMIT, b""))
    with pytest.raises(t.StreamError, match="does not match its digest"):
        end.expect(t.DONE)
    end.close()
    assert snapshot(mover.repo) == before  # no partial file, no resume marker
    assert_serving(mover)


@pytest.mark.parametrize("what", ["unasked", "commit-short", "past-end"])
def test_blocks_not_asked_for_are_refused(mover, what):
    before = snapshot(mover.repo)
    end = mover.session()
    end.send_json(t.BEGIN, _begin(mover.repo))
    data = os.urandom(BS)
    block = 10_000 if what == "past-end" else 0
    end.send(t.encode(t.DIGESTS, pack_digest(0, block, BS, FLAG_RAW, digest(data))))
    with pytest.raises(t.StreamError) if what == "past-end" else _nothing():
        end.expect(t.HAVE)
    if what != "past-end":
        end.send(t.encode(t.DIGESTS, b""))
        if what == "unasked":
            end.send(t.encode_block(0, 1, BS, FLAG_RAW, digest(data), data))
        else:
            end.send(t.encode(t.COMMIT, b""))
        with pytest.raises(t.StreamError, match="not asked for|never sent"):
            end.expect(t.DONE)
    end.close()
    assert snapshot(mover.repo) == before
    assert_serving(mover)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@pytest.mark.parametrize("after_hello", [False, True])
def test_oversize_frame_is_refused_before_allocation(mover, after_hello):
    before = snapshot(mover.repo)
    end = mover.session() if after_hello else mover.client()
    t0 = time.monotonic()
    end.send(t._HEAD.pack(t.BEGIN if after_hello else t.HELLO, 0xFFFFFFF0) + b"{")
    with pytest.raises(t.StreamError):
        end.recv(timeout=5)
    assert time.monotonic() - t0 < 5  # refused at the header, not after a timeout
    end.close()
    assert MAX_FRAME < 16 << 20
    assert snapshot(mover.repo) == before
    assert_serving(mover)


@pytest.mark.parametrize("job,machine,match", [
    ("../x", MACHINE, "path separator"), (JOB, "..", "'..'"), (JOB, ".hidden", "starts with a dot"),
    (JOB, "a/b", "path separator"), (JOB, "a\nb", "control character"),
    (JOB, "", "empty"),
])
def test_traversal_names_are_refused(mover, job, machine, match):
    before = snapshot(mover.repo)
    assert match in refused(mover, job, machine)
    assert snapshot(mover.repo) == before
    assert_serving(mover)


@pytest.mark.parametrize("over,match", [
    ({"disks": [{"name": "../../etc", "size": BS}]}, "path separator"),
    ({"disks": [{"name": ".disk", "size": BS}]}, "starts with a dot"),
    ({"point": "0123456789abcde\n"}, "16 hex"),
    ({"point": "../../../../tmp/x"}, "16 hex"),
    ({"block_size": 12345}, "power of two"),
    ({"facts": {"repair": [[0, 1]]}}, "not one a source may set"),
    ({"kind": "nonsense"}, "kind"),
])
def test_bad_begin_is_refused(mover, over, match):
    before = snapshot(mover.repo)
    end = mover.session()
    end.send_json(t.BEGIN, _begin(mover.repo, **over))
    with pytest.raises(t.StreamError, match=match) as err:
        end.expect(t.HAVE)
    assert str(mover.repo) not in str(err.value)
    end.close()
    assert snapshot(mover.repo) == before
    assert_serving(mover)


def test_idle_connections_are_dropped(mover):
    t0 = time.monotonic()
    raw = socket.create_connection(("127.0.0.1", mover.port), 5)
    raw.settimeout(10)
    assert raw.recv(1) == b""  # no TLS handshake: dropped at the HELLO timeout (2 s)
    assert time.monotonic() - t0 < 8
    raw.close()
    end = mover.session()  # after HELLO: dropped at the idle timeout (3 s)
    t0 = time.monotonic()
    with pytest.raises(t.StreamError):
        end.recv(timeout=10)
    assert time.monotonic() - t0 < 9
    end.close()
    assert_serving(mover)


def test_connection_flood_is_bounded(mover):
    limit = mover.server.max_connections
    held = [socket.create_connection(("127.0.0.1", mover.port), 5) for _ in range(limit)]
    deadline = time.monotonic() + 5
    while mover.server._count < limit and time.monotonic() < deadline:
        time.sleep(0.02)
    assert mover.server._count == limit
    extra = [socket.create_connection(("127.0.0.1", mover.port), 5) for _ in range(limit)]
    for s in extra:  # refused at once (before any thread or TLS handshake)
        s.settimeout(5)
        assert s.recv(1) == b""
        s.close()
    for s in held:  # the idle ones go at the HELLO timeout, and the mover serves again
        s.settimeout(10)
        assert s.recv(1) == b""
        s.close()
    deadline = time.monotonic() + 5
    while mover.server._count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert_serving(mover)


def test_errors_to_clients_name_no_server_path(tmp_path):
    root = tmp_path / "srv" / "repo"
    line = f"cannot open {root}/Daily/vm/vm.fbm: damaged (see /var/lib/x.log)"
    out = scrub(line, root)
    assert str(root) not in out and "/var/lib" not in out and "damaged" in out


def test_prove_answers_only_real_blocks(mover):
    meta = Repository(mover.repo).load(JOB, MACHINE)
    end = mover.session()
    end.send_json(t.PROVE, {"point": meta.points[-1].id, "blocks": [[0, b] for b in range(40)]})
    with pytest.raises(t.StreamError, match="at most"):
        end.expect(t.PROVE)
    end.close()
    assert_serving(mover)


def test_mover_log_lines(mover, caplog):
    caplog.set_level("INFO", logger="ferry")
    refused(mover, token="ferry-mover-00000000-forged")
    assert_serving(mover)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any("session: job Daily" in r.getMessage()
                                                  for r in caplog.records):
        time.sleep(0.02)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "connection from 127.0.0.1" in text
    assert "refused Daily/vm-forward: a valid mover token is needed" in text
    assert "session: job Daily machine vm-forward" in text
    assert mover.token not in text


def _unused(*_):  # keep imports honest for json/datetime users below
    return json, datetime, timedelta
