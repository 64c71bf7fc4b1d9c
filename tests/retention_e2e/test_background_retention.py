"""Issue 11 item 5: background retention. The daemon's daily pass at 00:30 (and `ferry
retain JOBFILE` by hand) removes expired GFS flags and deletes the files they freed
when the job does not run (disabled, source gone, schedule paused); it never merges,
makes no GFS full and is its own session kind in the history. The real passes are
compared with `ferry preview --background` day by day.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime

import pytest
from copyjob.conftest import ferry

from engine.copy import background as bg
from engine.copy.background import pass_due, retain_job
from engine.copy.runner import JobLock, RunError
from engine.daemon import Daemon, last_run
from engine.history import History, history_path
from engine.jobs.load import load_job
from engine.repository.locks import ChainLock
from engine.repository.repository import Repository

from .replaykit import Lab, compare_with_preview, fast_dir, no_fsync, run_replay

JAN4 = datetime(2026, 1, 4, 22, 0)  # a Sunday
GFS = """
[retention.gfs]
weekly = { keep_weeks = 2, day = "sunday" }
"""


@pytest.fixture
def work(tmp_path, monkeypatch):
    no_fsync(monkeypatch)
    yield from fast_dir(tmp_path)


def _weekly(chain) -> list[tuple[str, str]]:
    return [(p.gfs_dates["W"], p.kind.value) for p in chain if "W" in p.gfs]


def test_paused_job_loses_expired_flags_and_their_files_on_the_day(work):
    """Keep 2, weekly on Sunday kept 2 weeks; runs 01-04..01-19, then no run for 16
    days (schedule paused). Without background retention the 01-11 full would stay
    until the next run; the 00:30 pass of 01-25 drops its flag and deletes its file,
    the 02-01 pass drops the 01-18 flag (the active chain's full stays, unflagged).
    Every day equals `ferry preview --background`, and nothing is merged."""
    lab = Lab(work)
    job = lab.job("Paused", keep=2, retention=GFS)
    last = date(2026, 1, 19)
    seen: dict[date, list] = {}
    files: dict[date, set[str]] = {}
    folder = Repository(lab.dst).machine_dir("Paused", "vm1")

    def on_day(d: int, t: datetime, res) -> None:
        seen[t.date()] = lab.chain("Paused")
        files[t.date()] = {f.name for f in folder.iterdir() if f.suffix in (".fbk", ".fib")}

    rep = run_replay(lab, job, 32, start=JAN4, skip=lambda t: t.date() > last, background=True,
                     on_day=on_day)
    assert compare_with_preview(rep) == 32
    assert _weekly(seen[date(2026, 1, 24)]) == [("2026-01-11", "full"), ("2026-01-18", "full")]
    old = next(p for p in seen[date(2026, 1, 24)] if p.gfs_dates.get("W") == "2026-01-11")
    assert old.file in files[date(2026, 1, 24)]
    assert _weekly(seen[date(2026, 1, 25)]) == [("2026-01-18", "full")]
    assert old.file not in files[date(2026, 1, 25)], "the freed full's file is still on disk"
    assert len(files[date(2026, 1, 25)]) == len(seen[date(2026, 1, 25)])
    assert old.id not in {p.id for p in seen[date(2026, 1, 25)]}
    assert _weekly(seen[date(2026, 2, 1)]) == []
    assert [p.id for p in seen[date(2026, 2, 1)]] == [p.id for p in seen[date(2026, 1, 25)]]
    # the actions of those passes, as sessions of their own kind
    p25 = rep.passes[date(2026, 1, 25)]
    assert [a["action"] for a in p25.retention] == ["expire-flag", "delete-chain"]
    assert p25.kind == "retention" and p25.status == "Success"
    assert not any(a["action"] in ("merge", "gfs-full", "compact")
                   for p in rep.passes.values() for a in p.retention)
    spec = rep.spec
    kinds = {r["kind"] for r in History(history_path(spec)).sessions(spec.name, limit=500)}
    assert kinds == {"copy", "retention"}
    assert last_run(spec) == datetime(2026, 1, 19, 22, 0)  # passes are not runs
    meta = Repository(lab.dst).load("Paused", "vm1")
    assert meta.facts["last_run"].startswith("2026-01-19")  # GFS catch-up counts from it


def test_disabled_job_whose_source_is_gone_is_retained_by_the_daemon(work):
    """`enabled = false` and the source repository deleted: the daemon makes no run but
    its 00:30 pass still expires the flags; before 00:30 and a second time the same day
    it does nothing; `ferry retain` runs the pass by hand (exit 0, JSON kind)."""
    lab = Lab(work)
    path = lab.job("Off", keep=2, retention=GFS)
    rep = run_replay(lab, path, 16, start=JAN4)  # 01-04 .. 01-19
    assert _weekly(lab.chain("Off")) == [("2026-01-11", "full"), ("2026-01-18", "full")]
    jobs = work / "jobs"
    jobs.mkdir()
    text = path.read_text().replace('mode = "periodic"', 'mode = "periodic"\nenabled = false')
    (jobs / "off.toml").write_text(text)
    shutil.rmtree(lab.src)
    clock = [datetime(2026, 1, 25, 0, 20)]
    d = Daemon(jobs, poll=0.01, clock=lambda: clock[0])
    assert d.pass_once() == [] and len(lab.chain("Off")) == 3  # 01-11, 01-18 + an increment
    clock[0] = datetime(2026, 1, 25, 0, 40)
    assert d.pass_once() == []  # no copy run ...
    assert _weekly(lab.chain("Off")) == [("2026-01-18", "full")]  # ... but retention
    spec = load_job(jobs / "off.toml", need_source=False)
    passes = History(history_path(spec)).sessions("Off", kind="retention")
    assert len(passes) == 1 and passes[0]["started"] == "2026-01-25T00:40:00"
    log = (lab.dst / ".ferry" / "ferry.log").read_text()
    assert "Off/vm1: retention expire-flag" in log and "background retention" in log
    clock[0] = datetime(2026, 1, 25, 23, 0)
    assert d.pass_once() == [] and len(History(history_path(spec)).sessions(
        "Off", kind="retention")) == 1
    # a restarted daemon reads the last pass from the history
    assert Daemon(jobs, clock=lambda: clock[0]).background(jobs / "off.toml", spec) is None
    proc = ferry("retain", jobs / "off.toml", "--at", "2026-02-01T09:00", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["kind"] == "retention" and out["status"] == "Success"
    assert [a["action"] for a in out["retention"]] == ["expire-flag"]
    assert _weekly(lab.chain("Off")) == []
    assert rep.runs and last_run(spec) == datetime(2026, 1, 19, 22, 0)


def test_background_pass_never_merges_a_forever_forward_chain(work):
    """No GFS, keep 2 days: ten days without a run leave the chain as it was (merging is
    a run's transform); the next run merges."""
    lab = Lab(work)
    job = lab.job("Ff", keep=2, retention='unit = "days"\n')
    run_replay(lab, job, 5, start=JAN4)
    before = [(p.id, p.kind.value) for p in lab.chain("Ff")]
    spec = load_job(job)
    for i in range(10):
        res = retain_job(spec, at=datetime(2026, 1, 9 + i, 0, 30))
        assert res.status == "Success" and res.retention == []
    assert [(p.id, p.kind.value) for p in lab.chain("Ff")] == before


def test_a_running_job_or_a_busy_chain_is_left_for_later(work, monkeypatch):
    lab = Lab(work, machines=("vm1", "vm2"))
    path = lab.job("Busy", keep=2, retention=GFS)
    run_replay(lab, path, 16, start=JAN4)
    spec = load_job(path)
    with JobLock(spec.target.repository, spec.name), pytest.raises(RunError) as err:
        retain_job(spec, at=datetime(2026, 1, 25, 0, 30))
    assert err.value.exit_code == 3
    monkeypatch.setattr(bg, "LOCK_WAIT", 0.2)
    lock = ChainLock(Repository(lab.dst).machine_dir("Busy", "vm1"), exclusive=True)
    lock.acquire(timeout=0)
    try:
        res = retain_job(spec, at=datetime(2026, 1, 25, 0, 30))
    finally:
        lock.release()
    by = {tr.machine: tr for tr in res.tasks}
    assert by["vm1"].status == "Warning" and "chain busy" in by["vm1"].message
    assert by["vm2"].status == "Success" and res.status == "Warning"
    assert _weekly(lab.chain("Busy", "vm1")) == [("2026-01-11", "full"), ("2026-01-18", "full")]
    assert _weekly(lab.chain("Busy", "vm2")) == [("2026-01-18", "full")]
    assert retain_job(spec, at=datetime(2026, 1, 26, 0, 30)).status == "Success"
    assert _weekly(lab.chain("Busy", "vm1")) == [("2026-01-18", "full")]


def test_a_job_without_chains_gets_no_session_and_no_folder(work):
    lab = Lab(work)
    spec = load_job(lab.job("New", keep=2))
    res = retain_job(spec, at=datetime(2026, 1, 25, 0, 30))
    assert res.tasks == [] and res.status == "Success"
    assert not lab.dst.exists()


@pytest.mark.parametrize(("now", "last", "due"), [
    (datetime(2026, 1, 25, 0, 29), None, False),
    (datetime(2026, 1, 25, 0, 30), None, True),
    (datetime(2026, 1, 25, 9, 0), datetime(2026, 1, 24, 0, 30), True),
    (datetime(2026, 1, 25, 9, 0), datetime(2026, 1, 25, 0, 31), False),
    (datetime(2026, 1, 26, 0, 10), datetime(2026, 1, 25, 0, 31), False),
])
def test_pass_is_due_once_a_day_from_00_30(now, last, due):
    assert pass_due(now, last) is due


def test_old_history_gets_the_kind_column(tmp_path):
    import sqlite3

    db = tmp_path / "h.sqlite"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE sessions (id TEXT PRIMARY KEY, job TEXT NOT NULL, status TEXT "
                "NOT NULL, started TEXT NOT NULL, finished TEXT NOT NULL, duration_s REAL, "
                "processed INTEGER, read INTEGER, transferred INTEGER, written INTEGER, "
                "message TEXT, dry_run INTEGER DEFAULT 0)")
    con.execute("INSERT INTO sessions (id, job, status, started, finished) VALUES "
                "('a', 'J', 'Success', '2026-01-01T22:00:00', '2026-01-01T22:01:00')")
    con.commit()
    con.close()
    h = History(db)
    assert [r["kind"] for r in h.sessions("J")] == ["copy"]
    h.record({"id": "b", "job": "J", "status": "Success", "started": "2026-01-02T00:30:00",
              "finished": "2026-01-02T00:30:01", "kind": "retention"}, [])
    assert [r["id"] for r in h.sessions("J", kind="copy")] == ["a"]
    assert [r["id"] for r in h.sessions("J", kind="retention")] == ["b"]


def test_pass_through_a_remote_tcp_mover_finds_machines_from_the_history(work):
    """`[target] mover = "host:port"`: the pass cannot list the remote target, so it
    takes the machines of the job's history (the source is gone) and sends SWEEP over
    TCP to `ferry mover`, which expires the flag on its own repository."""
    import socket
    import subprocess
    import sys

    from copyjob.conftest import ROOT

    lab = Lab(work)
    remote = work / "remote"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mover = subprocess.Popen([sys.executable, "-m", "engine.cli", "mover", "--listen",
                              f"127.0.0.1:{port}", "--plain", "--repo", str(remote)],
                             cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert "listening" in mover.stdout.readline()
        path = lab.job("Far", keep=2, retention=GFS)
        path.write_text(path.read_text().replace(
            "[target]\n", f'[target]\nmover = "127.0.0.1:{port}"\n'))
        run_replay(lab, path, 16, start=JAN4)
        chain = lambda: Repository(remote).load("Far", "vm1").points  # noqa: E731
        assert _weekly(chain()) == [("2026-01-11", "full"), ("2026-01-18", "full")]
        shutil.rmtree(lab.src)
        spec = load_job(path, need_source=False)
        res = retain_job(spec, at=datetime(2026, 1, 25, 0, 30))
        assert res.status == "Success", res.to_json()
        assert [tr.machine for tr in res.tasks] == ["vm1"]
        assert [a["action"] for a in res.retention] == ["expire-flag", "delete-chain"]
        assert _weekly(chain()) == [("2026-01-18", "full")]
    finally:
        mover.terminate()
        mover.wait(timeout=10)


def test_preview_background_flag_shows_the_expiry_on_its_day(work):
    """`ferry preview --background`: with runs skipped after 01-19, the 01-11 weekly full
    goes on 01-25 (the pass); without the flag it stays until the next run."""
    lab = Lab(work)
    job = lab.job("Pv", keep=2, retention=GFS)
    args = ["preview", job, "--from", "2026-01-04T22:00", "--days", "24", "--used", "1GiB",
            "--skip", "2026-01-20..2026-01-27", "--json"]

    def weekly_on(out: dict, day: str) -> list[str]:
        d = next(d for d in out["days"] if d["date"] == day)
        return [p["time"][:10] for p in d["points"] if "W" in p["gfs"]]

    with_pass = json.loads(ferry(*args, "--background", check=True).stdout)
    without = json.loads(ferry(*args, check=True).stdout)
    assert weekly_on(with_pass, "2026-01-24") == ["2026-01-11", "2026-01-18"]
    assert weekly_on(with_pass, "2026-01-25") == ["2026-01-18"]
    assert weekly_on(without, "2026-01-25") == ["2026-01-11", "2026-01-18"]
