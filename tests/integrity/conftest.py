"""Fixtures of the integrity tests: a small replayed lab, and helpers that rot bytes."""

from __future__ import annotations

import pytest
from retention_e2e.replaykit import fast_dir, no_fsync

from engine.repository.container import FLAG_ZERO, Container
from engine.repository.repository import Repository


@pytest.fixture
def work(tmp_path, monkeypatch):
    no_fsync(monkeypatch)
    yield from fast_dir(tmp_path)


def rot_block(dst, job: str, machine: str, point, disk: str = "disk0.img",
              block: int | None = None) -> tuple[int, bytes]:
    """Flip one byte in the middle of a stored payload of `point`'s own file.

    Returns (block, digest) of the rotten block. `block` None: the file's first stored one.
    """
    path = Repository(dst).machine_dir(job, machine) / point.file
    with Container(path, state=point.id) as c:
        blocks = c.disks[disk].blocks
        b = block if block is not None else min(k for k, e in blocks.items()
                                                 if e.flags != FLAG_ZERO)
        e = blocks[b]
    with open(path, "r+b") as f:
        f.seek(e.offset + e.stored // 2)
        old = f.read(1)
        f.seek(e.offset + e.stored // 2)
        f.write(bytes([old[0] ^ 0x5A]))
    return b, e.digest
