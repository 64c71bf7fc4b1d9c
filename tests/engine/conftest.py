"""Fixtures of the engine tests (the helpers themselves live in enginekit.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # enginekit is importable under any pytest import mode
    sys.path.insert(0, str(HERE))

import enginekit  # noqa: E402


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty repository folder (not created yet: the first backup creates it)."""
    return tmp_path / "repo"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Where exports go."""
    return tmp_path / "export"


@pytest.fixture
def ferry():
    """Run `python -m engine.cli ...` in a subprocess; returns the CompletedProcess."""
    return enginekit.run_ferry


@pytest.fixture
def make_machine(tmp_path: Path):
    """Factory of simulated machines whose disks live under tmp_path/disks-<n>."""
    count = 0

    def make(seed: int = 0, **kw) -> enginekit.Machine:
        nonlocal count
        count += 1
        return enginekit.Machine(tmp_path / f"disks-{count}", seed=seed, **kw)

    return make
