"""A non-editable install carries what `ferry` and its console need (issue 15:
`pip install .` into a fresh venv gives a working `ferry`, console, themes and samples)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PIP_TIMEOUT = 300  # a loaded 2-core machine; here a wheel takes ~5 s, an install ~30 s


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A copy of the sources, so that builds leave nothing in the work tree (and built
    sample repositories do not ride along)."""
    src = tmp_path_factory.mktemp("pkg") / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "*.egg-info", "__pycache__", "primary", "dr", ".cache",
        ".hypothesis", ".pytest_cache", "bench"))
    return src


def test_wheel_has_themes_styles_samples_and_the_script(source, tmp_path):
    out = tmp_path / "wheel"
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                          str(source)], capture_output=True, text=True, timeout=PIP_TIMEOUT,
                         cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = out.glob("ferry-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    themes = {n for n in names if n.startswith("console/theme_files/")}
    assert themes == {f"console/theme_files/{t}.toml"
                      for t in ("dark", "light", "high-contrast", "mono")}
    assert {"console/app.tcss", "console/help.md", "sample_repos/generate.py",
            "sample_repos/vmdata.py", "sample_repos/jobs/dr-copy.toml"} <= names
    samples = {Path(n).name for n in names if n.startswith("sample_repos/jobs/")}
    assert samples == {p.name for p in (ROOT / "sample_repos" / "jobs").glob("*.toml")}
    assert not any(n.startswith(("tests/", "bench/", "engine/vmdata")) for n in names)
    assert not any("/primary/" in n or "/dr/" in n for n in names)  # no built repositories
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "ferry = console.entry:main" in zipfile.ZipFile(wheel).read(entry).decode()


CONSOLE_PROBE = """
import asyncio, sys
from pathlib import Path
import console.entry as e, console.themes as t
from console.app import FerryConsole
folder = Path(sys.argv[1]) if len(sys.argv) > 1 else e._jobs_folder()
print(folder)
print(t.THEMES_DIR, len(t.load_themes().themes))
async def main():
    app = FerryConsole(folder, watch_hangup=False)
    async with app.run_test(size=(100, 30)) as pilot:
        text = ""
        for _ in range(400):  # bounded: 20 s for the jobs to load
            await pilot.pause(0.05)
            update = app.screen._compositor.render_full_update()
            text = "".join(seg.text for line in update.strips for strip in line for seg in strip)
            if "No job files" in text or ("DR copy" in text and len(app.store.jobs) == 4):
                break
        print(type(app.screen).__name__, len(app.store.jobs), "No job files" in text,
              "DR copy" in text)
asyncio.run(main())
"""


def test_pip_install_into_a_fresh_venv_gives_ferry_its_console_and_samples(source, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # not editable: the install is all there is (offline wheels: pip.conf, as `make venv`)
    res = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(source)],
                         capture_output=True, text=True, timeout=PIP_TIMEOUT, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("FERRY_JOBS", "FERRY_REPO", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
                        "PYTHONPATH", "VIRTUAL_ENV")}
    env["HOME"] = str(home)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, capture_output=True, text=True, timeout=180, cwd=tmp_path,
                              env=env)

    ferry, python = str(venv / "bin" / "ferry"), str(venv / "bin" / "python")
    version = run(ferry, "--version")
    assert version.returncode == 0 and version.stdout.startswith("ferry 0."), version.stderr
    top = run(ferry, "--help").stdout
    assert all(f"\n    {c}" in top for c in ("console", "serve", "samples"))
    # no samples beside an installed Ferry: the admin's own jobs folder, created on use
    empty = run(python, "-c", CONSOLE_PROBE)
    assert empty.returncode == 0, empty.stderr[-2000:]
    folder, themes, shown = empty.stdout.splitlines()[:3]
    assert Path(folder) == home / ".config" / "ferry" / "jobs" and Path(folder).is_dir()
    themes_dir, count = themes.rsplit(" ", 1)
    assert Path(themes_dir).is_relative_to(venv) and count == "4"  # the installed copy
    assert shown == "OverviewScreen 0 True False"
    # `ferry samples` builds the samples in the data folder; the console opens on them
    built = run(ferry, "samples", "--no-console")
    assert built.returncode == 0, built.stderr[-2000:]
    jobs = Path(built.stdout.splitlines()[-1])
    assert jobs == home / ".local" / "share" / "ferry" / "samples" / "jobs"
    assert (jobs.parent / "primary" / ".built").is_file()
    samples = run(python, "-c", CONSOLE_PROBE, str(jobs))
    assert samples.returncode == 0, samples.stderr[-2000:]
    assert samples.stdout.splitlines()[2] == "OverviewScreen 4 False True"
    history = run(ferry, "history", "--jobs", str(jobs), "--json")
    assert history.returncode == 0 and '"status": "Success"' in history.stdout
