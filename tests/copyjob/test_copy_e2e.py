"""End to end: real source chains -> `ferry run` -> target chains exported byte for byte."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from engine.copy.runner import run_job
from engine.jobs.load import load_job
from engine.repository.repository import Repository

from .conftest import BS, T0, Source, exported, ferry, write_job

JOBS = ["Daily", "Forever", "Reverse"]


def _check_latest(src: Source, target, job: str, tmp_path) -> None:
    """The target's latest point of each machine equals the source point it came from."""
    repo = Repository(target)
    for m in src.machines.values():
        meta = repo.load(job, m.name)
        last = meta.points[-1]
        got = exported(target, job, m.name, last.id, tmp_path / f"x-{m.name}-{last.id}")
        assert got == m.states[last.source_point], f"{m.name} {last.kind}"


def test_full_then_increments_from_every_method(tmp_path, source):
    job = write_job(tmp_path / "dr.toml", "DR copy", source.repo, JOBS, tmp_path / "dr", keep=4)
    spec = load_job(job)
    for day in range(6):
        source.backup(T0 + timedelta(days=day))
        res = run_job(spec, at=T0 + timedelta(days=day, hours=1))
        assert res.status == "Success", res.to_json()
        kinds = {t.kind for t in res.tasks}
        assert kinds == ({"full"} if day == 0 else {"incremental"})
        _check_latest(source, tmp_path / "dr", "DR copy", tmp_path / f"d{day}")
    # forever-forward on the target: exactly `keep` points, the full first
    for m in source.machines.values():
        pts = Repository(tmp_path / "dr").load("DR copy", m.name).points
        assert [p.kind.value for p in pts] == ["full"] + ["incremental"] * 3
        for p in pts:  # every retained point, not only the latest, is exact
            assert exported(tmp_path / "dr", "DR copy", m.name, p.id,
                            tmp_path / f"all-{p.id}") == m.states[p.source_point]


def test_increment_transfer_is_proportional_to_changed_blocks(tmp_path):
    src = Source(tmp_path, methods=("forward",), size=64 * BS)
    job = load_job(write_job(tmp_path / "j.toml", "J", src.repo, ["Daily"], tmp_path / "dr"))
    src.backup(T0)
    full = run_job(job, at=T0 + timedelta(hours=1)).tasks[0]
    m = next(iter(src.machines.values()))
    changed = m.mutate(3)
    m.disk.write_bytes(m.data)
    from engine.backup import take_backup

    r = take_backup(src.repo, "Daily", m.name, [m.disk], block_size=BS, at=T0 + timedelta(days=1))
    m.states[r.point.id] = bytes(m.data)
    inc = run_job(job, at=T0 + timedelta(days=1, hours=1)).tasks[0]
    assert inc.kind == "incremental"
    assert inc.stats.blocks_sent == len(changed)
    assert inc.stats.read == len(changed) * BS
    # random data: each sent block is ~BS on the wire; nothing else of size travels
    assert len(changed) * BS <= inc.stats.transferred < (len(changed) + 1) * BS
    assert full.stats.transferred > 20 * inc.stats.transferred
    assert inc.stats.processed == len(m.data)


def test_immediate_copies_every_point_periodic_the_newest(tmp_path, source):
    per = load_job(write_job(tmp_path / "p.toml", "P", source.repo, JOBS, tmp_path / "dr", keep=20))
    imm = load_job(write_job(tmp_path / "i.toml", "I", source.repo, JOBS, tmp_path / "dr", keep=20,
                             mode="immediate"))
    source.backup(T0)
    assert run_job(per, at=T0).status == "Success"
    assert run_job(imm, at=T0).status == "Success"
    for day in range(1, 4):
        source.backup(T0 + timedelta(days=day))
    assert run_job(per, at=T0 + timedelta(days=4)).status == "Success"
    assert run_job(imm, at=T0 + timedelta(days=4)).status == "Success"
    repo = Repository(tmp_path / "dr")
    for m in source.machines.values():
        assert len(repo.load("P", m.name).points) == 2  # first full + the newest
        pts = repo.load("I", m.name).points
        assert len(pts) == 4  # every source point mirrored
        for p in pts:
            assert exported(tmp_path / "dr", "I", m.name, p.id, tmp_path / p.id) == \
                m.states[p.source_point]


def test_nothing_new_copies_nothing(tmp_path, source):
    job = load_job(write_job(tmp_path / "j.toml", "J", source.repo, JOBS, tmp_path / "dr"))
    source.backup(T0)
    run_job(job, at=T0)
    again = run_job(job, at=T0 + timedelta(hours=2))
    assert again.status == "Success"
    assert all(t.kind == "none" and t.stats.transferred == 0 for t in again.tasks)


def test_dry_run_changes_nothing(tmp_path, source):
    job = write_job(tmp_path / "j.toml", "J", source.repo, JOBS, tmp_path / "dr")
    source.backup(T0)
    (tmp_path / "dr").mkdir()
    before = sorted(p for p in (tmp_path / "dr").rglob("*"))
    proc = ferry("run", job, "--dry-run", "--json", "--at", "2026-11-02T00:00")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["dry_run"] is True
    for t in data["tasks"]:
        assert t["kind"] == "full" and t["plan"][0]["blocks"] > 0
        assert t["plan"][0]["bytes_after_dedup"] <= t["plan"][0]["bytes"]
    assert sorted(p for p in (tmp_path / "dr").rglob("*")) == before


def test_run_json_shape_and_history(tmp_path, source):
    job = write_job(tmp_path / "j.toml", "DR copy", source.repo, JOBS, tmp_path / "dr")
    source.backup(T0)
    proc = ferry("run", job, "--json", "--at", "2026-11-02T00:00")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["job"] == "DR copy" and data["status"] == "Success"
    for key in ("started", "finished", "tasks", "retention"):
        assert key in data
    t = data["tasks"][0]
    for key in ("machine", "status", "kind", "point", "source_point", "processed", "read",
                "transferred", "written", "duration_s", "held_s", "bottleneck", "message"):
        assert key in t
    assert t["bottleneck"] in ("Source", "Compress", "Stream", "Target")
    hist = ferry("history", "--repo", tmp_path / "dr", "--json", check=True)
    sessions = json.loads(hist.stdout)["sessions"]
    assert sessions[0]["job"] == "DR copy" and sessions[0]["status"] == "Success"
    assert {x["machine"] for x in sessions[0]["tasks"]} == {t["machine"] for t in data["tasks"]}


def test_wan_acceleration_sends_only_blocks_the_target_lacks(tmp_path):
    """Two machines with identical disks: with WAN acceleration the second full is rebuilt
    from the target's own files instead of travelling."""
    src = Source(tmp_path, methods=("forward", "forever-forward"), size=16 * BS, seed=1)
    a, b = src.machines.values()
    b.data = bytearray(a.data)
    job = load_job(write_job(tmp_path / "j.toml", "W", src.repo, ["Daily"], tmp_path / "dr",
                             extra="[transport]\nwan_acceleration = true\nparallel_tasks = 1\n"))
    src.backup(T0)
    first = run_job(job, at=T0).tasks[0]
    job2 = load_job(write_job(tmp_path / "k.toml", "W", src.repo, ["Forever"], tmp_path / "dr",
                              extra="[transport]\nwan_acceleration = true\n"))
    second = run_job(job2, at=T0).tasks[0]
    assert first.stats.blocks_sent > 0 and second.stats.blocks_sent == 0
    assert second.stats.transferred < first.stats.transferred / 20
    got = exported(tmp_path / "dr", "W", b.name, "latest", tmp_path / "x")
    assert got == bytes(b.data)


def test_missing_source_repository_fails_with_one_line(tmp_path, source):
    source.backup(T0)
    job = write_job(tmp_path / "j.toml", "J", source.repo, JOBS, tmp_path / "dr")
    import shutil

    shutil.rmtree(source.repo)
    proc = ferry("run", job)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "repository" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("body,needle", [
    ('name = "x"\n[source]\nrepository = "src"\njobs = ["a"]\n[target]\nrepository = "t"\n'
     '[retention]\nkeep = 1\n', "keep"),
    ('name = "x"\nbogus = 1\n', "bogus"),
    ("name = [\n", "toml" ),
])
def test_bad_job_file_is_one_line_exit_2(tmp_path, body, needle):
    job = tmp_path / "bad.toml"
    job.write_text(body)
    (tmp_path / "src").mkdir()
    proc = ferry("run", job)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(job) in lines[0]
    assert needle.lower() in lines[0].lower()
    assert not (tmp_path / "t").exists()


def test_block_size_change_is_refused_with_the_reference_message(tmp_path):
    src = Source(tmp_path, methods=("forward",))
    job = load_job(write_job(tmp_path / "j.toml", "J", src.repo, ["Daily"], tmp_path / "dr"))
    src.backup(T0)
    run_job(job, at=T0)
    m = next(iter(src.machines.values()))
    from engine.backup import take_backup

    take_backup(src.repo, "Daily", m.name, [m.disk], block_size=BS * 2, active_full=True,
                at=T0 + timedelta(days=1))
    res = run_job(job, at=T0 + timedelta(days=1))
    assert res.status == "Failed"
    assert "different block size" in res.tasks[0].message


def test_remote_target_mover_over_tcp(tmp_path, source):
    import socket
    import subprocess
    import sys
    import time

    from .conftest import ROOT

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mover = subprocess.Popen([sys.executable, "-m", "engine.cli", "mover", "--plain", "--listen",
                              f"127.0.0.1:{port}", "--repo", str(tmp_path / "remote")],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert "listening" in mover.stdout.readline()
        job = write_job(tmp_path / "j.toml", "R", source.repo, JOBS, tmp_path / "local")
        text = job.read_text().replace('[target]\n', f'[target]\nmover = "127.0.0.1:{port}"\n')
        job.write_text(text)
        spec = load_job(job)
        for day in range(3):
            source.backup(T0 + timedelta(days=day))
            res = run_job(spec, at=T0 + timedelta(days=day))
            assert res.status == "Success", res.to_json()
        _check_latest(source, tmp_path / "remote", "R", tmp_path / "out")
        assert not (tmp_path / "local" / "R").exists() or not any(
            (tmp_path / "local" / "R").glob("*/*.fbm"))
    finally:
        mover.terminate()
        mover.wait(timeout=10)
        time.sleep(0)


def test_blocks_per_point_changed_is_what_the_increment_holds(tmp_path):
    """The increment file on the target holds only the changed blocks."""
    src = Source(tmp_path, methods=("reverse",), size=32 * BS)
    job = load_job(write_job(tmp_path / "j.toml", "J", src.repo, ["Reverse"], tmp_path / "dr"))
    src.backup(T0)
    run_job(job, at=T0)
    src.backup(T0 + timedelta(days=1), mutate=2)
    run_job(job, at=T0 + timedelta(days=1))
    m = next(iter(src.machines.values()))
    pts = Repository(tmp_path / "dr").load("J", m.name).points
    assert pts[-1].kind.value == "incremental"
    assert pts[-1].size < 4 * BS < pts[0].size
