"""The console in a real terminal (tmux): it draws the jobs, quits on `q`, exits on
SIGHUP (what an SSH drop sends), and hands the job file to $EDITOR (`E`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def tmux(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, timeout=20)


def wait(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def alive(session: str) -> bool:
    return tmux("has-session", "-t", session).returncode == 0


def start(tmp_path: Path, colours: str = "truecolor", editor: str = ""
          ) -> tuple[str, Path]:
    """The console on real sample repositories in a new tmux session (100x30)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from console_real_repos import build

    jobs = build(tmp_path)
    (jobs / "offsite.toml").write_text((jobs / "dr-copy.toml").read_text().replace(
        'name = "DR copy"', 'name = "Offsite weekly"'))
    session = f"ferry-test-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    env.pop("NO_COLOR", None)
    env.pop("VISUAL", None)
    if colours == "16 colours":
        env["TEXTUAL_COLOR_SYSTEM"] = "standard"
    elif colours == "NO_COLOR":
        env["NO_COLOR"] = "1"
    if editor:
        env["EDITOR"] = editor
    python = Path(sys.executable)
    exports = " ".join(f"{k}={v}" for k, v in env.items()
                       if k in ("TEXTUAL_COLOR_SYSTEM", "NO_COLOR", "XDG_CONFIG_HOME", "EDITOR"))
    command = f"cd {ROOT} && env {exports} {python} -m console --jobs {jobs}"
    started = subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "100", "-y",
                              "30", command], env=env, capture_output=True, text=True,
                             timeout=20)
    assert started.returncode == 0, started.stderr
    return session, jobs


@pytest.fixture(params=["truecolor", "16 colours", "NO_COLOR"])
def console_in_tmux(tmp_path: Path, request: pytest.FixtureRequest
                    ) -> Iterator[tuple[str, Path]]:
    session, jobs = start(tmp_path, request.param)
    try:
        yield session, jobs
    finally:
        if alive(session):
            tmux("kill-session", "-t", session)


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session).stdout


def test_shows_jobs_and_quits_on_q(console_in_tmux: tuple[str, Path]) -> None:
    session, _ = console_in_tmux
    assert wait(lambda: "Offsite weekly" in screen(session)), screen(session)
    text = screen(session)
    assert "DR copy" in text and "Idle" in text and "Start" in text
    tmux("send-keys", "-t", session, "q")
    assert wait(lambda: not alive(session), timeout=15), screen(session)


def test_exits_on_sighup(console_in_tmux: tuple[str, Path]) -> None:
    session, _ = console_in_tmux
    assert wait(lambda: "DR copy" in screen(session)), screen(session)
    pid = int(tmux("display-message", "-p", "-t", session, "#{pane_pid}").stdout.strip())
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    pids = [pid] + [int(p) for p in children.stdout.split()]
    tmux("kill-session", "-t", session)  # the pane's processes get SIGHUP

    def gone() -> bool:
        return all(not Path(f"/proc/{p}").exists() or
                   Path(f"/proc/{p}/stat").read_text().split()[2] == "Z" for p in pids)

    assert wait(gone, timeout=15), "console still running after SIGHUP"


@pytest.mark.parametrize("keep,saved", [(9, True), (1, False)])
def test_E_edits_the_job_file_in_the_editor(tmp_path: Path, keep: int, saved: bool) -> None:
    """`E` suspends the console for $EDITOR on a copy of the job file: a valid edit is
    saved; an invalid one writes nothing and opens the built-in editor with the error."""
    script = tmp_path / "edit.sh"
    script.write_text(f"#!/bin/sh\nsed -i 's/^keep = 7$/keep = {keep}/' \"$1\"\n")
    script.chmod(0o755)
    session, jobs = start(tmp_path / "c", editor=str(script))
    try:
        assert wait(lambda: "Offsite weekly" in screen(session)), screen(session)
        job = jobs / "dr-copy.toml"
        before = job.read_text()
        tmux("send-keys", "-t", session, "E")
        if saved:
            assert wait(lambda: "keep = 9" in job.read_text()), screen(session)
            assert job.read_text() == before.replace("keep = 7\n", "keep = 9\n")
            assert wait(lambda: "dr-copy.toml saved" in screen(session)), screen(session)
        else:
            assert wait(lambda: "keep" in screen(session) and "at least 2" in screen(session)
                        ), screen(session)
            assert job.read_text() == before
    finally:
        if alive(session):
            tmux("kill-session", "-t", session)
