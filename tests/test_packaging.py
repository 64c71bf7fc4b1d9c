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
