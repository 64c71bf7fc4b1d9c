"""Hold/resume on a locked source chain, one run per job, and kill -9 during a copy."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from engine.backup import take_backup
from engine.repository.metadata import copy_path
from engine.repository.repository import Repository

from .conftest import BS, ROOT, T0, Source, exported, ferry, write_job

JOBS = ["Daily", "Forever", "Reverse"]


def hold_lock(path: Path) -> subprocess.Popen:
    """Another process holding an exclusive flock on a chain (as a source job would)."""
    code = ("import fcntl,os,sys,time; fd=os.open(sys.argv[1], os.O_RDWR|os.O_CREAT); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()")
    p = subprocess.Popen([sys.executable, "-c", code, str(path)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_locked_source_chain_goes_on_hold_and_resumes(tmp_path, source):
    source.backup(T0)
    job = write_job(tmp_path / "j.toml", "J", source.repo, JOBS, tmp_path / "dr")
    locked = source.repo / "Reverse" / "vm-reverse" / "lock"
    holder = hold_lock(locked)
    run = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(job), "--json"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        repo = Repository(tmp_path / "dr")
        # the other machines finish while one is on hold
        while time.monotonic() < deadline:
            done = [m for m in ("vm-forward", "vm-forever-forward") if repo.has("J", m)]
            if len(done) == 2:
                break
            time.sleep(0.05)
        assert len(done) == 2, "unlocked machines should be copied while one is held"
        assert run.poll() is None, "the run must wait for the held machine"
        assert not repo.has("J", "vm-reverse")
        time.sleep(0.5)
    finally:
        holder.stdin.close()
        holder.wait()
    out, err = run.communicate(timeout=60)
    assert run.returncode == 0, err
    data = json.loads(out)
    held = {t["machine"]: t["held_s"] for t in data["tasks"]}
    assert held["vm-reverse"] >= 0.5 and held["vm-forward"] < 0.5
    assert exported(tmp_path / "dr", "J", "vm-reverse", "latest", tmp_path / "x") == \
        source.machines["vm-reverse"].states[
            repo.load("J", "vm-reverse").points[-1].source_point]


def test_hold_timeout_gives_up_with_exit_3(tmp_path, source):
    source.backup(T0)
    job = write_job(tmp_path / "j.toml", "J", source.repo, ["Daily"], tmp_path / "dr")
    holder = hold_lock(source.repo / "Daily" / "vm-forward" / "lock")
    try:
        proc = ferry("run", job, "--hold-timeout", "1s", "--json")
    finally:
        holder.stdin.close()
        holder.wait()
    assert proc.returncode == 3, proc.stderr
    task = json.loads(proc.stdout)["tasks"][0]
    assert task["status"] == "Failed" and "gave up waiting" in task["message"]


def test_two_runs_of_one_job_are_refused(tmp_path, source):
    source.backup(T0)
    job = write_job(tmp_path / "j.toml", "J", source.repo, JOBS, tmp_path / "dr")
    holder = hold_lock(source.repo / "Daily" / "vm-forward" / "lock")  # keeps run 1 busy
    first = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(job)], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "dr" / "J" / ".job.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        second = ferry("run", job)
        assert second.returncode == 3
        assert "already running" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        holder.stdin.close()
        holder.wait()
    first.communicate(timeout=60)
    assert first.returncode == 0


def _journaled_blocks(folder: Path) -> int:
    total = 0
    for j in folder.glob("*.journal"):
        head = j.read_bytes().split(b"\n", 1)
        total += len(head[1]) // 51 if len(head) == 2 else 0
    return total


def test_kill_9_during_copy_loses_nothing_and_resends_nothing(tmp_path):
    """SIGKILL a rate-limited `ferry run` at many moments; committed points stay exact, no
    half point is visible, and the rerun sends only the blocks not yet durable."""
    src = Source(tmp_path, methods=("forward",), size=160 * BS, seed=3)
    m = next(iter(src.machines.values()))
    job = write_job(tmp_path / "j.toml", "K", src.repo, ["Daily"], tmp_path / "dr", keep=3,
                    extra='[transport]\nrate_limit = "24MiB/s"\nretries = 0\n')
    rng = random.Random(5)
    repo = Repository(tmp_path / "dr")
    folder = tmp_path / "dr" / "K" / m.name
    resumed_runs = 0
    for day in range(6):
        src.backup(T0 + timedelta(days=day), mutate=60)
        for attempt in range(2):  # kill twice per point, then let it finish
            before = [(p.id, p.source_point) for p in repo.load("K", m.name).points] \
                if repo.has("K", m.name) else []
            p = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(job), "--at",
                                  (T0 + timedelta(days=day, hours=1)).isoformat()], cwd=ROOT,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if day == 0 and attempt == 0:  # the first kill lands right after a journal sync
                deadline = time.monotonic() + 30
                while not (folder.exists() and _journaled_blocks(folder)) \
                        and time.monotonic() < deadline and p.poll() is None:
                    time.sleep(0.01)
            else:
                time.sleep(rng.uniform(0.3, 1.6))
            p.send_signal(signal.SIGKILL)
            p.wait()
            after = repo.load("K", m.name).points if repo.has("K", m.name) else []
            ids = [(x.id, x.source_point) for x in after]
            # committed points are never lost; at most the new one appeared, complete
            if before:  # retention may merge old points, but never loses the newest
                assert before[-1][1] in [sp for _, sp in ids]
            for x in after:
                assert (folder / x.file).exists()
                got = exported(tmp_path / "dr", "K", m.name, x.id, tmp_path / f"k{x.id}")
                assert got == m.states[x.source_point]
            if day == 0 and attempt == 0:
                journaled = _journaled_blocks(folder)
                assert journaled, "the first kill should land after a journal sync"
                again = ferry("run", job, "--json", "--at",
                              (T0 + timedelta(hours=1)).isoformat())
                task = json.loads(again.stdout)["tasks"][0]
                # blocks that reached the target before the kill are not sent again
                assert task["read"] <= (158 - journaled) * BS + BS, (task, journaled)
                resumed_runs += 1
                break
        journaled = _journaled_blocks(folder) if folder.exists() else 0
        proc = ferry("run", job, "--json", "--at", (T0 + timedelta(days=day, hours=1)).isoformat())
        assert proc.returncode == 0, proc.stderr
        task = json.loads(proc.stdout)["tasks"][0]
        if task["kind"] != "none" and journaled:
            resumed_runs += 1
            plan_blocks = 160 if task["kind"] == "full" else None
            if plan_blocks:
                # blocks that reached the target before the kill are not sent again
                zero_blocks = 2
                assert task["read"] <= (plan_blocks - zero_blocks - journaled) * BS + BS
        last = repo.load("K", m.name).points[-1]
        assert exported(tmp_path / "dr", "K", m.name, last.id, tmp_path / f"l{day}") == \
            m.states[last.source_point]
    assert resumed_runs >= 1, "no kill happened after a journal sync: the test proved nothing"
    assert not list(folder.glob("*.part")) and not list(folder.glob("*.journal"))
    assert os.listdir(folder)


def test_retries_failed_machines(tmp_path, source):
    """A machine that fails (source chain damaged) is retried `retries` times."""
    source.backup(T0)
    job = write_job(tmp_path / "j.toml", "J", source.repo, ["Daily"], tmp_path / "dr",
                    extra='[transport]\nretries = 2\nretry_wait = "0.1s"\n')
    fbm = source.repo / "Daily" / "vm-forward" / "vm-forward.fbm"
    fbm.write_text("{broken")
    copy_path(fbm).write_text("{broken")  # both copies (one alone loses nothing)
    proc = ferry("run", job, "--json")
    assert proc.returncode == 2
    task = json.loads(proc.stdout)["tasks"][0]
    assert task["attempts"] == 3 and "metadata" in task["message"]
    assert take_backup  # the real source job module is what wrote the chain
