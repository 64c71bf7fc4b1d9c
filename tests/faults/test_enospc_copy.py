"""ENOSPC on a real small file system during copy runs, then space is added.

The restore truth after every run: each point the target names exports exactly the
source point it came from, and a run that could not copy says Failed and why.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from retention_e2e.replaykit import START, Lab

from engine.copy.runner import SessionResult, run_job
from engine.jobs.load import load_job

from .conftest import MIB

BIG = 64  # blocks of 256 KiB: a 16 MiB full that does not fit
SMALL = 4


def run_bounded(spec, at, limit: float = 240.0) -> SessionResult:
    """run_job in a thread that must end within `limit` seconds (a hang is the bug)."""
    out: list = []
    th = threading.Thread(target=lambda: out.append(run_job(spec, at=at)), daemon=True)
    th.start()
    th.join(limit)
    assert not th.is_alive(), f"ferry run still running after {limit:.0f}s: it hangs"
    assert out, "run_job raised instead of reporting"
    return out[0]


def _lab(tmp_path: Path, target: Path) -> Lab:
    lab = Lab(tmp_path, machines=("vm1", "vm2"), blocks=BIG, source_keep=5, full_every=1000)
    lab.disks["vm2"].data = lab.disks["vm2"].data[:SMALL * (256 << 10)]
    lab.dst = target
    return lab


def _tasks(res: SessionResult) -> dict[str, object]:
    return {t.machine: t for t in res.tasks}


def test_enospc_during_a_full_fails_it_releases_the_space_and_the_rerun_is_exact(
        tmp_path, small_fs):
    fs = small_fs(8 * MIB)
    lab = _lab(tmp_path, fs.path / "dr")
    job = lab.job("E", keep=3)
    job.write_text(job.read_text() + "\n[transport]\nretries = 0\nparallel_tasks = 1\n")
    spec = load_job(job)
    # day 0: only the small machine exists, its full fits
    lab.backup(START, machines=["vm2"])
    assert run_bounded(spec, START).status == "Success"
    # day 1: the big machine's full cannot fit; the small one needs a small increment
    t1 = START + timedelta(days=1)
    lab.backup(t1)
    res = run_bounded(spec, t1)
    tasks = _tasks(res)
    assert res.status == "Failed"
    assert tasks["vm1"].status == "Failed"
    assert "No space left on device" in tasks["vm1"].message
    # the failed full's partial file is gone: the other machine still got its increment
    assert tasks["vm2"].status == "Success", tasks["vm2"].message
    folder = fs.path / "dr" / "E" / "vm1"
    assert not [f for f in folder.iterdir() if f.name.endswith((".part", ".journal"))] \
        if folder.exists() else True
    assert lab.chain("E", "vm1") == []
    lab.check_exports("E", "vm2")
    # the admin adds space: the rerun copies the full, every point is exact
    fs.resize(64 * MIB)
    res = run_bounded(spec, t1 + timedelta(hours=1))
    assert res.status == "Success", res.to_json()
    assert lab.check_exports("E", "vm1") == 1
    assert lab.check_exports("E", "vm2") == 2
    assert not list(folder.glob("*.part")) and not (folder / "resume.json").exists()


def test_enospc_resumed_many_times_never_commits_a_wrong_point(tmp_path, small_fs):
    """The issue's scenario, repeated: a full hits a full file system, space is added a
    little at a time and the run retried; whatever each run says, a committed point
    is exact and Success only comes with a complete point."""
    fs = small_fs(20 * MIB)
    # 40 MiB: past the journal's 16 MiB sync interval, so a run can end with a journal
    lab = Lab(tmp_path, machines=("vm1",), blocks=160, full_every=1000)
    lab.dst = fs.path / "dr"
    job = lab.job("R", keep=3)
    job.write_text(job.read_text() + "\n[transport]\nretries = 0\n")
    spec = load_job(job)
    lab.backup(START)
    statuses = []
    for i, size in enumerate((20, 26, 32, 38, 90)):
        fs.resize(size * MIB)
        res = run_bounded(spec, START + timedelta(minutes=i))
        statuses.append(res.status)
        chain = lab.chain("R")
        if res.status == "Success":
            assert len(chain) == 1
        else:
            assert chain == [] and "No space left on device" in res.tasks[0].message
        lab.check_exports("R")
    assert statuses[0] == "Failed" and statuses[-1] == "Success", statuses


def test_target_failing_mid_stream_ends_the_run_failed_without_hanging(tmp_path, small_fs):
    """The target's writer fails after a few MiB of a 40 MiB full while the source still
    has most blocks to send: the source is woken, the run ends Failed, naming ENOSPC."""
    fs = small_fs(4 * MIB)
    lab = Lab(tmp_path, machines=("vm1",), blocks=160, full_every=1000)
    lab.dst = fs.path / "dr"
    job = lab.job("H", keep=3)
    job.write_text(job.read_text() + "\n[transport]\nretries = 0\n")
    spec = load_job(job)
    lab.backup(START)
    for i in range(3):
        res = run_bounded(spec, START + timedelta(minutes=i), limit=120)
        assert res.status == "Failed"
        assert "No space left on device" in res.tasks[0].message, res.tasks[0].message
        assert lab.chain("H") == []


def test_killed_tcp_target_mover_mid_stream_fails_the_run_in_bounded_time(tmp_path):
    import socket
    import subprocess
    import sys
    import time

    from copyjob.conftest import ROOT

    lab = Lab(tmp_path, machines=("vm1",), blocks=160, full_every=1000)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    remote = tmp_path / "remote"
    mover = subprocess.Popen([sys.executable, "-m", "engine.cli", "mover", "--plain", "--listen",
                              f"127.0.0.1:{port}", "--repo", str(remote)],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert "listening" in mover.stdout.readline()
        job = lab.job("T", keep=3)
        job.write_text(job.read_text().replace(
            "[target]\n", f'[target]\nmover = "127.0.0.1:{port}"\n')
            + '\n[transport]\nretries = 0\nrate_limit = "8MiB/s"\n')
        spec = load_job(job)
        lab.backup(START)
        folder = remote / "T" / "vm1"

        def kill_when_streaming() -> None:
            end = time.monotonic() + 60
            while time.monotonic() < end and not list(folder.glob("*.part")):
                time.sleep(0.01)
            time.sleep(0.5)  # ~4 MiB into a 40 MiB stream at 8 MiB/s
            mover.kill()

        killer = threading.Thread(target=kill_when_streaming, daemon=True)
        killer.start()
        res = run_bounded(spec, START, limit=120)
        killer.join(10)
        assert mover.poll() is not None, "the mover was killed during the run"
        assert res.status == "Failed"
        assert res.tasks[0].stats.blocks_sent < 150, res.tasks[0].to_json()
    finally:
        if mover.poll() is None:
            mover.kill()
        mover.wait(timeout=10)
