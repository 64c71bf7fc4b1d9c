"""A real small file system for the fault-injection tests: a tmpfs of a chosen size.

Mounting needs root (CI runs as root); elsewhere the tests that need it skip with
the reason. The mount can grow (`resize`) to play "the admin added space".
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

MIB = 1 << 20


class SmallFs:
    """A tmpfs mounted at `path` with `size` bytes."""

    def __init__(self, path: Path, size: int):
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self._mount(["-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)])
        self.filler = path / "filler"

    @staticmethod
    def _mount(args: list[str]) -> None:
        proc = subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise OSError(proc.stderr.strip() or f"mount {args} failed")

    def resize(self, size: int) -> None:
        self._mount(["-o", f"remount,size={size}", str(self.path)])

    def free(self) -> int:
        st = os.statvfs(self.path)
        return st.f_bavail * st.f_frsize

    def fill(self, leave: int) -> None:
        """Take all free space but `leave` bytes (a filler file the test can delete)."""
        n = max(0, self.free() - leave)
        with open(self.filler, "ab") as f:
            chunk = bytes(MIB)
            while n > 0:
                f.write(chunk[:min(n, MIB)])
                n -= MIB

    def unfill(self) -> None:
        self.filler.unlink(missing_ok=True)

    def umount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True, timeout=30)


@pytest.fixture
def small_fs(tmp_path: Path):
    """Factory: `small_fs(size)` mounts a tmpfs of that size; unmounted after the test."""
    mounts: list[SmallFs] = []

    def make(size: int, name: str = "small") -> SmallFs:
        if os.geteuid() != 0:
            pytest.skip("needs root to mount a small tmpfs for ENOSPC (CI runs as root)")
        try:
            fs = SmallFs(tmp_path / name, size)
        except (OSError, FileNotFoundError, subprocess.SubprocessError) as exc:
            pytest.skip(f"cannot mount a tmpfs here: {exc}")
        mounts.append(fs)
        return fs

    yield make
    for fs in mounts:
        fs.umount()
