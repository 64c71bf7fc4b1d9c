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
