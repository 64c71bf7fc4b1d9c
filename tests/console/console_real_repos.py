"""Real repositories for end-to-end console tests, built with `ferry backup` (engine.cli)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

MACHINES = ("db01", "web01", "web02")
BLOCK = 1024 * 1024

JOB_FILE = """\
# DR copy of the Daily backups
name = "DR copy"
mode = "periodic"

[source]
repository = "../primary"
jobs = ["Daily"]

[target]
repository = "../dr"

[retention]
keep = 7
unit = "points"
"""


def disk_image(machine: str, blocks: int = 4) -> bytes:
    """Deterministic, partly compressible disk content (no randomness)."""
    data = bytearray(blocks * BLOCK)
    seed = machine.encode() * 64
    for offset in range(0, len(data), 4096 * 3):
        data[offset:offset + len(seed)] = seed
    return bytes(data)


def build(root: Path, machines: tuple[str, ...] = MACHINES) -> Path:
    """`root/primary` with one full per machine, and `root/jobs/dr-copy.toml`; returns jobs."""
    from engine.cli import main

    (root / "disks").mkdir(parents=True, exist_ok=True)
    for machine in machines:
        disk = root / "disks" / f"{machine}-disk0.img"
        disk.write_bytes(disk_image(machine))
        with contextlib.redirect_stdout(io.StringIO()):
            code = main(["backup", "--repo", str(root / "primary"), "--job", "Daily",
                         "--machine", machine, "--disk", str(disk),
                         "--at", "2026-11-24T21:00"])
        assert code == 0, f"ferry backup failed for {machine}"
    jobs = root / "jobs"
    jobs.mkdir(exist_ok=True)
    (jobs / "dr-copy.toml").write_text(JOB_FILE)
    return jobs
