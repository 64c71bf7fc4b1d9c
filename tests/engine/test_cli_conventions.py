"""The command-line conventions admins know from restic, borg and kopia (issue 15)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import pytest
from enginekit import BS, JOB, MACHINE, day, ferry_cmd, ferry_env

from engine.units import parse_duration, parse_rate, parse_size


def test_version(ferry):
    res = ferry("--version")
    assert res.returncode == 0
    assert res.stdout.startswith("ferry ") and res.stdout.split()[1][0].isdigit()


def test_help_lists_console_and_serve_and_shows_defaults(ferry):
    top = ferry("--help").stdout
    for command in ("console", "serve", "backup", "run", "history"):
        assert f"\n    {command}" in top, command
    backup = ferry("backup", "--help").stdout
    assert "{forward,forever-forward,reverse}" in backup
    assert "{none,dedupe-friendly,optimal,high,extreme}" in backup
    assert "(default: 14)" in backup and "(default: optimal)" in backup
    assert "(default: None)" not in backup and "(default: False)" not in backup


def test_usage_error_is_one_line_and_named(ferry):
    res = ferry("backup", "--repo", "x")
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert "usage:" in res.stderr and "--job" in res.stderr


def test_history_of_a_missing_folder_is_an_error(ferry, tmp_path):
    for option in ("--jobs", "--repo"):
        res = ferry("history", option, tmp_path / "nonexistent")
        assert res.returncode == 2, option
        assert "not found" in res.stderr and res.stdout == ""


def _interrupt_daemon(jobs, delay: float) -> tuple[int | None, str]:
    """Start `ferry daemon`, wait for its start line, Ctrl-C it `delay` s later."""
    # SIGINT as a terminal delivers it: a test session started in the background (`&`,
    # nohup) hands its children SIGINT ignored, and Python then installs no handler
    proc = subprocess.Popen(ferry_cmd("daemon", "--jobs", jobs, "--poll", "1h"), env=ferry_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    guard = threading.Timer(60, proc.kill)  # bounded: a daemon that never logs is killed
    guard.start()
    try:
        seen = []
        for line in proc.stderr:  # wait for its start line (an event, not a sleep)
            seen.append(line)
            if "daemon started" in line:
                break
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        return proc.returncode, "".join(seen) + err
    finally:
        guard.cancel()
        proc.kill()


def test_ctrl_c_exits_130(tmp_path):
    """Ctrl-C at 12 moments of the daemon's first pass, each while it is importing and
    building its job schema: always 130 (CPython 3.11 ended some of them by SIGINT,
    -2, when the interrupt passed through a dataclass's exec; 16 of 60 here)."""
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    for n in range(12):
        code, err = _interrupt_daemon(jobs, n * 0.003)
        assert code == 130, (n, err)
        assert "interrupted" in err


def test_ferry_repo_environment_default(ferry, tmp_path, make_machine):
    repo = tmp_path / "repo"
    m = make_machine(3)
    m.add_disk("sda", size=2 * BS + 1)
    m.backup(repo, day(0))
    env = {**ferry_env(), "FERRY_REPO": str(repo)}
    res = subprocess.run(ferry_cmd("chain", "--json"), env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    chains = json.loads(res.stdout)["chains"]
    assert [(c["job"], c["machine"], len(c["points"])) for c in chains] == [(JOB, MACHINE, 1)]


def test_ferry_jobs_environment_default(tmp_path):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    for command in (["daemon", "--once"], ["history"], ["sessions"]):
        missing = {**ferry_env(), "FERRY_JOBS": str(tmp_path / "nowhere")}
        res = subprocess.run(ferry_cmd(*command), env=missing, capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 2, (command, res.stderr)
        assert f"jobs folder not found: {tmp_path / 'nowhere'}" in res.stderr, command
        res = subprocess.run(ferry_cmd(*command), env={**ferry_env(), "FERRY_JOBS": str(jobs)},
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, (command, res.stderr)


def test_backup_keeps_the_chains_block_size(ferry, tmp_path, make_machine):
    repo = tmp_path / "repo"
    m = make_machine(4)
    m.add_disk("sda", size=5 * BS + 3)
    m.backup(repo, day(0))  # 256 KiB chain (the kit's block size)
    m.mutate("rewrite", "sda")
    args = ["backup", "--repo", repo, "--job", JOB, "--machine", MACHINE, "--disk", m.path("sda"),
            "--at", day(1).isoformat(), "--json"]
    res = ferry(*args)
    assert res.returncode == 0, res.stderr
    meta = json.loads(ferry("chain", "--repo", repo, "--json").stdout)["chains"][0]
    assert meta["block_size"] == BS and [p["kind"] for p in meta["points"]] == [
        "full", "incremental"]


@pytest.mark.parametrize(("text", "seconds"), [
    ("10min", 600), ("1h30m", 5400), ("2 hours", 7200), ("90sec", 90), ("1d12h", 129600),
    ("3 days", 259200), ("1w", 604800), ("250ms", 0.25),
])
def test_durations_people_write(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["10 minutes ago", "1mo", "h", "1h 30", "ten min"])
def test_durations_refused(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "rate"), [
    ("100Mbit/s", 12_500_000), ("1Gbit/s", 125_000_000), ("512kbit/s", 64_000),
    ("50MiB/s", 50 << 20), ("0", 0),
])
def test_rates_in_bits_and_bytes(text, rate):
    assert parse_rate(text) == rate


def test_sizes_accept_pib():
    assert parse_size("2PiB") == 2 << 50 and parse_size("1PB") == 10**15


def test_job_file_rate_in_mbit(tmp_path):
    from engine.jobs.load import load_job

    (tmp_path / "src").mkdir()
    job = tmp_path / "job.toml"
    job.write_text('name = "j"\n[source]\nrepository = "src"\njobs = ["a"]\n'
                   '[target]\nrepository = "dst"\n[retention]\nkeep = 3\n'
                   '[transport]\nrate_limit = "80Mbit/s"\n')
    assert load_job(job).transport.rate_limit == 10_000_000


def test_json_times_carry_their_utc_offset(ferry, tmp_path, make_machine):
    from datetime import datetime

    repo = tmp_path / "repo"
    m = make_machine(5)
    m.add_disk("sda", size=BS)
    m.backup(repo, day(0))
    res = ferry("chain", "--repo", repo, "--json")
    assert res.stdout.startswith('{\n "repository"')  # the one indentation style
    when = json.loads(res.stdout)["chains"][0]["points"][0]["time"]
    parsed = datetime.fromisoformat(when)
    assert parsed.tzinfo is not None
    assert parsed == day(0).astimezone()


def _every_action():
    """(command path, action, its parser) for every argument of every `ferry` command."""
    import argparse

    from console.entry import _console_parser
    from engine.cli import build_parser

    def walk(parser, path):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    yield from walk(child, [*path, name])
            elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
                yield " ".join(path), action, parser

    yield from walk(build_parser(), ["ferry"])
    yield from walk(_console_parser("ferry console"), ["ferry", "console"])


def test_every_option_has_help_and_shows_its_default():
    import argparse

    missing, unshown = [], []
    for path, action, parser in _every_action():
        name = "/".join(action.option_strings) or action.dest
        if not action.help:
            missing.append(f"{path} {name}")
            continue
        shown = parser.formatter_class(parser.prog)._get_help_string(action)
        real_default = action.default not in (None, False, argparse.SUPPRESS)
        if action.option_strings and real_default and "default" not in shown:
            unshown.append(f"{path} {name}")
    assert missing == [] and unshown == []


def test_help_shows_durations_as_typed(ferry):
    run = ferry("run", "--help").stdout
    assert "(default: 1h)" in " ".join(run.split())
    assert "(default: 30s)" in " ".join(ferry("daemon", "--help").stdout.split())
