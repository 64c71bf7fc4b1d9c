"""`ferry run --json-progress`: a script follows a run line by line, restic style."""

from __future__ import annotations

import json

from .conftest import T0, ferry, write_job

JOBS = ["Daily", "Forever", "Reverse"]


def test_every_line_is_one_json_message_ending_with_the_summary(tmp_path, source):
    source.backup(T0)
    job = write_job(tmp_path / "j.toml", "J", source.repo, JOBS, tmp_path / "dr")
    proc = ferry("run", str(job), "--at", "2026-11-02T23:00", "--json-progress")
    assert proc.returncode == 0, proc.stderr
    messages = [json.loads(text) for text in proc.stdout.splitlines()]  # each line whole
    kinds = [m["message_type"] for m in messages]
    assert kinds[0] == "run_started" and kinds[-1] == "summary"
    assert kinds.count("summary") == 1 and kinds.count("run_finished") == 1
    machines = sorted(source.machines)
    finished = sorted(m["machine"] for m in messages if m["message_type"] == "task_finished")
    assert finished == machines
    progress = [m for m in messages if m["message_type"] == "task_progress"]
    assert progress and all(m["stats"]["processed"] <= m["total"] for m in progress)
    assert all(m["time"].endswith("Z") or m["time"][-6] in "+-" for m in messages[:-1])
    summary = messages[-1]
    assert summary["status"] == "Success" and summary["job"] == "J"
    assert sorted(t["machine"] for t in summary["tasks"]) == machines


def test_ctrl_c_stops_the_run_records_it_and_exits_130(tmp_path):
    """Ctrl-C is an operator stop: the task ends at its next block (not at the end of the
    copy), the session is in the history as Failed, the exit code is 130, and the next
    run copies the point (the partial file was kept for it)."""
    import signal
    import subprocess
    import sys
    import threading

    from .conftest import BS, ROOT, Source

    src = Source(tmp_path, methods=("forward",), size=64 * BS)
    src.backup(T0)
    job = write_job(tmp_path / "j.toml", "J", src.repo, ["Daily"], tmp_path / "dr",
                    extra='[transport]\nrate_limit = "1MiB/s"\n')  # 16 MiB: ~16 s
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "run", str(job),
                             "--json-progress"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            # SIGINT as a terminal delivers it (a background test session
                            # hands its children SIGINT ignored)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    guard = threading.Timer(120, proc.kill)
    guard.start()
    try:
        lines = []
        for text in proc.stdout:  # the signal goes once the copy streams (an event)
            lines.append(text)
            if '"task_progress"' in text:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        guard.cancel()
        proc.kill()
    assert proc.returncode == 130, err
    assert err.strip() == "ferry: interrupted"
    summary = json.loads(out.splitlines()[-1])
    assert summary["message_type"] == "summary" and summary["status"] == "Failed"
    assert summary["tasks"][0]["message"] == "interrupted (Ctrl-C)"
    history = json.loads(ferry("history", "--repo", tmp_path / "dr", "--json").stdout)
    assert [(s["status"], s["message"]) for s in history["sessions"]] == [
        ("Failed", "interrupted (Ctrl-C)")]
    job.write_text(job.read_text().replace('rate_limit = "1MiB/s"', 'rate_limit = "0"'))
    again = ferry("run", str(job), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["tasks"][0]["kind"] == "full"


def test_run_json_times_carry_their_utc_offset(tmp_path, source):
    from datetime import datetime

    source.backup(T0)
    job = write_job(tmp_path / "j.toml", "J", source.repo, JOBS, tmp_path / "dr")
    res = ferry("run", str(job), "--dry-run", "--json")
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith('{\n "job"')  # the one indentation style
    data = json.loads(res.stdout)
    times = [data["started"], data["finished"],
             *(p["time"] for t in data["tasks"] for p in t["plan"])]
    assert len(times) > 2 and all(datetime.fromisoformat(x).tzinfo is not None for x in times)


def test_a_usage_error_and_a_failed_run_are_told_apart(tmp_path, source):
    """Both exit 2 (CONTRACT); a usage error prints nothing on stdout and one `usage:` line,
    a Failed run its result (`--json`: the session, status Failed) and a `Failed:` line."""
    source.backup(T0)
    usage = ferry("run", "--json")
    assert usage.returncode == 2 and usage.stdout == ""
    assert usage.stderr.count("\n") == 1 and "ferry run: usage:" in usage.stderr
    job = write_job(tmp_path / "j.toml", "J", source.repo, ["Nope"], tmp_path / "dr")
    failed = ferry("run", str(job), "--json")
    assert failed.returncode == 2, failed.stderr
    assert json.loads(failed.stdout)["status"] == "Failed"
    assert "usage:" not in failed.stderr and "ferry run: J: Failed: " in failed.stderr
