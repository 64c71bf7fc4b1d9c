"""Fixtures for copy-job tests: small real source chains and job files."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from engine.backup import take_backup
from engine.restore import export_point

BS = 256 << 10
T0 = datetime(2026, 11, 1, 22, 0)
ROOT = Path(__file__).resolve().parents[2]


def ferry(*args: str, check: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess."""
    proc = subprocess.run([sys.executable, "-m", "engine.cli", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"ferry {args} failed: {proc.stderr}")
    return proc


def write_job(path: Path, name: str, source: Path, jobs: list[str], target: Path,
              extra: str = "", keep: int = 7, mode: str = "periodic") -> Path:
    path.write_text(f"""name = "{name}"
mode = "{mode}"

[source]
repository = "{source}"
jobs = {jobs!r}

[target]
repository = "{target}"

[retention]
keep = {keep}
{extra}
""".replace("'", '"'))
    return path


@dataclass
class Machine:
    """A machine whose disk we mutate and back up, remembering every state by point id."""

    name: str
    method: str
    disk: Path
    rng: random.Random
    data: bytearray = field(default_factory=bytearray)
    states: dict[str, bytes] = field(default_factory=dict)

    def mutate(self, blocks: int = 2) -> set[int]:
        changed = set()
        for _ in range(blocks):
            b = self.rng.randrange(max(1, len(self.data) // BS))
            off = b * BS + self.rng.randrange(BS - 64)
            self.data[off:off + 64] = self.rng.randbytes(64)
            changed.add(b)
        return changed


class Source:
    """A source repository with one job per method and one machine per job."""

    def __init__(self, root: Path, methods=("forward", "forever-forward", "reverse"),
                 size: int = 4 * BS * 4 + 1000, seed: int = 7):
        self.root = root
        self.repo = root / "primary"
        self.repo.mkdir(parents=True, exist_ok=True)
        self.machines: dict[str, Machine] = {}
        for i, method in enumerate(methods):
            rng = random.Random(seed + i)
            disk = root / "disks" / method / "disk0.img"
            disk.parent.mkdir(parents=True, exist_ok=True)
            data = bytearray(rng.randbytes(size))
            data[BS:3 * BS] = bytes(2 * BS)  # a zero region
            m = Machine(f"vm-{method}", method, disk, rng, data)
            self.machines[m.name] = m

    def job_of(self, m: Machine) -> str:
        return {"forward": "Daily", "forever-forward": "Forever", "reverse": "Reverse"}[m.method]

    def backup(self, when: datetime, keep: int = 5, mutate: int = 2) -> None:
        for m in self.machines.values():
            if m.states:
                m.mutate(mutate)
            m.disk.write_bytes(m.data)
            r = take_backup(self.repo, self.job_of(m), m.name, [m.disk], method=m.method,
                            keep=keep, block_size=BS, at=when)
            m.states[r.point.id] = bytes(m.data)


def exported(repo: Path, job: str, machine: str, point: str, out: Path) -> bytes:
    export_point(repo, job, machine, point, out)
    return (out / "disk0.img").read_bytes()


@pytest.fixture
def source(tmp_path: Path) -> Source:
    return Source(tmp_path)


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.setenv("FERRY_DEBUG", "")
    return os.environ
