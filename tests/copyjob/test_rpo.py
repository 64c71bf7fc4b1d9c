"""The RPO monitor: `[schedule] rpo`, `engine.rpo`, `ferry history`, the daemon's log."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

import pytest

from engine.copy.runner import run_job
from engine.daemon import Daemon
from engine.jobs import load as jobfile
from engine.jobs import save as jobsave
from engine.jobs.load import JobFileError, load_job
from engine.rpo import RpoWatch, check, check_job, human_age

from .conftest import T0, Source, ferry, write_job

JOB = ["Daily"]


def _job(tmp_path, source, rpo: str = '"26h"'):
    return write_job(tmp_path / "jobs" / "j.toml", "J", source.repo, JOB, tmp_path / "dr",
                     extra=f"[schedule]\ndaily_at = \"22:00\"\nrpo = {rpo}\n")


@pytest.fixture
def small(tmp_path) -> Source:
    (tmp_path / "jobs").mkdir()
    return Source(tmp_path, methods=("forward",))


def test_rpo_is_read_normalised_saved_and_bounded(tmp_path, small):
    spec = load_job(_job(tmp_path, small))
    assert spec.schedule.rpo == 26 * 3600
    data = jobsave.job_to_dict(spec)
    assert data["schedule"]["rpo"] == "1d2h"
    assert load_job(_job(tmp_path, small, '"off"')).schedule.rpo is None
    assert load_job(write_job(tmp_path / "jobs" / "n.toml", "N", small.repo, JOB,
                              tmp_path / "dr")).schedule.rpo is None
    for bad in ('"10s"', '"400d"', '"soon"', "true"):
        with pytest.raises(JobFileError) as err:
            load_job(_job(tmp_path, small, bad))
        assert "schedule.rpo" in str(err.value) and ":15:" in str(err.value), str(err.value)


def test_rpo_for_immediate_jobs_too(tmp_path, small):
    path = write_job(tmp_path / "jobs" / "i.toml", "I", small.repo, JOB, tmp_path / "dr",
                     mode="immediate", extra='[schedule]\nrpo = "2h"\n')
    assert jobfile.load_job(path).schedule.rpo == 7200


def test_check_names_late_machines_in_human_units():
    now = datetime(2026, 11, 3, 12, 0)
    verdict = check(26 * 3600, {"web01": now - timedelta(hours=30), "db01": now,
                                "new01": None}, now)
    assert [m.machine for m in verdict.late] == ["new01", "web01"]
    assert verdict.short == "late"
    assert verdict.summary == ("RPO 1d 2h missed: new01 has no copy yet, "
                               "web01 newest copy 1d 6h old")
    ok = check(26 * 3600, {"db01": now - timedelta(hours=25)}, now)
    assert ok.ok and ok.short == "ok" and ok.summary == "RPO 1d 2h met (oldest newest copy 1d 1h old)"
    assert check(None, {"x": None}, now).short == "off"
    assert human_age(59) == "59s" and human_age(3600) == "1h" and human_age(90061) == "1d 1h"


def test_check_job_reads_the_real_chains(tmp_path, small):
    small.backup(T0)
    spec = load_job(_job(tmp_path, small))
    before = check_job(spec, T0 + timedelta(hours=1))
    assert before.late and before.late[0].newest is None  # never copied: late
    assert run_job(spec, at=T0 + timedelta(minutes=5)).status == "Success"
    assert check_job(spec, T0 + timedelta(hours=25)).ok
    late = check_job(spec, T0 + timedelta(hours=27))
    assert [m.machine for m in late.late] == ["vm-forward"]
    assert late.late[0].newest == T0  # the point's time: the age of the data


def test_history_shows_the_rpo_warning(tmp_path, small):
    small.backup(T0 - timedelta(days=3))  # an old point: past any 26h RPO today
    spec = load_job(_job(tmp_path, small))
    assert run_job(spec, at=T0 - timedelta(days=3, minutes=-5)).status == "Success"
    proc = ferry("history", "--jobs", tmp_path / "jobs", "--json", check=True)
    data = json.loads(proc.stdout)
    assert [(r["job"], r["state"]) for r in data["rpo"]] == [("J", "late")]
    assert data["rpo"][0]["machines"][0]["late"] is True
    text = ferry("history", "--jobs", tmp_path / "jobs", check=True).stdout
    assert "Warning · J: RPO 1d 2h missed: vm-forward newest copy" in text


def test_daemon_logs_an_rpo_miss_once_and_its_end(tmp_path, small, caplog):
    small.backup(T0)
    spec = load_job(_job(tmp_path, small))
    assert run_job(spec, at=T0 + timedelta(minutes=5)).status == "Success"
    clock = {"now": T0 + timedelta(hours=30)}
    ran: list[str] = []

    def fake_run(spec, at=None, respect_window=True):  # the schedule is not under test
        ran.append(spec.name)
        raise RuntimeError("not now")

    daemon = Daemon(tmp_path / "jobs", clock=lambda: clock["now"], run=fake_run)
    with caplog.at_level(logging.INFO, logger="ferry.rpo"):
        daemon.watch_rpo(spec, clock["now"], every=0)
        daemon.watch_rpo(spec, clock["now"], every=0)  # still late: no second line
        small.backup(T0 + timedelta(hours=29))
        assert run_job(spec, at=T0 + timedelta(hours=29, minutes=5)).status == "Success"
        daemon.watch_rpo(spec, clock["now"], every=0)
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "ferry.rpo"]
    assert lines == [("WARNING", "J: RPO 1d 2h missed: vm-forward newest copy 1d 6h old"),
                     ("INFO", "J: RPO 1d 2h met (oldest newest copy 1h old)")]


def test_watch_is_quiet_while_all_is_well():
    watch = RpoWatch()
    now = datetime(2026, 11, 3)
    assert watch.observe("J", check(3600, {"a": now}, now)) is None
    assert watch.observe("J", check(None, {"a": None}, now)) is None


def test_sessions_shows_the_rpo_warning_with_nothing_running(tmp_path, small):
    small.backup(T0 - timedelta(days=3))
    spec = load_job(_job(tmp_path, small))
    assert run_job(spec, at=T0 - timedelta(days=3, minutes=-5), live=False).status == "Success"
    data = json.loads(ferry("sessions", "--jobs", tmp_path / "jobs", "--json", check=True).stdout)
    assert data["sessions"] == [] and [(r["job"], r["state"]) for r in data["rpo"]] == [
        ("J", "late")]
    text = ferry("sessions", "--jobs", tmp_path / "jobs", check=True).stdout
    assert "Warning · J: RPO 1d 2h missed: vm-forward newest copy" in text
    assert "no sessions running" in text
