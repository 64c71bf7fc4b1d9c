"""The sample repositories (sample_repos/generate.py), their job files and sample_repos.vmdata."""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tomllib
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import xxhash

from engine.model import Kind
from engine.repository.repository import Repository
from engine.repository.resolve import PointView
from engine.restore import export_point
from sample_repos import vmdata

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "sample_repos"
F, INC, R = Kind.FULL, Kind.INCREMENTAL, Kind.ROLLBACK


def _load_generate():
    spec = importlib.util.spec_from_file_location("sample_generate", SAMPLES / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


gen = _load_generate()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("samples")
    gen.build(out, quiet=True)
    return out / "primary"


def _digests(repo: Repository, job: str, machine: str) -> list[tuple]:
    """Per point: (kind, time, disks, {disk: {block: digest}}) - everything but the ids."""
    meta = repo.load(job, machine)
    folder = repo.machine_dir(job, machine)
    out = []
    for p in meta.points:
        with PointView(folder, meta, p) as view:
            blocks = {d.name: view.digests(d.name) for d in p.disks}
        out.append((p.kind, p.time, [(d.name, d.size) for d in p.disks], blocks))
    return out


# ---------------------------------------------------------------- the generated repository


def test_build_is_complete(built: Path):
    assert (built / ".built").is_file()
    assert not (built.parent / ".primary.building").exists()
    repo = Repository(built)
    assert repo.jobs() == ["Daily", "Forever", "Reverse"]  # .disks is not a job
    assert repo.machines() == [
        ("Daily", "db01"), ("Daily", "web01"), ("Daily", "web02"),
        ("Forever", "app01"), ("Forever", "app02"),
        ("Reverse", "dc01"), ("Reverse", "file01"),
    ]
    total = sum(p.stat().st_size for p in built.rglob("*")
                if p.is_file() and ".disks" not in p.parts)
    assert 10 << 20 < total < 120 << 20  # a few tens of MiB


def test_daily_is_forward_with_weekly_active_fulls(built: Path):
    repo = Repository(built)
    for m in ("web01", "web02", "db01"):
        meta = repo.load("Daily", m)
        assert meta.method.value == "forward" and meta.block_size == 256 << 10
        assert [p.kind for p in meta.points] == [F] + [INC] * 6 + [F] + [INC] * 6
        start = datetime(2026, 11, 1, 21, 0)
        assert [p.time for p in meta.points] == [start + timedelta(days=d) for d in range(14)]
        assert all(p.time.weekday() == 6 for p in meta.points if p.kind == F)
        assert len(meta.chains()) == 2


def test_forever_forward_keeps_seven(built: Path):
    repo = Repository(built)
    for m in ("app01", "app02"):
        meta = repo.load("Forever", m)
        assert meta.method.value == "forever-forward"
        assert [p.kind for p in meta.points] == [F] + [INC] * 6
        assert meta.points[0].time == datetime(2026, 11, 8, 21, 30)
        assert meta.points[-1].time == datetime(2026, 11, 14, 21, 30)
    sizes = [{d.name: d.size for d in p.disks}["data.raw"]
             for p in repo.load("Forever", "app02").points]
    assert sizes == [3 << 20] * 7  # grew from 2 MiB by 50 % on day 5


def test_reverse_has_rollbacks_then_full(built: Path):
    repo = Repository(built)
    for m in ("dc01", "file01"):
        meta = repo.load("Reverse", m)
        assert meta.method.value == "reverse"
        assert [p.kind for p in meta.points] == [R] * 6 + [F]
        assert meta.points[-1].time == datetime(2026, 11, 14, 22, 0)
    data = [{d.name: d.size for d in p.disks}["data.raw"]
            for p in repo.load("Reverse", "file01").points]
    assert data[0] == 10 << 20 and data[-1] == 8 << 20  # grown on day 4, shrunk on day 10
    assert data.index(8 << 20) == 3  # day 10 = 2026-11-11 is the first shrunk point


def test_latest_points_restore_to_the_kept_disks(built: Path, tmp_path: Path):
    repo = Repository(built)
    for job, machine in repo.machines():
        out = tmp_path / job / machine
        paths = export_point(built, job, machine, "latest", out)
        disks = built / ".disks" / job / machine
        assert sorted(p.name for p in paths) == sorted(p.name for p in disks.iterdir())
        for p in paths:
            assert p.read_bytes() == (disks / p.name).read_bytes(), f"{job}/{machine}/{p.name}"


def test_linux_machines_share_template_blocks(built: Path):
    repo = Repository(built)
    zero = xxhash.xxh3_128_digest(bytes(256 << 10))

    def system(job, machine, which):
        meta = repo.load(job, machine)
        with PointView(repo.machine_dir(job, machine), meta, meta.points[which]) as view:
            return set(view.digests("system.raw").values()) - {zero}

    first = {m: system("Daily", m, 0) for m in ("web01", "web02", "db01")}
    assert first["web01"] & first["web02"] & first["db01"]  # the same OS image
    assert system("Daily", "web01", -1) & system("Forever", "app01", -1)  # still, 2 weeks on
    assert not first["web01"] & system("Reverse", "dc01", 0)  # a different OS template


def test_build_is_deterministic(built: Path, tmp_path: Path):
    """A shorter build gives the same first points (Daily keeps them all) except ids."""
    gen.build(tmp_path, days=3, quiet=True)
    a, b = Repository(built), Repository(tmp_path / "primary")
    for m in ("web01", "web02", "db01"):
        assert _digests(a, "Daily", m)[:3] == _digests(b, "Daily", m)
    for job, machine in b.machines():
        for p in (tmp_path / "primary" / ".disks" / job / machine).iterdir():
            assert p.stat().st_size > 0


def test_rebuild_replaces_an_unfinished_build(tmp_path: Path):
    stale = tmp_path / "primary"
    (stale / "Daily").mkdir(parents=True)
    (stale / "junk").write_text("x")  # no .built: a crashed build
    assert gen.main(["--out", str(tmp_path), "--days", "1"]) == 0
    assert (stale / ".built").is_file() and not (stale / "junk").exists()
    before = (stale / ".built").stat().st_mtime_ns
    assert gen.main(["--out", str(tmp_path), "--days", "1"]) == 0  # built: nothing to do
    assert (stale / ".built").stat().st_mtime_ns == before


# ---------------------------------------------------------------- job files

TOP = {"name", "mode", "source", "target", "retention", "schedule", "storage", "transport",
       "inventory"}
TABLES = {
    "source": {"repository", "jobs", "machines"},
    "target": {"repository"},
    "retention": {"keep", "unit", "deleted_items_days", "gfs"},
    "schedule": {"daily_at", "every", "days", "window", "rpo"},
    "storage": {"compression", "health_check", "compact"},
    "transport": {"wan_acceleration", "parallel_tasks", "rate_limit", "retries", "retry_wait"},
}
GFS = {"weekly": {"keep_weeks", "day"}, "monthly": {"keep_months", "week"},
       "yearly": {"keep_years", "month"}}
JOB_FILES = sorted((SAMPLES / "jobs").glob("*.toml"))


def test_job_files_exist():
    assert {p.name for p in JOB_FILES} >= {"dr-copy.toml", "offsite-gfs.toml", "immediate.toml"}


@pytest.mark.parametrize("path", JOB_FILES, ids=lambda p: p.name)
def test_job_file_has_the_contract_keys(path: Path):
    job = tomllib.loads(path.read_text())
    assert set(job) <= TOP
    assert isinstance(job["name"], str) and job["name"]
    assert job.get("mode", "periodic") in ("periodic", "immediate")
    for table, keys in TABLES.items():
        assert set(job.get(table, {})) <= keys, table
    assert job["source"]["repository"] == "../primary"
    assert job["target"]["repository"] == "../dr"
    assert set(job["source"]["jobs"]) <= {j.name for j in gen.JOBS}
    ret = job["retention"]
    assert isinstance(ret["keep"], int) and ret["keep"] >= 2
    assert ret.get("unit", "points") in ("points", "days")
    gfs = ret.get("gfs", {})
    assert set(gfs) <= set(GFS) | {"method"}
    for cycle, keys in GFS.items():
        if cycle in gfs:
            assert set(gfs[cycle]) == keys
    if job.get("mode") == "immediate":
        assert "schedule" not in job


def test_job_files_modes():
    jobs = {p.name: tomllib.loads(p.read_text()) for p in JOB_FILES}
    assert jobs["dr-copy.toml"]["source"]["jobs"] == ["Daily", "Forever"]
    assert jobs["dr-copy.toml"]["retention"]["keep"] == 7
    assert jobs["offsite-gfs.toml"]["source"]["jobs"] == ["Reverse"]
    assert set(jobs["offsite-gfs.toml"]["retention"]["gfs"]) >= {"weekly", "monthly", "yearly"}
    assert jobs["immediate.toml"]["mode"] == "immediate"
    assert jobs["immediate.toml"]["source"]["jobs"] == ["Forever"]


def test_job_files_load_with_the_engine(built: Path, tmp_path: Path):
    jobfile = pytest.importorskip("engine.jobs.load")
    shutil.copytree(built, tmp_path / "primary", ignore=shutil.ignore_patterns(".disks"))
    (tmp_path / "jobs").mkdir()
    for p in JOB_FILES:
        shutil.copy(p, tmp_path / "jobs" / p.name)
        spec = jobfile.load_job(tmp_path / "jobs" / p.name)
        assert spec.name == tomllib.loads(p.read_text())["name"]


def test_history_from_yesterday_and_a_throttled_job(built: Path, tmp_path: Path):
    """`make run`'s console is not empty (sessions from yesterday evening, with logs) and
    one job's first run lasts about a minute at its rate limit."""
    from engine.copy.runner import run_job
    from engine.history import History, history_path
    from engine.jobs import load as jobfile

    shutil.copytree(built, tmp_path / "primary", ignore=shutil.ignore_patterns(".disks"))
    (tmp_path / "jobs").mkdir()
    for p in JOB_FILES:
        shutil.copy(p, tmp_path / "jobs" / p.name)
    now = datetime(2026, 12, 2, 9, 0)
    mark = gen.make_history(tmp_path / "jobs", now, quiet=True)
    assert mark.is_file()
    for name, hour, minute in gen.HISTORY_JOBS:
        spec = jobfile.load_job(tmp_path / "jobs" / name)
        (row,) = History(history_path(spec)).sessions(spec.name)
        assert row["status"] in ("Success", "Warning") and row["started"].startswith(
            f"2026-12-01T{hour:02d}:{minute:02d}")
        assert History(history_path(spec)).log(row["id"])  # the session detail has a log
    slow = jobfile.load_job(tmp_path / "jobs" / "throttled.toml")
    plan = run_job(slow, at=now, dry_run=True)
    assert {t.kind for t in plan.tasks} == {"full"} and len(plan.tasks) == 3
    read = sum(t.stats.read for t in plan.tasks)
    assert 15 * MiB <= read <= 18 * MiB, read  # about 10 MiB of it is sent (measured)
    assert slow.transport.rate_limit == 128 * 1024  # 10 MiB: 40 s per task .. 80 s shared
    assert not History(history_path(slow)).sessions(slow.name)  # left for the newcomer


# ---------------------------------------------------------------- sample_repos.vmdata

MiB = 1 << 20


def _blocks(data: bytes, bs: int) -> list[bytes]:
    return [xxhash.xxh3_128_digest(data[i:i + bs]) for i in range(0, len(data), bs)]


def test_vmdata_same_seed_same_bytes(tmp_path: Path):
    a = vmdata.disk_bytes(8 * MiB + 12345, "m1", "os")
    assert a == vmdata.disk_bytes(8 * MiB + 12345, "m1", "os")
    vmdata.write_disk(tmp_path / "a.raw", 8 * MiB + 12345, "m1", "os")
    vmdata.write_disk(tmp_path / "b.raw", 8 * MiB + 12345, "m1", "os", sparse=True)
    assert (tmp_path / "a.raw").read_bytes() == a == (tmp_path / "b.raw").read_bytes()
    assert vmdata.disk_bytes(8 * MiB, "m2", "os") != a[:8 * MiB]


def test_vmdata_machines_share_template_blocks():
    bs = 256 << 10
    zero = xxhash.xxh3_128_digest(bytes(bs))
    kw = dict(unit=bs, shared=0.5)
    a = _blocks(vmdata.disk_bytes(16 * MiB, "a", "linux", **kw), bs)
    b = _blocks(vmdata.disk_bytes(16 * MiB, "b", "linux", **kw), bs)
    c = _blocks(vmdata.disk_bytes(16 * MiB, "c", "windows", **kw), bs)
    same = [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x == y and x != zero]
    assert len(same) >= 5 and max(same) < 32  # identical blocks, inside the template half
    assert not ({x for x in a if x != zero} & {x for x in c if x != zero})


def test_vmdata_mix():
    stats = vmdata.DiskStats()
    for _ in vmdata.iter_disk(256 * MiB, "mix", "os", stats=stats):
        pass
    assert stats.size == 256 * MiB
    assert stats.zero + stats.text + stats.random == stats.size
    for kind, want in (("zero", 0.4), ("text", 0.3), ("random", 0.3)):
        assert abs(getattr(stats, kind) / stats.size - want) < 0.08, kind
    assert 0.15 < stats.shared / stats.size < 0.3


def test_vmdata_mutation_is_deterministic_and_exact(tmp_path: Path):
    bs = 256 << 10
    a, b = tmp_path / "a.raw", tmp_path / "b.raw"
    vmdata.write_disk(a, 16 * MiB, "m", "os", unit=bs)
    shutil.copy(a, b)
    before = _blocks(a.read_bytes(), bs)
    ma = vmdata.mutate_disk(a, 1, "m", 10, unit=bs)
    mb = vmdata.mutate_disk(b, 1, "m", 10, unit=bs)
    assert ma == mb and a.read_bytes() == b.read_bytes()
    after = _blocks(a.read_bytes(), bs)
    changed = {i for i, (x, y) in enumerate(zip(before, after, strict=True)) if x != y}
    assert changed == set(ma.units) and len(changed) == round(64 * 0.10)
    assert vmdata.changed_blocks(ma, bs) == len(changed)
    assert ma.changed_bytes == sum(n for _, n in ma.ranges)
    # another day changes other bytes; growth and shrink resize the file
    m2 = vmdata.mutate_disk(a, 2, "m", 2, grow_pct=25, unit=bs)
    assert m2.new_size == 20 * MiB == os.path.getsize(a) and m2.grown_bytes == 4 * MiB
    m3 = vmdata.mutate_disk(a, 3, "m", 2, shrink_pct=50, unit=bs)
    assert m3.new_size == 10 * MiB == os.path.getsize(a)


def test_vmdata_mutation_always_changes_each_unit(tmp_path: Path):
    bs = 256 << 10
    p = tmp_path / "z.raw"
    vmdata.write_disk(p, 4 * MiB, "zeroes", unit=bs,
                      mix=vmdata.Mix(zero=1.0, text=0.0, random=0.0))
    assert p.read_bytes() == bytes(4 * MiB)
    m = vmdata.mutate_disk(p, 1, "zeroes", 50, unit=bs, zero_pct=100)
    assert len(m.units) == 8 and not m.zeroed  # zeroing a zero unit would change nothing
    after = _blocks(p.read_bytes(), bs)
    assert sum(d != xxhash.xxh3_128_digest(bytes(bs)) for d in after) == 8


class _LazyFuture:
    def __init__(self, fn, args):
        self.fn, self.args, self.finished, self.value = fn, args, False, None

    def done(self) -> bool:
        return self.finished

    def result(self):
        if not self.finished:
            self.value, self.finished = self.fn(*self.args), True
        return self.value


class _LazyPool:
    """Runs a job only when its result is asked for: the slowest legal thread schedule."""

    def submit(self, fn, *args):
        return _LazyFuture(fn, args)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def test_sparse_vm_disk_backs_up_intact(tmp_path: Path, monkeypatch):
    """Holes between data blocks must not let the reader reuse a buffer still being hashed.

    Two data blocks, five holes, data again: with a reader ring of 2 x threads + 2
    buffers, the block after the holes must not land in the buffer of block 1
    before block 1 has been hashed and compressed.
    """
    import engine.backup

    bs = 256 << 10
    data = vmdata.disk_bytes(12 * bs, "sparse", mix=vmdata.Mix(zero=0.0, text=0.5, random=0.5))
    img = tmp_path / "disk.raw"
    fd = os.open(img, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for b in (0, 1, 7, 8, 9):
            os.pwrite(fd, data[b * bs:(b + 1) * bs], b * bs)
        os.ftruncate(fd, 12 * bs)
    finally:
        os.close(fd)
    monkeypatch.setattr(engine.backup, "make_pool", _LazyPool)
    engine.backup.take_backup(tmp_path / "repo", "J", "m", [img], block_size=bs)
    out = export_point(tmp_path / "repo", "J", "m", "latest", tmp_path / "out")
    assert out[0].read_bytes() == img.read_bytes()
