"""A non-editable install carries what the console needs (issue 15: `pip install .`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_installed_package_has_its_themes(tmp_path):
    target, src = tmp_path / "site", tmp_path / "src"
    # a copy of the sources, so that the build leaves nothing in the work tree
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "__pycache__", "primary", "dr", ".cache"))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps",
         "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert build.returncode == 0, build.stderr[-2000:]
    probe = ("import console.themes as t, engine.cli as c; "
             "load = t.load_themes(); "
             "print(t.THEMES_DIR); print(len(load.themes), load.errors); print(c.__file__)")
    env = {**os.environ, "PYTHONPATH": str(target)}
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    themes_dir, counts, engine_file = res.stdout.splitlines()
    assert Path(themes_dir).is_relative_to(target)  # the installed copy, not the source tree
    assert Path(engine_file).is_relative_to(target)
    assert counts == "4 []"
    # no samples beside an installed Ferry: the admin's own jobs folder, created on first
    # use, and a console that opens on it
    home = tmp_path / "home"
    home.mkdir()
    env2 = {k: v for k, v in env.items() if k not in ("FERRY_JOBS", "XDG_CONFIG_HOME")}
    env2["HOME"] = str(home)
    console_probe = """
import asyncio, console.entry as e
from console.app import FerryConsole
folder = e._jobs_folder()
print(folder)
async def main():
    app = FerryConsole(folder, watch_hangup=False)
    async with app.run_test(size=(80, 24)) as pilot:
        text = ""
        for _ in range(200):  # bounded: 10 s
            await pilot.pause(0.05)
            update = app.screen._compositor.render_full_update()
            text = "".join(seg.text for line in update.strips for strip in line for seg in strip)
            if "No job files" in text:
                break
        print(type(app.screen).__name__, len(app.store.jobs), "No job files" in text)
asyncio.run(main())
"""
    res = subprocess.run([sys.executable, "-c", console_probe], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path, env=env2)
    assert res.returncode == 0, res.stderr[-2000:]
    folder, shown = res.stdout.split("\n")[:2]
    assert Path(folder) == home / ".config" / "ferry" / "jobs" and Path(folder).is_dir()
    assert shown == "OverviewScreen 0 True"
