"""Export a restore point back to raw disk images, byte-identical.

Blocks are decoded in the block thread pool and written in order; zero blocks
are left as holes (the output is sparse but reads back as zeros).
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from engine.blockio import make_pool
from engine.errors import FerryError
from engine.keys import KeyRing
from engine.objstore.open import open_repository
from engine.repository.repository import safe_name
from engine.repository.resolve import Located, PointView

if TYPE_CHECKING:
    from engine.objstore.repo import S3Repository
    from engine.repository.repository import Repository


class RestoreError(FerryError):
    """A point that cannot be exported (missing, damaged): one line."""


def export_point(repo_path: Path | str | Repository | S3Repository, job: str, machine: str, point_ref: str, out: Path,
                 keys: KeyRing | None = None) -> list[Path]:
    """Write each disk of the point as `out/<disk name>`; return the written paths.

    An encrypted point needs `keys`: its chain key is opened before anything is
    written, so a missing or wrong password leaves `out` untouched.
    """
    repo = open_repository(repo_path)
    if not repo.has(job, machine):
        raise RestoreError(f"no machine {machine!r} in job {job!r} of {repo.path}")
    written: list[Path] = []
    with repo.lock(job, machine, exclusive=False):
        meta = repo.load(job, machine)
        try:
            point = meta.point(point_ref)
        except LookupError as exc:
            raise RestoreError(str(exc)) from None
        with repo.view(meta, point, keys) as view, \
                make_pool() as pool:
            view.open_keys()
            out.mkdir(parents=True, exist_ok=True)
            for disk in view.disks:
                target = out / safe_name(disk.name, "disk name")
                _write_disk(view, disk.name, disk.size, target, pool)
                written.append(target)
    return written


def _write_disk(view: PointView, disk: str, size: int, target: Path,
                pool: ThreadPoolExecutor) -> None:
    bs = view.block_size
    blocks = view.blocks(disk)
    def decode(b: int, loc: Located) -> bytes:
        """Decode and verify one block: export never hands back bytes that are not the disk."""
        data, problem = view.read_verified(loc)
        if data is None:  # then `problem` says why
            raise RestoreError(f"corrupt block {b} of disk {disk} in {view.where(loc)}: "
                               f"{problem} (run ferry check)")
        return data

    tmp = target.with_name(target.name + ".part")
    try:
        with open(tmp, "wb") as f:
            pending: deque[tuple[int, Future[bytes]]] = deque()
            for b in sorted(blocks):
                pending.append((b, pool.submit(decode, b, blocks[b])))
                if len(pending) > 8:
                    _emit(f, bs, *pending.popleft())
            while pending:
                _emit(f, bs, *pending.popleft())
            f.truncate(size)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        for _, fut in pending:
            fut.cancel()
        tmp.unlink(missing_ok=True)
        raise
    os.rename(tmp, target)


def _emit(f: BinaryIO, bs: int, b: int, fut: Future[bytes]) -> None:
    data = fut.result()
    f.seek(b * bs)
    f.write(data)
