"""Container format 2 next to format 1: old files stay readable (and verifiable),
in-place transforms upgrade them, and one damaged copy of a header slot or of an
index loses nothing."""

from __future__ import annotations

import struct
from datetime import timedelta

import xxhash
import zstandard
from retention_e2e.replaykit import START, Lab

from engine.copy.runner import run_job
from engine.jobs.load import load_job
from engine.repository.container import (
    FLAG_ZERO,
    MAGIC,
    MIRROR,
    SLOT_SIZE,
    Container,
    ContainerWriter,
)
from engine.repository.repository import Repository

from .conftest import rot_block


def to_v1(path) -> None:
    """Rewrite a backup file's live state the way format 1 stored it: one slot copy,
    one index copy, entries without the stored-bytes checksum."""
    with Container(path) as c:
        state, slot, disks = c.state, c.slot, list(c.disks.values())
    head = __import__("json").dumps({"state": state, "disks": [
        {"name": d.name, "size": d.size, "count": len(d.blocks)} for d in disks]}).encode()
    parts = [struct.pack("<I", len(head)), head]
    for d in disks:
        for b in sorted(d.blocks):
            e = d.blocks[b]
            parts.append(struct.pack("<QQIIB16s", b, e.offset, e.stored, e.raw, e.flags,
                                     e.digest))
    index = zstandard.ZstdCompressor(level=3).compress(b"".join(parts))
    with open(path, "r+b") as f:
        end = f.seek(0, 2)
        f.write(index)
        body = struct.pack("<8sHB x I Q Q Q Q 64s", MAGIC, 1, slot.kind, slot.block_size,
                           slot.generation, end, len(index), xxhash.xxh3_64_intdigest(index),
                           state.encode())
        f.seek(0)
        f.write(bytes(2 * SLOT_SIZE))
        f.seek(0)
        f.write(body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body)))


def _lab_v1(work, keep=2):
    lab = Lab(work, blocks=8)
    spec = load_job(lab.job("V", keep=keep, retention="\n[transport]\nretries = 0\n"))
    for d in range(2):
        t = START + timedelta(days=d)
        lab.backup(t)
        assert run_job(spec, at=t).status == "Success"
    folder = Repository(lab.dst).machine_dir("V", "vm1")
    for p in lab.chain("V"):
        to_v1(folder / p.file)
        with Container(folder / p.file, state=p.id) as c:
            assert c.slot.version == 1
            assert all(e.check is None for d in c.disks.values() for e in d.blocks.values())
    return lab, spec, folder


def test_version_1_files_read_and_upgrade_in_place(work):
    lab, spec, folder = _lab_v1(work)
    assert lab.check_exports("V") == 2
    for d in (2, 3):  # merges into the version-1 full write version-2 states
        t = START + timedelta(days=d)
        lab.backup(t)
        assert run_job(spec, at=t).status == "Success"
        assert lab.check_exports("V") == 2
    full = lab.chain("V")[0]
    with Container(folder / full.file, state=full.id) as c:
        assert c.slot.version == 2


def test_rot_in_a_version_1_block_is_found_by_its_digest(work):
    lab, spec, folder = _lab_v1(work)
    inc = lab.chain("V")[-1]
    rot_block(lab.dst, "V", "vm1", inc)
    t = START + timedelta(days=2)
    lab.backup(t, mutate=3)
    res = run_job(spec, at=t)  # the merge of the rotten increment refuses it
    task = res.tasks[0]
    if task.status == "Failed":
        assert "damaged" in task.message
    else:
        lab.check_exports("V")


def test_dedup_never_prefers_a_rotten_stored_copy(tmp_path):
    """An in-place writer whose base holds a rotten copy of a block: putting the
    verified payload stores it, and entries kept from the base move onto it."""
    path = tmp_path / "f.fbk"
    good = b"x" * 1000
    digest = xxhash.xxh3_128_digest(good)
    w = ContainerWriter(path, "full", 4096)
    w.set_disk("d", 3 * 4096)
    w.put("d", 0, digest, len(good), 1, good)
    w.put("d", 1, digest, len(good), 1, good)  # dedup: one stored copy for both
    w.commit("s1")
    with Container(path, state="s1") as c:
        e = c.disks["d"].blocks[0]
    with open(path, "r+b") as f:
        f.seek(e.offset + 10)
        f.write(b"Y")
    with Container(path, state="s1") as base:
        w = ContainerWriter(path, "full", 4096, base=base)
        w.set_disk("d", 3 * 4096)
        for b, be in base.disks["d"].blocks.items():
            w.put_entry("d", b, be)
        w.put("d", 2, digest, len(good), 1, good)
        w.commit("s2")
    assert len(w.rejected) == 1
    with Container(path, state="s2") as c:
        for b in (0, 1, 2):
            ce = c.disks["d"].blocks[b]
            assert ce.flags != FLAG_ZERO and c.read_stored(ce) == good, b


def test_one_flipped_byte_in_the_live_slot_or_index_loses_nothing(work):
    lab = Lab(work, blocks=6)
    spec = load_job(lab.job("S", keep=2))
    lab.backup(START)
    assert run_job(spec, at=START).status == "Success"
    (full,) = lab.chain("S")
    path = Repository(lab.dst).machine_dir("S", "vm1") / full.file
    with Container(path, state=full.id) as c:
        first = c.slot.offset
    with open(path, "r+b") as f:
        for at in (20, first + 7):  # the live slot's first copy, the index's first copy
            f.seek(at)
            b = f.read(1)
            f.seek(at)
            f.write(bytes([b[0] ^ 1]))
    assert lab.check_exports("S") == 1
    t = START + timedelta(days=1)
    lab.backup(t)
    assert run_job(spec, at=t).status == "Success"  # later runs build on it
    assert lab.check_exports("S") == 2
    assert MIRROR < SLOT_SIZE
