"""Every retained restore point exports byte-identical to the disks at its time.

Many days of random changes (byte edits, block rewrites, zeroing, growth,
shrink, grow-after-shrink with zeros, no change, disks added and removed) for
each chain method; after every backup every retained point is exported and
compared with the remembered disk contents, and the chain's shape is checked
against a model of the method's retention.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import enginekit
import pytest
from enginekit import (
    BS,
    JOB,
    MACHINE,
    KiB,
    Machine,
    MiB,
    assert_folder_clean,
    assert_images_equal,
    assert_ok,
    chain_shape,
    day,
    export_disks,
    verify_all_points,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.backup import BackupError
from engine.blockio import LEVELS
from engine.health import check_repository
from engine.model import Kind
from engine.repository.container import DATA_START, FLAG_ZERO, Container
from engine.repository.repository import Repository

# Each op once in the first days (so every kind of change is certainly covered),
# then random days. Disk sdc appears on day 9, sdb goes on day 17 and comes back
# (same name, new content) on day 24.
FORCED = {1: [("edit", "sda")], 2: [("rewrite", "sdb")], 3: [], 4: [("zero", "sda")],
          5: [("shrink", "sda"), ("grow", "sdb")], 6: [("grow_zero", "sda")],
          7: [("dup", "sdb"), ("shrink_grow", "sdb")], 8: [("none", "sda")]}
ADD_DAY, REMOVE_DAY, READD_DAY = 9, 17, 24


def _run_days(repo: Path, out: Path, m: Machine, method: str, keep: int, days: int,
              seed: int) -> dict:
    rng = random.Random(seed * 7919)
    model = enginekit.ChainModel(method, keep)
    history: dict = {}
    stats = {"kinds": set(), "max_points": 0, "chains_removed": 0, "merged": 0}
    m.add_disk("sda")
    m.add_disk("sdb")
    for d in range(days):
        if d in FORCED:
            for op, name in FORCED[d]:
                m.mutate(op, name)
        elif d == ADD_DAY:
            m.add_disk("sdc")
        elif d == REMOVE_DAY:
            m.remove_disk("sdb")
        elif d == READD_DAY:
            m.add_disk("sdb")
        elif d > 0:
            m.random_day()
        m.assert_files_match()
        when = day(d)
        active = method == "forward" and d > 0 and rng.random() < 0.18
        compression = rng.choice(["optimal", "optimal", "none", "dedupe-friendly", "high"])
        res = m.backup(repo, when, method=method, keep=keep, active_full=active,
                       compression=compression)
        assert res.point.time == when
        history[when] = m.state()
        before = len(model.expected())
        model.add(when, active)
        stats["chains_removed" if method == "forward" else "merged"] += (
            before + 1 - len(model.expected()))

        meta = verify_all_points(repo, history, out)
        assert chain_shape(meta) == model.expected(), f"day {d}: chain shape"
        n = len(meta.points)
        taken = d + 1
        if method == "forward":
            chains = meta.chains()
            if len(chains) >= 2:  # the oldest chain stays only while the newer ones are short
                assert sum(len(c) for c in chains[1:]) < keep
            assert all(c[0].kind == Kind.FULL for c in chains)
            assert all(p.kind == Kind.INCREMENTAL for c in chains for p in c[1:])
        elif method == "forever-forward":
            assert n == min(keep, taken)
            assert meta.points[0].kind == Kind.FULL
            assert all(p.kind == Kind.INCREMENTAL for p in meta.points[1:])
            assert meta.points[0].time == day(taken - n)  # the full's time moves forward
        else:
            assert n == min(keep, taken)
            assert meta.points[-1].kind == Kind.FULL and meta.points[-1].time == when
            assert all(p.kind == Kind.ROLLBACK for p in meta.points[:-1])
        assert_folder_clean(repo, meta)
        stats["kinds"] |= {p.kind for p in meta.points}
        stats["max_points"] = max(stats["max_points"], n)
        live = {p.time for p in meta.points}
        history = {t: v for t, v in history.items() if t in live}
    # and the health check agrees: every stored block of every point re-hashes
    (res,) = check_repository(repo, all_points=True)
    assert res.ok and len(res.points) == len(meta.points), (res.corrupt, res.errors)
    return stats


@pytest.mark.parametrize(("method", "keep", "days", "seed"), [
    ("forward", 4, 32, 11),
    ("forever-forward", 6, 30, 12),
    ("reverse", 6, 30, 13),
])
def test_many_days_of_random_changes(repo, out, make_machine, method, keep, days, seed):
    m = make_machine(seed, max_size=2 * MiB + 100 * KiB)
    stats = _run_days(repo, out, m, method, keep, days, seed)
    # the run really exercised retention
    if method == "forward":
        assert stats["chains_removed"] > 0
    else:
        assert stats["merged"] == days - keep
        assert stats["max_points"] == keep


# --------------------------------------------------------------------------- chain shapes (CLI)


def test_forward_chains_removed_whole_via_cli(tmp_path, ferry, make_machine):
    """keep=3: an old chain goes only when the newer chains hold 3 points, and as a whole."""
    repo = tmp_path / "repo"
    m = make_machine(5, max_size=MiB)
    m.add_disk("sda")
    plan = [False, False, False, False, True, False, False, True, False, False, False]
    expected_counts = [1, 2, 3, 4, 5, 6, 3, 4, 5, 3, 4]
    history = {}
    for i, active in enumerate(plan):
        if i:
            m.mutate("rewrite", "sda")
        args = ["backup", "--repo", repo, "--job", JOB, "--machine", MACHINE,
                "--disk", m.path("sda"), "--method", "forward", "--keep", "3",
                "--block-size", "256KiB", "--at", day(i).isoformat(), "--json"]
        res = ferry(*args, *(["--active-full"] if active else []))
        assert_ok(res)
        made = json.loads(res.stdout)
        assert made["kind"] == ("full" if i == 0 or active else "incremental")
        history[day(i)] = m.state()
        res = ferry("chain", "--repo", repo, "--json")
        assert_ok(res)
        data = json.loads(res.stdout)
        (chain,) = data["chains"]
        assert (chain["job"], chain["machine"]) == (JOB, MACHINE)
        pts = chain["points"]
        assert len(pts) == expected_counts[i], f"backup {i}"
        assert [p["time"] for p in pts] == sorted(p["time"] for p in pts)  # oldest first
        assert pts[-1]["id"] == made["point"]
        for p in pts:
            assert (repo / p["file"]).is_file()  # relative to the repository
            assert p["size"] == (repo / p["file"]).stat().st_size
            assert p["gfs"] == []
        kinds = [p["kind"] for p in pts]
        assert kinds[0] == "full"
    verify_all_points(repo, history, tmp_path / "x")
    # chain 1 went when chain 2 reached 3 points (backup 6), chain 2 when chain 3 did
    meta = Repository(repo).load(JOB, MACHINE)
    assert [p.kind.value for p in meta.points] == ["full"] + ["incremental"] * 3
    assert [p.time for p in meta.points] == [day(i) for i in (7, 8, 9, 10)]


@pytest.mark.parametrize("method", ["forever-forward", "reverse"])
@pytest.mark.parametrize("keep", [1, 2, 3])
def test_small_keep(repo, out, make_machine, method, keep):
    m = make_machine(keep, max_size=MiB)
    m.add_disk("sda")
    model = enginekit.ChainModel(method, keep)
    history = {}
    for d in range(6):
        if d:
            m.random_day()
        m.backup(repo, day(d), method=method, keep=keep)
        model.add(day(d))
        history[day(d)] = m.state()
        meta = verify_all_points(repo, history, out)
        assert chain_shape(meta) == model.expected()
        assert len(meta.points) == min(keep, d + 1)
        assert_folder_clean(repo, meta)


def test_export_point_by_time_and_latest(repo, out, make_machine):
    m = make_machine(3, max_size=MiB)
    m.add_disk("sda")
    states = []
    for d in range(3):
        if d:
            m.mutate("rewrite", "sda")
        m.backup(repo, day(d))
        states.append(m.state())
    assert_images_equal(export_disks(repo, "latest", out), states[2], "latest")
    # a time names the newest point at or before it
    assert_images_equal(export_disks(repo, day(1).isoformat(), out), states[1], "at day 1")
    assert_images_equal(export_disks(repo, day(1.5).isoformat(), out), states[1], "day 1.5")
    assert_images_equal(export_disks(repo, day(5).isoformat(), out), states[2], "after all")


def test_block_size_change_needs_a_new_chain(repo, out, make_machine):
    m = make_machine(6, max_size=3 * MiB)
    m.add_disk("sda", size=9 * BS + 1234)
    history = {}
    m.backup(repo, day(0))
    history[day(0)] = m.state()
    m.mutate("rewrite", "sda")
    m.bs = 1 << 20  # same disks, bigger blocks: only as an active full
    with pytest.raises(BackupError, match="block size"):
        m.backup(repo, day(1))
    m.backup(repo, day(1), active_full=True)
    history[day(1)] = m.state()
    for d in (2, 3):
        m.random_day()
        m.backup(repo, day(d))
        history[day(d)] = m.state()
    meta = verify_all_points(repo, history, out)
    assert [p.block_size for p in meta.points] == [BS] + [1 << 20] * 3
    assert [p.kind.value for p in meta.points] == ["full", "full", "incremental", "incremental"]


def test_empty_and_tiny_disks(repo, out, make_machine):
    m = make_machine(4)
    m.add_disk("empty", size=0)
    m.add_disk("tiny", size=1)
    m.add_disk("one-block-plus-one", size=BS + 1)
    history = {}
    for d, method in enumerate(["reverse"] * 3):
        if d == 1:
            m.write("empty", 0, b"now there is data")
            m.write("tiny", 0, b"\x00")
        if d == 2:
            m.truncate("empty", 0)
            m.truncate("one-block-plus-one", BS)
        m.backup(repo, day(d), method=method, keep=5)
        history[day(d)] = m.state()
        verify_all_points(repo, history, out)


# --------------------------------------------------------------------------- random sequences

OP_NAMES = list(Machine.OPS) + ["add", "remove"]
op_strategy = st.tuples(st.sampled_from(OP_NAMES), st.integers(0, 2), st.integers(0, 2**32 - 1))


@settings(max_examples=24, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(method=st.sampled_from(["forward", "forever-forward", "reverse"]),
       keep=st.integers(1, 4),
       steps=st.lists(st.tuples(st.lists(op_strategy, max_size=3), st.booleans()),
                      min_size=1, max_size=7))
def test_random_sequences(method, keep, steps):
    """Short random sequences of changes on tiny disks (hypothesis shrinks any failure)."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        repo, out = tmp / "repo", tmp / "out"
        m = Machine(tmp / "disks", seed=1, max_size=5 * BS // 2 + 77)
        m.add_disk("d0")
        model = enginekit.ChainModel(method, keep)
        history = {}
        for i, (ops, active) in enumerate(steps):
            for op, disk_no, seed in ops:
                m.rng.seed(seed)
                name = f"d{disk_no}"
                if op == "add":
                    if name not in m.disks:
                        m.add_disk(name, size=m.rng.choice([0, 1, BS, BS + 1, m.odd_size(0, 2)]))
                elif op == "remove":
                    if name in m.disks and len(m.disks) > 1:
                        m.remove_disk(name)
                elif name in m.disks:
                    m.mutate(op, name)
            active = active and method == "forward"
            m.backup(tmp / "repo", day(i), method=method, keep=keep, active_full=active)
            history[day(i)] = m.state()
            model.add(day(i), active)
            meta = verify_all_points(repo, history, out)
            assert chain_shape(meta) == model.expected()
            assert_folder_clean(repo, meta)


# --------------------------------------------------------------------------- what is stored


def _blocks(path: Path, state: str, disk: str):
    with Container(path, state=state) as c:
        d = c.disks[disk]
        data = {b for b, e in d.blocks.items() if e.flags != FLAG_ZERO}
        zero = {b for b, e in d.blocks.items() if e.flags == FLAG_ZERO}
        stored = {e.offset: e.stored for e in d.blocks.values() if e.flags != FLAG_ZERO}
    return data, zero, sum(stored.values())


def _make_changes(m: Machine) -> tuple[set[int], set[int], int]:
    """Change a known set of blocks of sda; returns (now data, now zero, new bytes)."""
    size = len(m.disks["sda"])
    nb = m.nblocks("sda")
    assert nb == 17 and size % BS
    for b in (1, 4, 9):
        m.write("sda", b * BS, m.data(BS, "random"))
    m.write("sda", 12 * BS + 5000, b"\x01\x02\x03")  # a small edit
    m.write("sda", 16 * BS + 10, b"tail")  # the partial last block
    m.write("sda", 7 * BS, m.data(BS, "random"))  # was a hole
    m.write("sda", 6 * BS, bytes(BS))  # data -> zeros
    tail = size - 16 * BS
    return {1, 4, 7, 9, 12, 16}, {6}, 5 * BS + tail


@pytest.mark.parametrize("method", ["forward", "forever-forward", "reverse"])
def test_increment_stores_only_changed_blocks(repo, out, make_machine, method):
    m = make_machine(21)
    size = 16 * BS + 777
    m.add_disk("sda", size=size, holes=1.0)
    for b in range(17):  # block 7 stays a hole, block 8 is written as zeros
        if b != 7:
            n = min(BS, size - b * BS)
            m.write("sda", b * BS, bytes(n) if b == 8 else m.data(n, "random"))
    keep = 1 if method == "forever-forward" else 5
    r0 = m.backup(repo, day(0), method=method, keep=keep, compression="none")
    folder = Repository(repo).machine_dir(JOB, MACHINE)
    full_file = folder / r0.point.file
    full_size_0 = full_file.stat().st_size
    data0, zero0, stored0 = _blocks(full_file, r0.point.id, "sda")
    assert data0 == set(range(17)) - {7, 8} and not zero0  # zero blocks are not stored
    assert stored0 == 14 * BS + 777

    state0 = m.state()
    now_data, now_zero, new_bytes = _make_changes(m)
    state1 = m.state()
    r1 = m.backup(repo, day(1), method=method, keep=keep, compression="none")
    assert r1.read <= size
    meta = Repository(repo).load(JOB, MACHINE)
    if method == "forward" or (method == "forever-forward" and keep > 1):
        inc = folder / r1.point.file
        data, zero, stored = _blocks(inc, r1.point.id, "sda")
        assert data == now_data and zero == now_zero
        assert stored == new_bytes
        assert inc.stat().st_size <= DATA_START + new_bytes + 4096
    elif method == "forever-forward":  # keep=1: merged into the full at once
        assert [p.kind for p in meta.points] == [Kind.FULL]
        grown = full_file.stat().st_size - full_size_0
        assert new_bytes <= grown <= new_bytes + 4096
        data, zero, _ = _blocks(full_file, r1.point.id, "sda")
        assert data == (data0 | now_data) - now_zero and not zero
    else:  # reverse: the rollback holds the old versions, the full grows by the new ones
        rb = meta.points[0]
        assert rb.kind == Kind.ROLLBACK
        data, zero, stored = _blocks(folder / rb.file, rb.id, "sda")
        assert data == (now_data | now_zero) & data0  # old data of the changed blocks
        assert zero == now_data - data0  # blocks that were zero before read as zero
        assert stored == 5 * BS + 777  # old 1,4,9,12,6 and the old tail
        grown = full_file.stat().st_size - full_size_0
        assert new_bytes <= grown <= new_bytes + 4096
    history = {day(0): state0, day(1): state1}
    # no change at all: nothing stored but the index
    r2 = m.backup(repo, day(2), method=method, keep=keep, compression="none")
    assert r2.written < 4096
    if method == "forward":
        inc = folder / r2.point.file
        assert _blocks(inc, r2.point.id, "sda")[:2] == (set(), set())
        assert inc.stat().st_size < DATA_START + 4096
    history[day(2)] = m.state()
    meta = Repository(repo).load(JOB, MACHINE)
    for p in meta.points:
        assert_images_equal(export_disks(repo, p.id, out), history[p.time], p.kind.value)


def test_identical_blocks_stored_once(repo, out, make_machine):
    m = make_machine(22)
    block = m.data(BS, "random")
    size = 16 * BS + 1234
    m.add_disk("sda", size=size, holes=0, zeros=0)
    for b in range(16):
        m.write("sda", b * BS, block)
    m.write("sda", 16 * BS, m.data(1234, "random"))
    m.add_disk("sdb", size=3 * BS + 5, holes=0, zeros=0)
    for b in range(3):
        m.write("sdb", b * BS, block)  # also shared across disks of the same file
    m.write("sdb", 3 * BS, b"12345")
    r0 = m.backup(repo, day(0), compression="none")
    state0 = m.state()
    full = Repository(repo).machine_dir(JOB, MACHINE) / r0.point.file
    logical = size + 3 * BS + 5
    assert full.stat().st_size < DATA_START + BS + 1234 + 5 + 4096
    assert full.stat().st_size < logical / 10
    # an increment that writes one new block three times stores it once
    other = m.data(BS, "random")
    for b in (2, 5, 11):
        m.write("sda", b * BS, other)
    r1 = m.backup(repo, day(1), compression="none")
    inc = full.parent / r1.point.file
    data, _zero, stored = _blocks(inc, r1.point.id, "sda")
    assert data == {2, 5, 11} and stored == BS
    assert inc.stat().st_size < DATA_START + BS + 4096
    assert_images_equal(export_disks(repo, r0.point.id, out), state0, "full")
    assert_images_equal(export_disks(repo, "latest", out), m.state(), "latest")


def test_zero_blocks_not_stored(repo, out, make_machine):
    m = make_machine(23)
    size = 16 * BS + 999
    m.add_disk("written-zeros", size=size, holes=0, zeros=1.0)  # every block written as zeros
    m.add_disk("sparse", size=size, holes=1.0)  # every block a hole
    m.add_disk("mixed", size=size, holes=1.0)
    for b in (0, 3, 6, 9, 16):  # 5 data blocks; zeros written in 1, 4, 7; the rest holes
        m.write("mixed", b * BS, m.data(min(BS, size - b * BS), "random"))
    for b in (1, 4, 7):
        m.write("mixed", b * BS, bytes(BS))
    m.assert_files_match()
    r = m.backup(repo, day(0), compression="none")
    full = Repository(repo).machine_dir(JOB, MACHINE) / r.point.file
    with Container(full, state=r.point.id) as c:
        assert c.disks["written-zeros"].blocks == {}
        assert c.disks["sparse"].blocks == {}
        assert set(c.disks["mixed"].blocks) == {0, 3, 6, 9, 16}
    assert full.stat().st_size < DATA_START + 4 * BS + 999 + 4096
    assert_images_equal(export_disks(repo, "latest", out), m.state(), "zeros")


@pytest.mark.parametrize("level", list(LEVELS))
def test_each_compression_level_round_trips(repo, out, make_machine, level):
    m = make_machine(24)
    size = 12 * BS + 4321
    m.add_disk("sda", size=size, holes=0, zeros=0)
    m.write("sda", 0, m.data(8 * BS, "text") + m.data(size - 8 * BS, "random"))
    r0 = m.backup(repo, day(0), compression=level)
    s0 = m.state()
    for op in ("rewrite", "edit", "grow", "zero"):
        m.mutate(op, "sda")
    m.write("sda", 0, m.data(BS, "text"))
    r1 = m.backup(repo, day(1), compression=level)
    assert_images_equal(export_disks(repo, r0.point.id, out), s0, f"{level} full")
    assert_images_equal(export_disks(repo, r1.point.id, out), m.state(), f"{level} increment")
    full = Repository(repo).machine_dir(JOB, MACHINE) / r0.point.file
    text_and_random = full.stat().st_size
    if level == "none":
        assert text_and_random >= size
    else:  # the 8 text blocks shrink, the random ones are kept raw
        assert text_and_random < size - 8 * BS * 0.4


def test_compression_changes_within_a_chain(repo, out, make_machine):
    m = make_machine(25, max_size=MiB)
    m.add_disk("sda")
    history = {}
    for d, level in enumerate(list(LEVELS) * 2):
        if d:
            m.random_day()
        m.backup(repo, day(d), method="forever-forward", keep=3, compression=level)
        history[day(d)] = m.state()
        verify_all_points(repo, history, out)


@pytest.mark.parametrize("level", ["extreme", "high", "optimal"])
@pytest.mark.parametrize("holes", [(7, 8, 9, 10), (3,), tuple(range(2, 20, 2))])
def test_sparse_disk_with_slow_compression(repo, out, make_machine, level, holes):
    """Holes between compressible blocks, compressed slowly: every block exports exactly.

    (The scan reads ahead into a ring of buffers; a run of holes must not let it
    reuse a buffer whose block is still being hashed and compressed.)
    """
    m = make_machine(27)
    size = 24 * BS + 1000
    m.add_disk("sda", size=size, holes=1.0)
    for b in range(25):
        if b not in holes:
            m.write("sda", b * BS, m.data(min(BS, size - b * BS), "text"))
    r0 = m.backup(repo, day(0), compression=level)
    assert_images_equal(export_disks(repo, r0.point.id, out), m.state(), "full")
    s0 = m.state()
    for b in (0, 1, 2, 5, 6, 11, 23):  # an increment over the same holes
        m.write("sda", b * BS, m.data(BS, "text"))
    r1 = m.backup(repo, day(1), compression=level)
    assert_images_equal(export_disks(repo, r1.point.id, out), m.state(), "increment")
    assert_images_equal(export_disks(repo, r0.point.id, out), s0, "full again")


def test_sparse_source_is_not_read(repo, make_machine):
    """Holes of a sparse image are not read: `read` counts only the data regions."""
    m = make_machine(26)
    m.add_disk("sda", size=64 * BS + 3, holes=1.0)
    m.write("sda", 5 * BS, m.data(BS, "random"))
    r = m.backup(repo, day(0))
    assert r.read <= 2 * BS


def test_many_disks_two_machines_share_nothing(tmp_path, repo, out):
    """Two machines (and two jobs) in one repository stay independent."""
    a = Machine(tmp_path / "a", seed=31, max_size=MiB)
    b = Machine(tmp_path / "b", seed=32, max_size=MiB)
    for mm in (a, b):
        mm.add_disk("sda")
        mm.add_disk("sdb")
    ha, hb = {}, {}
    for d in range(4):
        if d:
            a.random_day()
            b.random_day()
        a.backup(repo, day(d), machine="alpha", method="reverse", keep=3)
        b.backup(repo, day(d), job="Other job", machine="beta", method="forever-forward", keep=2)
        ha[day(d)], hb[day(d)] = a.state(), b.state()
        verify_all_points(repo, ha, out, machine="alpha")
        verify_all_points(repo, hb, out, job="Other job", machine="beta")
    assert Repository(repo).machines() == [(JOB, "alpha"), ("Other job", "beta")]
