"""Live sessions: a `ferry run` seen and steered from other processes (real CLI, real sockets)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.history import History

from .conftest import ROOT, ferry, write_job

SLOW = '[transport]\nrate_limit = "384KiB/s"\nretries = 0\n'


def start_run(job: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(job), *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def sessions(jobs: Path) -> list[dict]:
    """What `ferry sessions --json` prints, read in-process (the same code, no start-up)."""
    from engine.jobs.load import discover_jobs
    from engine.live import paths
    from engine.live.client import list_sessions

    specs = [s for _, s in discover_jobs(jobs) if not isinstance(s, Exception)]
    return [i.to_json() for i in list_sessions(paths.search_dirs(jobs, specs))]


def cli(*args: object) -> tuple[int, str, str]:
    """The real `ferry` command line, in this process (no interpreter start-up per call)."""
    import contextlib
    import io

    from engine.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def cli_sessions(jobs: Path) -> list[dict]:
    proc = ferry("sessions", "--jobs", jobs, "--json", check=True)
    return json.loads(proc.stdout)["sessions"]


def wait_for(pred, what: str, limit: float = 30.0):
    """Poll `pred` (bounded in time); its first truthy value."""
    t0 = time.monotonic()
    end = t0 + limit
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def running_session(jobs: Path, run: subprocess.Popen, state: str = "running") -> dict:
    def find():
        assert run.poll() is None, run.communicate()
        found = [s for s in sessions(jobs) if s["state"] == state]
        if found and any(m["state"] == "running" for m in found[0]["machines"]):
            return found[0]
        return None
    return wait_for(find, "a running session")


def make_job(tmp_path: Path, source, extra: str = SLOW) -> tuple[Path, Path]:
    source.backup(source_time())
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    job = write_job(jobs / "dr.toml", "DR copy", source.repo, ["Daily", "Forever", "Reverse"],
                    tmp_path / "dr", extra=extra)
    return jobs, job


def source_time():
    from .conftest import T0

    return T0


def test_sessions_lists_a_cli_run_and_hold_resume_stop_act_on_it(tmp_path, source):
    jobs, job = make_job(tmp_path, source)
    assert cli("sessions", "--jobs", jobs)[1].strip() == "no sessions running"
    run = start_run(job, "--json")
    try:
        running_session(jobs, run)
        s = cli_sessions(jobs)[0]
        assert s["job"] == "DR copy" and s["started_by"] == "cli" and s["pid"] == run.pid
        assert sorted(m["machine"] for m in s["machines"]) == [
            "vm-forever-forward", "vm-forward", "vm-reverse"]
        machine = next(m["machine"] for m in s["machines"] if m["state"] == "running")
        # one machine on hold by name of the job, the others go on
        code, _, err = cli("hold", "DR copy", "--jobs", jobs, "--machine", machine)
        assert code == 0, err
        wait_for(lambda: any(m["machine"] == machine and m["state"] == "on hold"
                             and m["held_by"] == "operator" for m in sessions(jobs)[0]["machines"]),
                 "the machine on hold")
        before = next(m["read"] for m in sessions(jobs)[0]["machines"] if m["machine"] == machine)
        # resume by the job's file this time
        assert cli("resume", job, "--machine", machine)[0] == 0
        wait_for(lambda: any(m["machine"] == machine and m["state"] != "on hold"
                             for m in sessions(jobs)[0]["machines"]), "the machine resumed")
        wait_for(lambda: any(m["machine"] == machine and m["read"] > before
                             for m in sessions(jobs)[0]["machines"]), "the copy going on")
        # the whole job on hold, then stopped
        assert cli("hold", job)[0] == 0
        assert wait_for(lambda: sessions(jobs)[0]["held_by"] == "operator", "job on hold")
        text = cli("sessions", "--jobs", jobs)[1]
        assert "DR copy" in text and "on hold by operator" in text
        code, _, err = cli("stop", "DR copy", "--jobs", jobs)
        assert code == 0, err
        out, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 2, err
    result = json.loads(out)
    assert result["status"] == "Failed" and "stopped by operator" in result["message"]
    assert any("stopped by operator" in t["message"] for t in result["tasks"])
    row = History(tmp_path / "dr" / ".ferry" / "history.sqlite").sessions("DR copy")[0]
    assert "stopped by operator" in row["message"]
    assert sessions(jobs) == []  # the state folder went with the run
    log = tmp_path / "dr" / ".ferry" / "logs" / f"{result['session']}.jsonl"
    kinds = [json.loads(line)["type"] for line in log.read_text().splitlines()]
    assert "OperatorAction" in kinds and kinds[-1] == "RunFinished"


def test_nothing_running_is_one_line_and_exit_2(tmp_path, source):
    jobs, job = make_job(tmp_path, source)
    proc = ferry("hold", "DR copy", "--jobs", jobs)  # the installed entry point once
    assert proc.returncode == 2
    assert proc.stderr.strip() == "ferry hold: nothing of job 'DR copy' is running"
    for verb in ("resume", "stop"):
        code, _, err = cli(verb, job)
        assert code == 2 and err.strip() == f"ferry {verb}: nothing of job 'DR copy' is running"
    code, _, err = cli("stop", tmp_path / "missing.toml")
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_a_killed_run_is_interrupted_and_the_next_run_records_it(tmp_path, source):
    jobs, job = make_job(tmp_path, source)
    run = start_run(job)
    try:
        s = running_session(jobs, run)
    finally:
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
    listed = cli_sessions(jobs)
    assert [x["state"] for x in listed] == ["interrupted"] and listed[0]["session"] == s["session"]
    assert cli("stop", "DR copy", "--jobs", jobs)[0] == 2  # nothing *runs*
    job.write_text(job.read_text().replace('rate_limit = "384KiB/s"', 'rate_limit = "0"'))
    code, _, err = cli("run", job, "--json")
    assert code == 0, err
    assert sessions(jobs) == []
    rows = History(tmp_path / "dr" / ".ferry" / "history.sqlite").sessions("DR copy")
    interrupted = next(r for r in rows if r["id"] == s["session"])
    assert interrupted["status"] == "Failed" and interrupted["message"].startswith("interrupted")


def test_hangup_lets_go_of_the_terminal_and_the_run_finishes(tmp_path, source):
    jobs, job = make_job(tmp_path, source, extra='[transport]\nrate_limit = "4MiB/s"\n')
    run = start_run(job, "--json")
    try:
        running_session(jobs, run)
        os.kill(run.pid, signal.SIGHUP)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0
    row = History(tmp_path / "dr" / ".ferry" / "history.sqlite").sessions("DR copy")[0]
    assert row["status"] == "Success" and "terminal hung up at" in row["message"]

