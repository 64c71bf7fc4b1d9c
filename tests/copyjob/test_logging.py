"""What an admin reads after the fact: the daemon logs every session and error to
stderr, and every run appends its job's lines to `<target>/.ferry/ferry.log`."""

from __future__ import annotations

import re

from engine.logs import FILE_NAME

from .conftest import T0, ferry, write_job

JOBS = ["Daily", "Forever", "Reverse"]


def test_daemon_logs_sessions_and_errors_and_runs_keep_a_log_file(tmp_path, source):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    source.backup(T0)
    write_job(jobs / "a.toml", "A", source.repo, JOBS, tmp_path / "dr")
    write_job(jobs / "b.toml", "B", source.repo, ["Daily", "Gone"], tmp_path / "dr")
    (jobs / "broken.toml").write_text("name = [")
    proc = ferry("daemon", "--jobs", str(jobs), "--once")
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr.splitlines()
    assert any("daemon started" in line for line in err)
    assert any("broken.toml" in line and "ERROR" in line for line in err)
    assert any("A: due, starting a session" in line for line in err)
    assert any("A: Success" in line for line in err)
    assert any("B: Warning" in line for line in err), err  # a source job that is missing
    log = (tmp_path / "dr" / ".ferry" / FILE_NAME).read_text()
    lines = log.splitlines()
    assert sum("session" in line and "started" in line for line in lines) == 2
    assert sum("ended Success" in line for line in lines) == 1
    assert sum("ended Warning" in line for line in lines) == 1
    stamp = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (INFO|WARNING|ERROR) ferry\.")
    assert all(stamp.match(line) for line in lines), lines  # RFC 3339 UTC, level, area
    assert "B: session" in log and "A: session" in log


def test_run_log_has_every_machine_and_stays_off_the_terminal(tmp_path, source):
    source.backup(T0)
    job = write_job(tmp_path / "j.toml", "J", source.repo, JOBS, tmp_path / "dr")
    proc = ferry("run", str(job), "--at", "2026-11-02T23:00")
    assert proc.returncode == 0, proc.stderr
    assert "ferry.run" not in proc.stderr + proc.stdout  # commands print their own lines
    log = (tmp_path / "dr" / ".ferry" / FILE_NAME).read_text()
    machines = sorted(source.machines)
    assert [m for m in machines if f"J/{m}: Success" in log] == machines
    assert log.count("ended Success") == 1


def test_the_log_file_rotates_before_it_passes_its_cap(tmp_path, monkeypatch):
    """ferry.log moves to .1, .1 to .2 ... (at most BACKUPS kept) before a line would take
    it past MAX_BYTES; every line lands in exactly one file."""
    from engine import logs

    monkeypatch.setattr(logs, "MAX_BYTES", 2000)
    log = logs.job_logger("test")
    with logs.run_log(tmp_path, "J"):
        for i in range(200):
            log.info("line %03d %s", i, "x" * 40, extra={"job": "J"})
    folder = tmp_path / ".ferry"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [FILE_NAME] + [f"{FILE_NAME}.{i}" for i in range(1, logs.BACKUPS + 1)]
    sizes = [(folder / n).stat().st_size for n in names]
    assert all(0 < s <= 2000 for s in sizes), sizes
    newest_first = [(folder / n).read_text().splitlines() for n in names]
    numbers = [int(line.split("line ")[1][:3]) for f in reversed(newest_first) for line in f]
    assert numbers == list(range(200 - len(numbers), 200))  # in order, the oldest dropped
