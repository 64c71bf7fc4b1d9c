"""The copy window, `ferry daemon`, and operator control of a run."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from engine import events as ev
from engine.copy.control import RunControl
from engine.copy.runner import run_job
from engine.daemon import Daemon
from engine.jobs.load import load_job
from engine.repository.repository import Repository

from .conftest import T0, ferry, write_job

JOBS = ["Daily", "Forever", "Reverse"]


def test_outside_the_copy_window_nothing_is_copied(tmp_path, source):
    source.backup(T0)
    job = write_job(tmp_path / "j.toml", "J", source.repo, JOBS, tmp_path / "dr",
                    extra='[schedule]\ndaily_at = "22:00"\nwindow = ["20:00-06:00"]\n')
    proc = ferry("run", job, "--json", "--at", "2026-11-02T12:00")
    assert proc.returncode == 1  # Warning
    assert "copy window" in proc.stdout
    assert not Repository(tmp_path / "dr").machines("J")
    inside = ferry("run", job, "--at", "2026-11-02T23:00")
    assert inside.returncode == 0, inside.stderr
    assert len(Repository(tmp_path / "dr").machines("J")) == 3


def test_daemon_runs_due_jobs_once_and_respects_schedule(tmp_path, source):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    source.backup(T0)
    write_job(jobs / "a.toml", "A", source.repo, JOBS, tmp_path / "dr")
    write_job(jobs / "off.toml", "Off", source.repo, JOBS, tmp_path / "dr",
              extra="").write_text((jobs / "off.toml").read_text().replace(
                  'mode = "periodic"', 'mode = "periodic"\nenabled = false'))
    (jobs / "broken.toml").write_text("name = [")
    clock = [T0 + timedelta(hours=1)]
    d = Daemon(jobs, poll=0.01, clock=lambda: clock[0])
    assert d.pass_once() == [("A", "Success")]  # never ran -> due; disabled skipped
    assert d.pass_once() == []  # ran just now: next run is tomorrow 22:00
    assert len(Repository(tmp_path / "dr").machines("A")) == 3
    assert not Repository(tmp_path / "dr").machines("Off")


def test_daemon_immediate_job_runs_when_a_new_point_appears(tmp_path, source):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    source.backup(T0)
    write_job(jobs / "i.toml", "I", source.repo, JOBS, tmp_path / "dr", mode="immediate")
    d = Daemon(jobs, poll=0.01)
    assert d.pass_once() == [("I", "Success")]
    assert d.pass_once() == []  # nothing new
    source.backup(T0 + timedelta(days=1))
    assert d.pass_once() == [("I", "Success")]
    for m in source.machines:
        assert len(Repository(tmp_path / "dr").load("I", m).points) == 2


def test_operator_hold_resume_and_stop(tmp_path):
    from .conftest import BS, Source

    src = Source(tmp_path, methods=("forward", "reverse"), size=96 * BS)
    src.backup(T0)
    job = load_job(write_job(tmp_path / "j.toml", "H", src.repo, ["Daily", "Reverse"],
                             tmp_path / "dr", extra='[transport]\nrate_limit = "8MiB/s"\n'))
    control = RunControl()
    seen: list[ev.Event] = []
    out = {}
    th = threading.Thread(target=lambda: out.setdefault(
        "res", run_job(job, at=T0, sink=seen.append, control=control)))
    th.start()
    while not any(isinstance(e, ev.TaskProgress) for e in seen):
        time.sleep(0.02)
    control.hold()
    time.sleep(0.2)
    n = sum(isinstance(e, ev.TaskProgress) for e in seen)
    time.sleep(0.6)
    assert sum(isinstance(e, ev.TaskProgress) for e in seen) <= n + 2  # paused
    control.resume()
    th.join(timeout=60)
    res = out["res"]
    assert res.status == "Success"
    held = [e for e in seen if isinstance(e, ev.TaskOnHold)]
    assert held and all(e.by == "operator" for e in held)
    assert {e.machine for e in seen if isinstance(e, ev.TaskResumed)} == {e.machine for e in held}
    assert all(t.held_s >= 0.5 for t in res.tasks)
    # stop: the next session ends Failed with the operator's reason, nothing half visible
    src.backup(T0 + timedelta(days=1), mutate=40)
    control = RunControl()
    started = threading.Event()  # stop once blocks flow (an event, not a guess of time)

    def sink(e: ev.Event) -> None:
        if isinstance(e, ev.TaskProgress):
            started.set()

    th = threading.Thread(target=lambda: out.__setitem__(
        "res2", run_job(job, at=T0 + timedelta(days=1), control=control, sink=sink)))
    th.start()
    assert started.wait(60), "no task of the second session started"
    control.stop()
    th.join(timeout=60)
    assert out["res2"].status == "Failed"
    assert "stopped by operator" in out["res2"].tasks[0].message
    for m in src.machines:
        assert len(Repository(tmp_path / "dr").load("H", m).points) == 1


def test_operator_run_now_outside_the_window_copies_and_says_so(tmp_path, source):
    from datetime import datetime

    source.backup(T0)
    away = (datetime.now().hour + 12) % 24  # a window that is certainly closed now
    job = load_job(write_job(tmp_path / "j.toml", "J", source.repo, JOBS, tmp_path / "dr",
                             extra=f'[schedule]\nwindow = ["{away:02d}:00-{away:02d}:30"]\n'))
    seen: list[ev.Event] = []
    res = run_job(job, sink=seen.append)  # wall clock, started by the operator
    assert res.status == "Success" and {t.kind for t in res.tasks} == {"full"}
    assert any(isinstance(e, ev.LogLine) and "outside the copy window" in e.text for e in seen)
    source.backup(T0 + timedelta(days=1))
    scheduled = run_job(job, respect_window=True)  # what the daemon does: no transfer now
    assert scheduled.status == "Warning" and {t.kind for t in scheduled.tasks} == {"none"}
    assert all("copy window" in t.message for t in scheduled.tasks)


def _wait_for(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_operator_holds_and_stops_one_machine(tmp_path):
    """`hold/resume/stop(machine=...)`: that machine pauses or ends Failed, the others go
    on; a machine stopped is not retried (no retry_wait) and one stopped while queued
    never starts."""
    from .conftest import BS, Source

    src = Source(tmp_path, methods=("forward", "reverse"), size=96 * BS)
    src.backup(T0)
    job = load_job(write_job(tmp_path / "j.toml", "H", src.repo, ["Daily", "Reverse"],
                             tmp_path / "dr", extra='[transport]\nrate_limit = "8MiB/s"\n'
                                                    'parallel_tasks = 2\n'))
    control = RunControl()
    seen: list[ev.Event] = []
    out: dict = {}
    th = threading.Thread(target=lambda: out.setdefault(
        "res", run_job(job, at=T0, sink=seen.append, control=control)))
    th.start()

    def progress(m: str) -> int:
        return sum(isinstance(e, ev.TaskProgress) and e.machine == m for e in list(seen))

    _wait_for(lambda: progress("vm-forward") > 0, "progress")
    control.hold(machine="vm-forward")
    assert control.is_held("vm-forward") and not control.held
    _wait_for(lambda: any(isinstance(e, ev.TaskOnHold) and e.machine == "vm-forward"
                          for e in list(seen)), "the hold to land")
    n = progress("vm-forward")
    _wait_for(lambda: any(isinstance(e, ev.TaskFinished) and e.machine == "vm-reverse"
                          for e in list(seen)), "the other machine to finish")
    assert progress("vm-forward") <= n + 1  # paused while the other one finished
    control.resume(machine="vm-forward")
    th.join(timeout=60)
    res = out["res"]
    assert res.status == "Success" and [t.status for t in res.tasks] == ["Success"] * 2
    assert {e.machine for e in seen if isinstance(e, ev.TaskResumed)} == {"vm-forward"}

    src.backup(T0 + timedelta(days=1), mutate=40)
    control, seen = RunControl(), []
    th = threading.Thread(target=lambda: out.__setitem__(
        "res2", run_job(job, at=T0 + timedelta(days=1), sink=seen.append, control=control)))
    th.start()
    _wait_for(lambda: progress("vm-reverse") > 0, "progress")
    control.stop(machine="vm-reverse")
    th.join(timeout=60)  # retries = 3, retry_wait = 10m: a retry would not end in time
    assert not th.is_alive()
    by = {t.machine: t for t in out["res2"].tasks}
    assert by["vm-reverse"].status == "Failed" and by["vm-reverse"].attempts == 1
    assert "stopped by operator" in by["vm-reverse"].message
    assert by["vm-forward"].status == "Success"

    control = RunControl()
    control.stop(machine="vm-reverse")  # stopped before it was ever started
    res3 = run_job(job, at=T0 + timedelta(days=1, hours=1), control=control)
    by = {t.machine: t for t in res3.tasks}
    assert by["vm-reverse"].status == "Failed" and by["vm-reverse"].stats.processed == 0
    assert by["vm-forward"].status == "Success"
