"""A console-started run outlives the console: the tmux session (the SSH link) is killed
mid-run, the run finishes Success headless, and a new console shows it (real terminal)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from test_console_live_attach import build
from test_console_tmux import alive, screen, tmux, wait

from engine.history import History
from engine.live import paths
from engine.live.client import list_sessions

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def console(session: str, jobs: Path, home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    command = f"cd {ROOT} && env XDG_CONFIG_HOME={home} {Path(sys.executable)} -m console " \
              f"--jobs {jobs}"
    for _ in range(20):  # a server whose last session was just killed may still be exiting
        started = subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "120",
                                  "-y", "32", command], env=env, capture_output=True, text=True,
                                 timeout=20)
        if started.returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError(started.stderr)


def test_killed_tmux_leaves_the_run_to_finish_and_a_new_console_shows_it(tmp_path: Path) -> None:
    jobs = build(tmp_path, "1MiB/s")
    first, second = (f"ferry-test-{uuid.uuid4().hex[:8]}" for _ in range(2))
    console(first, jobs, tmp_path / "xdg")
    try:
        assert wait(lambda: "DR copy" in screen(first)), screen(first)
        tmux("send-keys", "-t", first, "s")
        published = paths.jobs_sessions_dir(jobs)
        assert wait(lambda: any(i.alive for i in list_sessions([published], fresh=False)),
                    timeout=20), screen(first)
        info = list_sessions([published], fresh=False)[0]
        assert info.snapshot["started_by"] == "console"
        pid, start = info.snapshot["pid"], info.snapshot["pid_start"]
        tmux("kill-session", "-t", first)  # the pane's processes get SIGHUP
        assert paths.is_alive(pid, start), "the hang-up ended the run"
        console(second, jobs, tmp_path / "xdg")
        # the new console attaches to the headless run, then sees it finish
        assert wait(lambda: "Running" in screen(second), timeout=20), screen(second)
        assert wait(lambda: not paths.is_alive(pid, start), timeout=90), "run never ended"
        assert wait(lambda: "Success" in screen(second), timeout=20), screen(second)
        tmux("send-keys", "-t", second, "q")
        assert wait(lambda: not alive(second), timeout=15), screen(second)
    finally:
        for s in (first, second):
            if alive(s):
                tmux("kill-session", "-t", s)
        end = time.monotonic() + 30
        while time.monotonic() < end and any(i.alive for i in list_sessions(
                [paths.jobs_sessions_dir(jobs)], fresh=False)):
            time.sleep(0.2)
    row = History(tmp_path / "dr" / ".ferry" / "history.sqlite").sessions("DR copy")[0]
    assert row["status"] == "Success", row
    assert "console hung up at" in row["message"]
