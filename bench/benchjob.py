"""The job files and `ferry` commands the copy benches run (local, remote, S3).

Every copy is a real `python -m engine.cli` subprocess, so the figures include what an
operator's run costs: interpreter start-up, imports, planning and history.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
T0 = datetime(2026, 11, 1, 22, 0)  # the source's first point; copies run an hour later
PW_ENV = "FERRY_BENCH_PASSWORD"


def ferry(*args: object) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *map(str, args)]


def job_file(path: Path, name: str, src: Path, dst: Path | str, compression: str,
             encrypted: bool = False, target: str = "") -> Path:
    """A copy job of the source job "Bench" into `dst`, one task at a time, no retries
    (a failure is the bench's failure)."""
    enc = f'encryption = true\npassword_env = "{PW_ENV}"\n' if encrypted else ""
    path.write_text(f'name = "{name}"\n[source]\nrepository = "{src}"\njobs = ["Bench"]\n'
                    f'[target]\nrepository = "{dst}"\n{target}[retention]\nkeep = 7\n'
                    f'[storage]\ncompression = "{compression}"\n{enc}'
                    f'[transport]\nparallel_tasks = 1\nretries = 0\n')
    return path


def backup(src: Path, disk: Path, at: datetime, quiet: bool = True) -> None:
    """One source point of machine vm01 (setup, not timed)."""
    subprocess.run(ferry("backup", "--repo", src, "--job", "Bench", "--machine", "vm01",
                         "--disk", disk, "--at", at.isoformat()), check=True, cwd=ROOT,
                   capture_output=quiet)


def med(values) -> float:
    return statistics.median(values)
