"""Each session's timestamped log is kept in its history (the console's session detail)."""

from __future__ import annotations

from datetime import datetime, timedelta

from engine import events as ev
from engine import session_log
from engine.copy.runner import run_job
from engine.history import History, history_path
from engine.jobs.load import load_job
from engine.model import Stats

from .conftest import T0, Source, write_job


def test_a_run_keeps_its_log_with_the_run_clock(tmp_path):
    src = Source(tmp_path, methods=("forward", "reverse"))
    src.backup(T0)
    spec = load_job(write_job(tmp_path / "j.toml", "L", src.repo, ["Daily", "Reverse"],
                              tmp_path / "dr"))
    res = run_job(spec, at=T0 + timedelta(minutes=5))
    log = History(history_path(spec)).log(res.session)
    texts = [r["text"] for r in log]
    assert texts[0] == f"session {res.session} started: 2 machines"
    assert texts[-1].startswith("session ended Success after ")
    for m in ("vm-forward", "vm-reverse"):
        assert f"{m}: copying full" in " ".join(texts)
        assert any(t.startswith(f"{m}: Success · full · took ") for t in texts)
    assert all(r["level"] == "info" for r in log)
    times = [datetime.fromisoformat(r["time"]) for r in log]
    assert times == sorted(times) and T0 + timedelta(minutes=5) <= times[0] < times[-1] + \
        timedelta(seconds=1) and times[-1] - times[0] < timedelta(minutes=5)  # the run's clock

    again = run_job(spec, at=T0 + timedelta(minutes=10))  # nothing new: said once per machine
    texts = [r["text"] for r in History(history_path(spec)).log(again.session)]
    for m in ("vm-forward", "vm-reverse"):
        assert sum(t.startswith(f"{m}:") for t in texts) == 1, texts
        assert f"{m}: up to date" in texts
    assert not any("none" in t for t in texts)


def test_the_log_is_bounded(monkeypatch):
    monkeypatch.setattr(session_log, "MAX_LINES", 5)
    log = session_log.SessionLog(lambda: T0)
    for i in range(20):
        log.add(ev.LogLine("J", "info", f"line {i} " + "x" * 2000))
    log.add(ev.TaskProgress("J", "m", Stats(), 1, 0.0))  # progress is never kept
    rows = log.rows(ev.RunFinished("J", "s", "Success", 1.0))
    assert len(rows) == 6
    assert all(len(r["text"]) <= session_log.MAX_TEXT for r in rows)
    assert rows[-2]["text"] == "16 more log lines were not kept"
    assert rows[-1]["text"] == "session ended Success after 1.0s"
