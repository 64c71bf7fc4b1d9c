"""The console attaches to a `ferry run` started outside it and steers it (real run, real socket)."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import sys
import time
from pathlib import Path

from console_helpers import settle, wait_until

from console.app import FerryConsole
from console.run_model import ON_HOLD, RUNNING
from console.screens.confirm import ConfirmModal
from console.screens.live import LiveRunScreen
from engine.cli import main as ferry_main
from engine.history import History
from engine.live import paths
from engine.live.client import list_sessions
from engine.model import Status

ROOT = Path(__file__).resolve().parents[2]
MACHINES = ("db01", "web01", "web02")


def build(root: Path, rate: str) -> Path:
    """Three machines of 6 MiB (incompressible, 256 KiB blocks) and a rate-limited job."""
    import contextlib
    import io

    rng = random.Random(5)
    (root / "disks").mkdir(parents=True)
    for machine in MACHINES:
        disk = root / "disks" / f"{machine}.img"
        disk.write_bytes(rng.randbytes(6 << 20))
        with contextlib.redirect_stdout(io.StringIO()):
            assert ferry_main(["backup", "--repo", str(root / "primary"), "--job", "Daily",
                               "--machine", machine, "--disk", str(disk), "--block-size",
                               "256KiB", "--at", "2026-11-24T21:00"]) == 0
    jobs = root / "jobs"
    jobs.mkdir()
    (jobs / "dr-copy.toml").write_text(f"""name = "DR copy"
[source]
repository = "../primary"
jobs = ["Daily"]
[target]
repository = "../dr"
[retention]
keep = 7
[transport]
rate_limit = "{rate}"
retries = 0
""")
    return jobs


def outside_run(jobs: Path) -> subprocess.Popen:
    run = subprocess.Popen([sys.executable, "-m", "engine.cli", "run",
                            str(jobs / "dr-copy.toml"), "--json"], cwd=ROOT,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 30
    while time.monotonic() < end:
        assert run.poll() is None, run.communicate()
        found = list_sessions([paths.jobs_sessions_dir(jobs)], fresh=False)
        if found and found[0].alive:
            return run
        time.sleep(0.05)
    raise AssertionError("the outside run never published its session")


def test_console_attaches_to_an_outside_run_and_holds_resumes_stops_it(tmp_path: Path) -> None:
    # 18 MiB at 256 KiB/s: a run of about 70 s, which the test stops long before its end
    # even on a loaded machine, while each machine still moves a block every ~3 s
    jobs = build(tmp_path, "256KiB/s")
    key = str(jobs / "dr-copy.toml")
    run = outside_run(jobs)

    async def body() -> None:
        app = FerryConsole(jobs, pump_interval=0.05, watch_hangup=False)
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_until(pilot, lambda: key in app.sessions, timeout=15, what="attached")
            session = app.sessions[key]
            assert session.remote is not None and not session.local
            assert session.started_by == "cli"
            rows = session.model.rows
            await wait_until(pilot, lambda: any(r.state == RUNNING and r.read for r in
                                                rows.values()), timeout=15, what="progress")
            assert sorted(rows) == list(MACHINES)
            machine = next(n for n, r in rows.items() if r.state == RUNNING)
            app.steering.hold(key, machine)
            await wait_until(pilot, lambda: rows[machine].state == ON_HOLD and
                             rows[machine].hold_by == "operator", timeout=15, what="held")
            read = rows[machine].read
            app.steering.resume(key, machine)
            await wait_until(pilot, lambda: rows[machine].state != ON_HOLD and
                             rows[machine].read > read, timeout=15, what="resumed")
            app.steering.hold(key)  # the whole job: nothing finishes while the test goes on
            await wait_until(pilot, lambda: session.held_by_operator, timeout=15, what="job held")
            # Start on a job running elsewhere opens that run
            app.start_job(key)
            await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen))
            assert app.screen.session is session
            app.steering.stop(key)
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            await pilot.press("y")
            await wait_until(pilot, lambda: not session.active, timeout=60, what="run end")
            await settle(pilot)
            assert app.store.last_status(key) == Status.FAILED

    asyncio.run(body())
    out, err = run.communicate(timeout=60)
    assert run.returncode == 2, err
    result = json.loads(out)
    assert "stopped by operator" in result["message"]
    row = History(tmp_path / "dr" / ".ferry" / "history.sqlite").sessions("DR copy")[0]
    assert row["id"] == result["session"] and "stopped by operator" in row["message"]


def test_console_says_a_dead_run_was_interrupted(tmp_path: Path) -> None:
    jobs = build(tmp_path, "0")
    folder = paths.jobs_sessions_dir(jobs) / "deadbeef0001"
    folder.mkdir(parents=True)
    # a session whose process is gone: this pid exists, but not with that start time
    (folder / "state.json").write_text(json.dumps({
        "job": "DR copy", "session": "deadbeef0001", "pid": 1, "pid_start": -1,
        "started_by": "daemon", "started": "2026-12-01T22:00:00Z", "socket": "x",
        "machines": [{"machine": "db01", "state": "running"}]}))

    async def body() -> None:
        app = FerryConsole(jobs, pump_interval=0.05, watch_hangup=False)
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_until(pilot, lambda: any(
                "was interrupted" in n.message for n in app._notifications), timeout=15,
                what="the interrupted notice")
            assert str(jobs / "dr-copy.toml") not in app.sessions  # not shown as running
            await pilot.pause(1.5)  # the next scans say it no more
            assert sum("was interrupted" in n.message for n in app._notifications) == 1

    asyncio.run(body())
