"""The live-run state (no Textual): coalescing buffer, model, ETA, bottleneck, job states."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from console_fixtures import JOB, MACHINES, FixtureSpec, run_ticks

from console import format as fmt
from console.records import JobEntry
from console.run_model import DONE, ON_HOLD, QUEUED, RUNNING, EventBuffer, RunModel
from console.run_session import RunSession
from console.store import job_state
from engine import events as ev
from engine.copy.control import RunControl
from engine.model import Stats, Status


def progress(machine: str, processed: int, total: int = 1000) -> ev.TaskProgress:
    return ev.TaskProgress(JOB, machine, Stats(processed=processed, read=processed // 2,
                                               transferred=processed // 4), total, rate=100.0,
                           bottleneck={"Source": 0.5, "Target": 0.9})


def test_buffer_coalesces_progress_per_machine_and_keeps_order() -> None:
    buf = EventBuffer()
    buf.push(ev.TaskStarted(JOB, "a", "full", 1000))
    for p in range(1, 100):
        buf.push(progress("a", p))
        buf.push(progress("b", p))
    buf.push(ev.TaskFinished(JOB, "a", "Success", Stats(processed=1000)))
    buf.push(progress("a", 5))  # late progress after finish: after it in order
    out = buf.drain()
    kinds = [(type(e).__name__, getattr(e, "machine", "")) for e in out]
    assert kinds == [("TaskStarted", "a"), ("TaskProgress", "a"), ("TaskProgress", "b"),
                     ("TaskFinished", "a"), ("TaskProgress", "a")]
    assert out[1].stats.processed == 99 and out[2].stats.processed == 99
    assert buf.drain() == []
    assert buf.received == 201


def test_buffer_is_thread_safe() -> None:
    buf = EventBuffer()

    def producer(name: str) -> None:
        for i in range(2000):
            buf.push(progress(name, i))

    threads = [threading.Thread(target=producer, args=(f"m{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    drained = []
    while any(t.is_alive() for t in threads):
        drained.extend(buf.drain())
    for t in threads:
        t.join()
    drained.extend(buf.drain())
    last = {e.machine: e.stats.processed for e in drained}
    assert last == {f"m{i}": 1999 for i in range(8)}


def test_model_follows_a_run() -> None:
    model = RunModel(JOB)
    for t, tick in enumerate(run_ticks(), start=0):
        model.apply_all(tick, float(t))
        model.sample(float(t))
    rows = model.rows
    assert list(rows) == MACHINES
    assert rows["web02"].state == ON_HOLD and rows["web02"].hold_by == "source lock"
    assert rows["app02"].state == DONE and rows["app02"].status == Status.SUCCESS
    assert rows["db01"].state == RUNNING and rows["mail01"].state == QUEUED
    assert model.counts() == {QUEUED: 2, RUNNING: 4, ON_HOLD: 1, DONE: 1}
    assert model.read_samples and model.transferred_samples
    assert all(r >= x for r, x in zip(model.read_samples, model.transferred_samples,
                                      strict=True))
    eta = rows["db01"].eta_s
    assert eta is not None and eta > 0
    line = fmt.bottleneck_line(model.bottleneck())
    assert line.startswith("Source ") and " > Target " in line
    log = model.take_log()
    assert any("on hold (source lock)" in text for text in log)
    assert model.take_log() == []


def test_totals_are_incremental_and_exact() -> None:
    model = RunModel(JOB)
    model.apply(ev.TaskStarted(JOB, "a", "full", 1000), 0)
    model.apply(progress("a", 400), 0)
    model.apply(progress("a", 600), 1)
    model.apply(ev.TaskFinished(JOB, "a", "Success", Stats(processed=1000, read=500,
                                                              transferred=250)), 2)
    assert (model.processed_total, model.read_total, model.transferred_total) == (1000, 500, 250)
    assert model.fraction() == 1.0
    model.apply(progress("a", 10), 3)  # stale progress after the finish is ignored
    assert model.rows["a"].state == DONE and model.processed_total == 1000


def test_job_state_words() -> None:
    spec = FixtureSpec(JOB, Path("/jobs/dr.toml"))
    assert job_state(JobEntry(spec.path, spec), None).label == "Idle"
    spec = replace(spec, enabled=False)
    entry = JobEntry(spec.path, spec)
    assert job_state(entry, None).label == "Disabled"
    assert job_state(JobEntry(spec.path, None, "bad"), None).label == "Invalid"
    control = RunControl()
    session = RunSession("k", spec, control)
    for t, tick in enumerate(run_ticks(2)):
        session.model.apply_all(tick, float(t))
    assert job_state(entry, session).label == "Running"
    control.hold("operator")
    assert job_state(entry, session).label == "On hold (by operator)"
    control.resume()
    for name in MACHINES:
        session.model.apply(ev.TaskOnHold(JOB, name, "locked", by="source lock"), 3.0)
    assert job_state(entry, session).label == "On hold (by source lock)"
    session.model.apply(ev.TaskResumed(JOB, "db01"), 4.0)
    assert job_state(entry, session).label == "Running (7 on hold)"
    session.model.apply(ev.RunFinished(JOB, "s", "Success", 5.0), 5.0)
    assert job_state(entry, session).label == "Disabled"


def test_formatting() -> None:
    assert fmt.size(1536) == "1.5 KiB"
    assert fmt.duration(3725) == "1h02m"
    assert fmt.bar(0.5, 4) == "██░░"
    assert fmt.bottleneck_line({"Target": 0.8, "Source": 0.45, "Stream": 0.1,
                                "Compress": 0.2}) == \
        "Source 45% > Compress 20% > Stream 10% > Target 80%"
    assert fmt.bottleneck_of({"Target": 0.8, "Source": 0.45}) == "Target"


def test_header_share_never_goes_backwards_and_eta_comes_from_bytes_left() -> None:
    model = RunModel(JOB)
    model.apply(ev.RunStarted(JOB, "s1", ["a", "b"]), 0.0)
    model.apply(ev.TaskStarted(JOB, "a", "full", 100), 0.0)
    model.apply(ev.TaskProgress(JOB, "a", Stats(processed=80, read=40), 100, rate=10.0,
                                to_read=60, disks={"disk0": 0.8}), 1.0)
    before = model.fraction()
    assert before == 0.4  # a at 80 %, b queued at 0
    row = model.rows["a"]
    assert row.eta_s == 2.0  # (60 - 40) bytes left to read at 10 B/s
    assert row.disks == {"disk0": 0.8}
    model.apply(ev.TaskStarted(JOB, "b", "full", 10_000), 2.0)  # a large total arrives
    assert model.fraction() >= before
    model.apply(ev.TaskFinished(JOB, "a", "Failed", Stats(processed=80)), 3.0)
    model.apply(ev.TaskProgress(JOB, "b", Stats(processed=5_000, read=5_000), 10_000,
                                rate=1.0, to_read=10_000), 3.0)
    assert model.fraction() == 0.75  # a finished (even Failed, it is done), b half
