"""kill -9 at random moments of copy, merge and GC on a real Ceph cluster: no point lost.

Each attempt forks a child that runs the copy job and SIGKILLs itself just before
(or a few milliseconds after) its k-th S3 request, k drawn at random over the
requests a whole run makes: a real kill -9, landing in uploads, the manifest and
`chain.json` commits, merges and garbage collection alike, without paying a
process start per kill. After every kill the chain must load, every point in it
must read back byte-identical to its source point, and the newest point committed
before the kill must still be there. Every run that completes must leave exactly
the objects its chain references (GC finished what killed runs left behind).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from datetime import datetime, timedelta

from copyjob.conftest import BS, Source

from engine.blockio import decompressor, digest
from engine.copy.runner import run_job
from engine.objstore.manifest import Manifest, object_name
from engine.objstore.open import open_repository
from engine.objstore.store import Bucket
from engine.repository.container import FLAG_ZERO, decode_block

from .test_s3_copy import s3_job

T0 = datetime(2026, 10, 1, 22, 0)
JOB, MACHINE = "S3 copy", "vm-forever-forward"
KILLS = 50
CHILD_TIMEOUT = 60.0


def _child(spec, at: datetime, kill_at: int, delay: float, count_file) -> None:
    """In the forked child: run the job, SIGKILL ourselves around request `kill_at`;
    a run that ends writes how many requests it made to `count_file`."""
    lock = threading.Lock()
    seen = [0]
    orig = Bucket._count

    def counting(self, op: str) -> None:
        with lock:
            seen[0] += 1
            n = seen[0]
        if n == kill_at:
            if delay <= 0:
                os.kill(os.getpid(), signal.SIGKILL)
            threading.Timer(delay, os.kill, (os.getpid(), signal.SIGKILL)).start()
        orig(self, op)

    Bucket._count = counting  # type: ignore[method-assign]
    try:
        res = run_job(spec, at=at)
        count_file.write_text(str(seen[0]))
        os._exit(0 if res.status == "Success" else 1)
    except BaseException:  # noqa: BLE001 - the parent only reads the exit status
        os._exit(3)


def _run(spec, at: datetime, count_file, kill_at: int = 0,
         delay: float = 0.0) -> tuple[bool, int]:
    """(killed by SIGKILL, exit code otherwise)."""
    pid = os.fork()
    if pid == 0:
        _child(spec, at, kill_at, delay, count_file)
    end = time.monotonic() + CHILD_TIMEOUT
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > end:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"copy run did not end within {CHILD_TIMEOUT} s")
        time.sleep(0.005)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return True, -1
    return False, os.WEXITSTATUS(status)


def _read(repo, meta, point) -> bytes:
    """A point's disk, every block checked against its digest."""
    with repo.view(meta, point) as view:
        disk = view.disks[0]
        out = bytearray(disk.size)
        dctx = decompressor()
        for b, loc in view.blocks(disk.name).items():
            raw = decode_block(view.read_stored(loc), loc.entry, dctx)
            assert digest(raw) == loc.entry.digest, f"block {b} of {point.id}"
            out[b * view.block_size:b * view.block_size + len(raw)] = raw
    return bytes(out)


def _objects(repo) -> tuple[set[str], set[str]]:
    key = repo.machine_key(JOB, MACHINE) + "/"
    names = {k[len(key):] for k, _ in repo.bucket.list(key)}
    return ({n for n in names if n.startswith("points/")},
            {n for n in names if n.startswith(("blocks/", "packs/"))})


def test_kill9_during_copy_merge_and_gc_loses_no_point(tmp_path, bucket, monkeypatch):
    # small packs (the forked runs inherit the setting): a copy of these few blocks then
    # makes several pack PUTs, as a real one of thousands does, so kills land among them;
    # one block per pack or a few, drawn per attempt
    import engine.objstore.upload as s3upload
    src = Source(tmp_path, methods=("forever-forward",), size=8 * BS + 1000, seed=3)
    m = src.machines[MACHINE]
    url = f"s3://{bucket}/dr"
    spec = s3_job(tmp_path, src, url, keep=2, mode="immediate")
    repo = open_repository(url)
    rng = random.Random(14)
    phases = {"copy": 0, "merge": 0, "gc": 0, "after": 0}
    kills = completed = day = 0
    requests = 60  # a first guess of a run's requests; refined by each completed run
    t_start = time.monotonic()
    newest_before = None
    counts = tmp_path / "requests"
    while kills < KILLS:
        assert day < 4 * KILLS, "too few kills landed"
        when = T0 + timedelta(days=day)
        src.backup(when, keep=3)
        want_source = list(m.states)[-1]
        for _attempt in range(rng.randint(3, 5)):
            k = rng.randint(1, requests + requests // 3)
            monkeypatch.setattr(s3upload, "PACK_BYTES", rng.choice((1, BS // 2)))
            killed, code = _run(spec, when + timedelta(minutes=30), counts, k,
                                rng.choice((0.0, 0.0, 0.002, 0.01)))
            if not killed:
                assert code == 0, "a run that was not killed must succeed"
                break
            kills += 1
            meta = repo.try_load(JOB, MACHINE)
            if meta is None:  # the very first full never committed
                assert newest_before is None
                phases["copy"] += 1
                continue
            ids = [p.id for p in meta.points]
            assert newest_before is None or newest_before in ids, "a committed point was lost"
            for p in meta.points:
                assert _read(repo, meta, p) == m.states[p.source_point], (kills, p.id)
            committed = meta.points[-1].source_point == want_source
            if not committed:
                phases["copy"] += 1
            elif len(meta.points) > 2:
                phases["merge"] += 1
            elif meta.facts.get("gc_pending"):
                phases["gc"] += 1
            else:
                phases["after"] += 1
        # then the run completes: the point is there, retention and GC are finished
        killed, code = _run(spec, when + timedelta(minutes=45), counts)
        assert not killed and code == 0
        completed += 1
        meta = repo.load(JOB, MACHINE)
        assert meta.points[-1].source_point == want_source
        assert len(meta.points) == min(2, day + 1)
        assert not meta.facts.get("gc_pending")
        newest_before = meta.points[-1].id
        manifests, blocks = _objects(repo)
        assert manifests == {p.file for p in meta.points}, "GC left (or lost) manifests"
        used = set()
        for p in meta.points:
            blob = repo.bucket.get(f"{repo.machine_key(JOB, MACHINE)}/{p.file}", 1 << 24)
            mf = Manifest.decode(blob, p.file)
            used |= {object_name(e) for d in mf.disks.values()
                     for e in d.blocks.values() if e.flags != FLAG_ZERO}
        assert blocks == used, "GC left unreferenced blocks (or lost referenced ones)"
        for p in meta.points:
            assert _read(repo, meta, p) == m.states[p.source_point]
        requests = max(10, int(counts.read_text()))
        day += 1
    elapsed = time.monotonic() - t_start
    print(f"{kills} kills, {completed} completed runs, phases {phases}, {elapsed:.1f} s")
    assert kills >= KILLS
    assert phases["copy"] >= 5 and phases["gc"] + phases["merge"] >= 5, phases

