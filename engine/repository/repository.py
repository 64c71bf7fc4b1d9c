"""A repository folder: `<repo>/<job>/<machine>/` with backup files, `.fbm` and `lock`."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

from engine.keys import KeyRing
from engine.model import Kind, MachineMeta, RestorePoint
from engine.repository.locks import ChainLock
from engine.repository.metadata import MetadataError, copy_path, read_meta, write_meta
from engine.repository.names import BadName, safe_name
from engine.repository.resolve import PointView

BACKUP_SUFFIXES = (".fbk", ".fib", ".frb")


def new_point_id() -> str:
    return os.urandom(8).hex()


def point_file_name(machine: str, when: datetime, point_id: str, kind: Kind) -> str:
    return f"{machine}D{when:%Y-%m-%dT%H%M%S}_{point_id[:8]}{kind.extension}"


class Repository:
    """A backup repository folder. Cheap to create; reads lazily."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.is_dir()

    def machine_dir(self, job: str, machine: str) -> Path:
        return self.path / safe_name(job, "job name") / safe_name(machine, "machine name")

    def meta_path(self, job: str, machine: str) -> Path:
        return self.machine_dir(job, machine) / f"{machine}.fbm"

    def lock(self, job: str, machine: str, exclusive: bool,
             wait: float | None = None) -> ChainLock:
        return ChainLock(self.machine_dir(job, machine), exclusive=exclusive, wait=wait)

    def jobs(self) -> list[str]:
        if not self.path.is_dir():
            return []
        return sorted(p.name for p in self.path.iterdir() if p.is_dir() and not p.name.startswith("."))

    def machines(self, job: str | None = None) -> list[tuple[str, str]]:
        """(job, machine) pairs that have a metadata file, sorted."""
        out = []
        for j in [job] if job else self.jobs():
            jdir = self.path / j
            if not jdir.is_dir():
                continue
            for m in sorted(jdir.iterdir()):
                if m.name.startswith("."):
                    continue
                if (m / f"{m.name}.fbm").is_file() or copy_path(m / f"{m.name}.fbm").is_file():
                    out.append((j, m.name))
        return out

    def has(self, job: str, machine: str) -> bool:
        path = self.meta_path(job, machine)
        return path.is_file() or copy_path(path).is_file()

    def load(self, job: str, machine: str) -> MachineMeta:
        path = self.meta_path(job, machine)
        return read_meta(path, self._files(path))

    def try_load(self, job: str, machine: str) -> MachineMeta | None:
        """The machine's metadata, or None when it has none yet (damage still raises)."""
        path = self.meta_path(job, machine)
        if not path.exists() and not copy_path(path).exists():
            return None
        try:
            return read_meta(path, self._files(path))
        except MetadataError:
            if not path.exists():
                return None  # a stale copy of another machine of that name: not this one
            raise

    @staticmethod
    def _files(path: Path) -> set[str] | None:
        """The machine folder's backup files (only needed when the .fbm itself is gone)."""
        if path.exists() or not path.parent.is_dir():
            return None
        return {f.name for f in path.parent.iterdir() if f.suffix in BACKUP_SUFFIXES}

    def save(self, meta: MachineMeta) -> None:
        """Commit a chain change. Caller holds the exclusive chain lock."""
        folder = self.machine_dir(meta.job, meta.machine)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{meta.machine}.fbm"
        try:
            write_meta(path, meta)
        except BaseException:
            # a failed save (ENOSPC, EIO) leaves the old metadata in force; its half-written
            # temp file is this run's leftover, not the next run's
            path.with_name(path.name + ".tmp").unlink(missing_ok=True)
            copy = copy_path(path)
            copy.with_name(copy.name + ".tmp").unlink(missing_ok=True)
            raise

    def view(self, meta: MachineMeta, point: RestorePoint,
             keys: KeyRing | None = None) -> PointView:
        """The point opened for reading (caller holds the chain lock)."""
        return PointView(self.machine_dir(meta.job, meta.machine), meta, point, keys)

    def file(self, meta: MachineMeta, point: RestorePoint) -> Path:
        return self.machine_dir(meta.job, meta.machine) / point.file

    def sweep(self, meta: MachineMeta | None, job: str, machine: str,
              keep_also: frozenset[str] = frozenset()) -> list[str]:
        """Delete files the metadata does not name (leftovers of a crash). Exclusive lock held.

        `keep_also`: file names to leave (a partial point kept for resume)."""
        folder = self.machine_dir(job, machine)
        if not folder.is_dir():
            return []
        keep = {p.file for p in meta.points} if meta else set()
        removed = []
        for f in folder.iterdir():
            if f.name in keep_also:
                continue
            leftover = f.name.endswith((".part", ".tmp", ".journal")) or (
                f.suffix in BACKUP_SUFFIXES and f.name not in keep)
            if leftover and f.is_file():
                f.unlink()
                removed.append(f.name)
        return removed

    def drop_meta_copy(self, job: str, machine: str) -> None:
        """Remove the second copy of a machine's metadata (its machine is being deleted)."""
        copy_path(self.meta_path(job, machine)).unlink(missing_ok=True)

    def delete_machine(self, job: str, machine: str) -> None:
        """Remove a machine's folder entirely (deleted-items retention)."""
        self.drop_meta_copy(job, machine)
        folder = self.machine_dir(job, machine)
        for f in folder.iterdir():
            if f.name != "lock":
                f.unlink()
        os.unlink(folder / "lock")
        folder.rmdir()


__all__ = ["Repository", "BadName", "safe_name", "MetadataError", "new_point_id",
           "point_file_name"]
