"""The container writer under write failures: a failed write is terminal, the journal
names only bytes that are on disk, a failed partial releases its space, and a resumed
partial is re-hashed against its journal before it is trusted."""

from __future__ import annotations

import errno
import os
import random
import struct
from pathlib import Path

import pytest
import xxhash

from engine.repository.container import (
    DATA_START,
    FLAG_RAW,
    ContainerError,
    ContainerWriter,
)
from engine.repository.writer_io import BackgroundWriter

from .conftest import MIB

BS = 256 << 10
_JOURNAL = struct.Struct("<HQQIIB16sQ")


def _journal_entries(part: Path) -> list[tuple]:
    jpath = part.with_name(part.name + ".journal")
    _, _, rest = jpath.read_bytes().partition(b"\n")
    usable = len(rest) - len(rest) % _JOURNAL.size
    return list(_JOURNAL.iter_unpack(rest[:usable]))


def _fill_writer(w: ContainerWriter, blocks: int, rng: random.Random) -> None:
    for b in range(blocks):
        data = rng.randbytes(BS)
        w.put("disk0", b, xxhash.xxh3_128_digest(data), BS, FLAG_RAW, data)


def _new_writer(path: Path) -> ContainerWriter:
    w = ContainerWriter(path, "full", BS)
    w.journal_every = 1 << 20  # sync often so several syncs fall before and after ENOSPC
    w.enable_journal(["disk0"])
    w.set_disk("disk0", 4096 * BS)
    return w


def test_enospc_stops_the_writer_and_the_journal_names_only_bytes_on_disk(small_fs):
    fs = small_fs(12 * MIB)
    path = fs.path / "vm1.fbk"
    w = _new_writer(path)
    rng = random.Random(1)
    with pytest.raises(OSError) as err:
        _fill_writer(w, 200, rng)  # 50 MiB into 12 MiB
        w.commit("p1")
    assert err.value.errno == errno.ENOSPC
    part = path.with_name(path.name + ".part")
    # every entry the journal holds points at bytes that are on disk and match their digest
    entries = _journal_entries(part)
    assert entries, "some syncs happened before the file system filled up"
    with open(part, "rb") as f:
        for _, block, off, stored, _raw, _, dg, _ in entries:
            assert xxhash.xxh3_128_digest(os.pread(f.fileno(), stored, off)) == dg, block
    # later calls keep failing: nothing is written or journaled after the first failure
    before = len(entries)
    with pytest.raises(OSError):
        _fill_writer(w, 40, rng)
    assert len(_journal_entries(part)) == before
    # the failed partial is not kept: its space goes back to the other machines
    assert w.abort(keep_partial=True) is False
    assert not part.exists() and not part.with_name(part.name + ".journal").exists()
    assert fs.free() > 11 * MIB


def test_background_writer_skips_every_task_after_a_failure(tmp_path):
    fd = os.open(tmp_path / "f", os.O_RDONLY | os.O_CREAT)  # writes fail with EBADF
    ran: list[int] = []
    w = BackgroundWriter(fd)
    w.write([b"x" * 10], 0)
    try:
        w.call(lambda: ran.append(1))
    except OSError:
        pass  # the failure may already be visible
    with pytest.raises(OSError):
        w.close()
    assert ran == [], "a task queued behind a failed write must not run"
    with pytest.raises(OSError):
        w.write([b"y"], 0)
    os.close(fd)


def _killed_partial(tmp_path: Path, blocks: int = 24) -> tuple[Path, ContainerWriter]:
    """A journaled .part left as a kill -9 would leave it (no commit, no abort)."""
    path = tmp_path / "vm1.fbk"
    w = _new_writer(path)
    _fill_writer(w, blocks, random.Random(2))
    w._flush()
    w._sync_journal()
    w._io.drain()
    return path, w


def test_resume_trusts_a_partial_only_after_rehashing_it(tmp_path):
    path, w = _killed_partial(tmp_path)
    entries = _journal_entries(path.with_name(path.name + ".part"))
    w2, have = ContainerWriter.resume(path, "full", BS)
    assert len(have) == len(entries) >= 16
    w2.abort(keep_partial=True)


def test_resume_rejects_a_partial_whose_journaled_bytes_changed(tmp_path):
    path, _ = _killed_partial(tmp_path)
    part = path.with_name(path.name + ".part")
    entries = _journal_entries(part)
    off = entries[len(entries) // 2][2]
    with open(part, "r+b") as f:  # one flipped byte inside a journaled payload
        f.seek(off + 1000)
        byte = f.read(1)
        f.seek(off + 1000)
        f.write(bytes([byte[0] ^ 0x40]))
    with pytest.raises(ContainerError, match="does not match its journal entry"):
        ContainerWriter.resume(path, "full", BS)


def test_resume_rejects_a_journal_pointing_past_the_data(tmp_path):
    path, _ = _killed_partial(tmp_path)
    part = path.with_name(path.name + ".part")
    os.truncate(part, DATA_START + BS)  # the data behind most entries is gone
    with pytest.raises(ContainerError):
        ContainerWriter.resume(path, "full", BS)
