"""Damaged repositories: `ferry check` names what is corrupt; nothing crashes.

Every failure is one line on stderr with exit 2 and no traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import xxhash
from enginekit import (
    BS,
    JOB,
    MACHINE,
    assert_images_equal,
    assert_ok,
    assert_one_line_failure,
    day,
    export_disks,
    run_many,
)

from engine.repository.container import FLAG_ZERO, MIRROR, SLOT_SIZE, Container
from engine.repository.metadata import copy_path
from engine.repository.repository import Repository


def flip(path: Path, offset: int, n: int = 4) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(n)
        f.seek(offset)
        f.write(bytes(b ^ 0xA5 for b in old))


def stored_block(path: Path, state: str, disk: str, block: int):
    with Container(path, state=state) as c:
        e = c.disks[disk].blocks[block]
    assert e.flags != FLAG_ZERO
    return e


def check(ferry, repo: Path, *extra: str):
    """`ferry check --json`: the result (stderr carries the one-line reasons) and the JSON."""
    res = ferry("check", "--repo", repo, "--json", *extra)
    assert "Traceback" not in res.stderr
    return res, json.loads(res.stdout)


def test_check_text_output(repo, ferry, make_machine):
    folder, results, _m = _forward(repo, make_machine)
    assert "ok" in ferry("check", "--repo", repo).stdout
    full = results[0].point
    e = stored_block(folder / full.file, full.id, "sdb", 2)
    flip(folder / full.file, e.offset + 1)
    res = ferry("check", "--repo", repo, "--all")
    assert res.returncode == 2
    assert "CORRUPT" in res.stdout and "block 2 of disk sdb" in res.stdout
    assert res.stderr.splitlines() == [
        f"ferry check: {JOB}/{MACHINE}: disk sdb block 2 in {full.file}: digest mismatch"]


def _forward(repo, make_machine, compression="none"):
    m = make_machine(51)
    m.add_disk("sda", size=8 * BS + 100, holes=0, zeros=0)
    m.add_disk("sdb", size=4 * BS + 1, holes=0, zeros=0)
    for b in range(9):
        m.write("sda", b * BS, m.data(min(BS, 8 * BS + 100 - b * BS), "random"))
    for b in range(5):
        m.write("sdb", b * BS, m.data(min(BS, 4 * BS + 1 - b * BS), "random"))
    states, results = [], []
    for d in range(3):
        if d:
            m.write("sda", 3 * BS, m.data(BS, "random"))
            m.write("sdb", 1 * BS, m.data(BS, "random"))
        results.append(m.backup(repo, day(d), compression=compression))
        states.append(m.state())
    folder = Repository(repo).machine_dir(JOB, MACHINE)
    return folder, results, m


def test_healthy_repository_checks_ok(repo, ferry, make_machine):
    _forward(repo, make_machine)
    res, js = check(ferry, repo, "--all")
    assert_ok(res)
    assert js["ok"] is True
    (mach,) = js["machines"]
    assert len(mach["points"]) == 3 and mach["corrupt"] == [] and mach["errors"] == []
    assert mach["blocks"] > 0


@pytest.mark.parametrize("compression", ["none", "optimal"])
def test_corrupt_block_in_full_is_named(repo, ferry, make_machine, compression):
    folder, results, m = _forward(repo, make_machine, compression)
    full = results[0].point
    e = stored_block(folder / full.file, full.id, "sda", 6)
    flip(folder / full.file, e.offset + e.stored // 2)
    res, js = check(ferry, repo)
    assert res.returncode == 2
    assert f"disk sda block 6 in {full.file}" in res.stderr
    assert "Traceback" not in res.stderr
    assert js["ok"] is False
    (mach,) = js["machines"]
    assert [(c["disk"], c["block"], c["file"]) for c in mach["corrupt"]] == [
        ("sda", 6, full.file)]


def test_corrupt_block_in_increment_is_named(repo, ferry, make_machine):
    folder, results, m = _forward(repo, make_machine)
    inc = results[2].point
    e = stored_block(folder / inc.file, inc.id, "sdb", 1)
    flip(folder / inc.file, e.offset + 100)
    res, js = check(ferry, repo)
    assert res.returncode == 2
    assert f"disk sdb block 1 in {inc.file}" in res.stderr
    (mach,) = js["machines"]
    assert [(c["disk"], c["block"], c["file"]) for c in mach["corrupt"]] == [
        ("sdb", 1, inc.file)]


def test_all_checks_every_point(repo, ferry, make_machine):
    """A block only the middle point uses: the default check (latest) misses it, --all not."""
    folder, results, m = _forward(repo, make_machine)
    mid = results[1].point
    e = stored_block(folder / mid.file, mid.id, "sda", 3)
    flip(folder / mid.file, e.offset + 7)
    res, js = check(ferry, repo)
    assert_ok(res)
    assert js["ok"] is True
    res, js = check(ferry, repo, "--all")
    assert res.returncode == 2
    assert f"disk sda block 3 in {mid.file}" in res.stderr
    (mach,) = js["machines"]
    assert len(mach["points"]) == 3
    assert [(c["disk"], c["block"], c["file"]) for c in mach["corrupt"]] == [
        ("sda", 3, mid.file)]


def test_check_filters_by_job_and_machine(repo, ferry, make_machine):
    folder, results, m = _forward(repo, make_machine)
    m = make_machine(52)
    m.add_disk("other", size=2 * BS + 3, holes=0, zeros=0)
    m.backup(repo, day(0), machine="db01")
    full = results[0].point
    e = stored_block(folder / full.file, full.id, "sda", 0)
    flip(folder / full.file, e.offset)
    res, js = check(ferry, repo, "--machine", "db01")
    assert_ok(res)
    assert [x["machine"] for x in js["machines"]] == ["db01"]
    res, js = check(ferry, repo, "--job", JOB, "--machine", MACHINE)
    assert res.returncode == 2
    assert [x["machine"] for x in js["machines"]] == [MACHINE]


def test_export_of_a_corrupt_block_fails(repo, ferry, make_machine, tmp_path):
    """Export must never hand back wrong bytes as if they were the disk (CONTRACT: identical)."""
    folder, results, m = _forward(repo, make_machine, "none")
    full = results[0].point
    e = stored_block(folder / full.file, full.id, "sda", 5)
    flip(folder / full.file, e.offset + 10)
    res = ferry("export", "--repo", repo, "--job", JOB, "--machine", MACHINE, "--point",
                full.id, "--out", tmp_path / "o")
    line = assert_one_line_failure(res)
    assert "sda" in line


# --------------------------------------------------------------------------- metadata


def _damage_meta(path: Path, how: str) -> None:
    text = path.read_bytes()
    if how == "flip-in-body":  # still JSON; the checksum catches it
        doc = json.loads(text)
        doc["body"] = doc["body"].replace('"size": ', '"size": 1', 1)
        path.write_text(json.dumps(doc))
    elif how == "truncated":
        path.write_bytes(text[: len(text) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":
        path.write_bytes(os.urandom(300))
    elif how == "wrong-shape":
        path.write_text(json.dumps({"format": 1, "checksum": 5, "body": 7}))
    elif how == "valid-checksum-bad-body":  # a well-formed document with nonsense inside
        body = json.dumps({"job": JOB, "machine": MACHINE, "points": "x"})
        path.write_text(json.dumps({"format": 1, "checksum": xxhash.xxh3_64_hexdigest(
            body.encode()), "body": body}))
    else:
        raise ValueError(how)


@pytest.mark.parametrize("how", ["flip-in-body", "truncated", "empty", "garbage", "wrong-shape",
                                 "valid-checksum-bad-body"])
def test_damaged_metadata(repo, ferry, make_machine, tmp_path, how):
    folder, _results, m = _forward(repo, make_machine)
    fbm = folder / f"{MACHINE}.fbm"
    _damage_meta(fbm, how)
    _damage_meta(copy_path(fbm), how)  # both copies: one alone loses nothing (tests/integrity)
    commands = [["check", "--repo", repo, "--json"],
                ["export", "--repo", repo, "--job", JOB, "--machine", MACHINE,
                 "--out", tmp_path / "o"],
                ["chain", "--repo", repo],
                ["chain", "--repo", repo, "--json"],
                ["backup", "--repo", repo, "--job", JOB, "--machine", MACHINE,
                 "--disk", m.path("sda"), "--block-size", "256KiB", "--at", day(5).isoformat()]]
    results = run_many(*commands)
    for args, res in zip(commands, results, strict=True):
        line = assert_one_line_failure(res)
        assert f"{MACHINE}.fbm" in line, args
    js = json.loads(results[0].stdout)
    assert js["ok"] is False and f"{MACHINE}.fbm" in js["machines"][0]["errors"][0]


# --------------------------------------------------------------------------- header slots


def _slot_holding(path: Path, state: str) -> int:
    """Which 4 KiB header slot names `state` (the slot records the state id in clear)."""
    head = path.read_bytes()[: 2 * SLOT_SIZE]
    where = [i for i in (0, 1) if state.encode() in head[i * SLOT_SIZE:(i + 1) * SLOT_SIZE]]
    assert len(where) == 1, where
    return where[0]


@pytest.mark.parametrize("method", ["forever-forward", "reverse"])
def test_damaged_header_slot(repo, ferry, make_machine, tmp_path, method):
    """After an in-place rewrite the full has two header slots: the stale one can be lost."""
    m = make_machine(53)
    m.add_disk("sda", size=6 * BS + 99)
    m.backup(repo, day(0), method=method, keep=1)
    old_state = Repository(repo).load(JOB, MACHINE).points[-1].id
    m.mutate("rewrite", "sda")
    r = m.backup(repo, day(1), method=method, keep=1)  # merge / injection: a second state
    meta = Repository(repo).load(JOB, MACHINE)
    (point,) = meta.points
    assert point.id == r.point.id and point.kind.value == "full"
    full = Repository(repo).file(meta, point)
    live, stale = _slot_holding(full, point.id), _slot_holding(full, old_state)
    assert live != stale
    flip(full, stale * SLOT_SIZE + 20, 16)
    assert_images_equal(export_disks(repo, "latest", tmp_path / "o"), m.state(), "via live slot")
    res, _ = check(ferry, repo)
    assert_ok(res)
    # one copy of the live slot: its mirror serves (one flipped byte loses nothing)
    flip(full, live * SLOT_SIZE + 20, 16)
    assert_images_equal(export_disks(repo, "latest", tmp_path / "o1"), m.state(), "via mirror")
    # both copies of the live slot: reported cleanly
    flip(full, live * SLOT_SIZE + MIRROR + 20, 16)
    res, js = check(ferry, repo)
    line = assert_one_line_failure(res)
    assert point.file in line
    assert point.file in js["machines"][0]["errors"][0]
    line = assert_one_line_failure(ferry("export", "--repo", repo, "--job", JOB, "--machine",
                                         MACHINE, "--out", tmp_path / "o2"))
    assert point.file in line
    # and the next backup refuses rather than building on a damaged full
    res = ferry("backup", "--repo", repo, "--job", JOB, "--machine", MACHINE, "--disk",
                m.path("sda"), "--method", method, "--keep", "1", "--block-size", "256KiB",
                "--at", day(2).isoformat())
    assert_one_line_failure(res)


def test_damaged_only_slot_of_a_new_file(repo, ferry, make_machine, tmp_path):
    folder, results, m = _forward(repo, make_machine)
    inc = results[2].point
    flip(folder / inc.file, 0, 8)  # the magic
    assert_ok(check(ferry, repo)[0])  # the slot's second copy serves
    flip(folder / inc.file, MIRROR, 8)
    res, js = check(ferry, repo)
    line = assert_one_line_failure(res)
    assert inc.file in line
    line = assert_one_line_failure(ferry(
        "export", "--repo", repo, "--job", JOB, "--machine", MACHINE, "--out", tmp_path / "o"))
    assert inc.file in line
    # the older points do not need that file
    res, _ = check(ferry, repo, "--all")
    assert res.returncode == 2
    assert_ok(ferry("export", "--repo", repo, "--job", JOB, "--machine", MACHINE, "--point",
                    results[1].point.id, "--out", tmp_path / "o1"))


# --------------------------------------------------------------------------- truncation, loss


@pytest.mark.parametrize(("which", "keep_bytes"), [  # 0: the full, 2: the newest increment
    (0, 0), (0, "half"), (2, 100), (2, 2 * SLOT_SIZE), (2, "into-index")])
def test_truncated_backup_file(repo, ferry, make_machine, tmp_path, which, keep_bytes):
    folder, results, m = _forward(repo, make_machine)
    p = results[which].point
    path = folder / p.file
    size = path.stat().st_size
    with Container(path, state=p.id) as c:
        index = c.slot.offset  # cut into the first index copy: both copies are gone
    n = {"half": size // 2, "into-index": index + 1}.get(keep_bytes, keep_bytes)
    os.truncate(path, n)
    chk, exp, chain = run_many(["check", "--repo", repo, "--json"],
                               ["export", "--repo", repo, "--job", JOB, "--machine", MACHINE,
                                "--out", tmp_path / "o"],
                               ["chain", "--repo", repo, "--json"])
    assert p.file in assert_one_line_failure(chk)
    assert json.loads(chk.stdout)["ok"] is False
    assert p.file in assert_one_line_failure(exp)
    assert_ok(chain)


def test_missing_backup_file(repo, ferry, make_machine, tmp_path):
    folder, results, m = _forward(repo, make_machine)
    p = results[1].point
    (folder / p.file).unlink()
    res, js = check(ferry, repo)
    line = assert_one_line_failure(res)  # the latest point reads through the missing file
    assert p.file in line
    line = assert_one_line_failure(ferry("export", "--repo", repo, "--job", JOB, "--machine",
                                         MACHINE, "--out", tmp_path / "o"))
    assert p.file in line
    assert_ok(ferry("export", "--repo", repo, "--job", JOB, "--machine", MACHINE, "--point",
                    results[0].point.id, "--out", tmp_path / "o0"))


def test_corrupt_index_is_reported(repo, ferry, make_machine):
    folder, results, m = _forward(repo, make_machine)
    p = results[2].point
    path = folder / p.file
    with Container(path, state=p.id) as c:
        first, second = c.slot.offset, c.slot.offset2
    flip(path, path.stat().st_size - 30, 8)  # the index's second copy sits at the end
    assert_ok(check(ferry, repo)[0])  # the first copy serves
    flip(path, first + 10, 8)
    assert second > first
    res, js = check(ferry, repo)
    line = assert_one_line_failure(res)
    assert p.file in line
