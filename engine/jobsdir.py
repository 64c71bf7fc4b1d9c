"""Which jobs folder commands and the console use when `--jobs` is not given.

One answer for every caller: `$FERRY_JOBS`; else, in a source checkout (`make run`),
the bundled `sample_repos/jobs`; else the admin's own folder
`$XDG_CONFIG_HOME/ferry/jobs` (`~/.config/ferry/jobs`), which is what an installed
Ferry (`pip install .`) uses: its `sample_repos` package has the job files but not the
repositories they name (`ferry samples` builds those in the admin's data folder).
"""

from __future__ import annotations

import os
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
SAMPLE_JOBS = CHECKOUT / "sample_repos" / "jobs"


def user_jobs() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ferry" / "jobs"


def default_jobs() -> Path:
    env = os.environ.get("FERRY_JOBS")
    if env:
        return Path(env)
    in_checkout = (CHECKOUT / "pyproject.toml").is_file() and SAMPLE_JOBS.is_dir()
    return SAMPLE_JOBS if in_checkout else user_jobs()


__all__ = ["SAMPLE_JOBS", "default_jobs", "user_jobs"]
