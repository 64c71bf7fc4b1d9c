"""Job files and command lines are hostile input: every number has a bound, every name
goes through the repository's name rules, every path problem names its key.

Each bad file is refused by `ferry run` with exit 2 and one line `file:line: key: reason`
before anything runs (the target stays empty). The matrix runs in-process through
`engine.cli.main` (the very code path of the `ferry` script, without a Python start per
case); one case runs as a real subprocess.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from enginekit import assert_one_line_failure

from engine import cli
from engine.jobs.load import load_job
from engine.simulate import MAX_WORK

BASE = """\
name = "DR copy"

[source]
repository = "src"
jobs = ["Daily"]

[target]
repository = "dst"

[retention]
keep = 7
"""
GFS = "\n[retention.gfs]\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    (tmp_path / "dst").mkdir()
    return tmp_path


def _job(folder: Path, text: str) -> Path:
    path = folder / "job.toml"
    path.write_text(text)
    return path


def _refused(folder: Path, text: str, capsys) -> str:
    """`ferry run` of the file: exit 2, one line on stderr, nothing written to the target."""
    path = _job(folder, text)
    code = cli.main(["run", str(path)])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    assert not any((folder / "dst").iterdir()), "a refused job wrote to its target"
    return lines[0]


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if line == needle)


# (what the file says, the key named, words of the reason); the line is the needle's
CASES = [
    (GFS + 'weekly = { keep_weeks = 1000000000000, day = "sunday" }\n',
     "retention.gfs.weekly.keep_weeks", "keep_weeks must be at most 5200"),
    (GFS + 'weekly = { keep_weeks = 5201, day = "sunday" }\n',
     "retention.gfs.weekly.keep_weeks", "keep_weeks must be at most 5200"),
    (GFS + 'monthly = { keep_months = 1201, week = "first" }\n',
     "retention.gfs.monthly.keep_months", "at most 1200"),
    (GFS + 'yearly = { keep_years = 9999, month = "january" }\n',
     "retention.gfs.yearly.keep_years", "keep_years must be at most 100"),
    ("@keep = 1000000", "retention.keep", "keep must be at most 9999"),
    ("@keep = 10000", "retention.keep", "keep must be at most 9999"),
    ("deleted_items_days = 100000\n", "retention.deleted_items_days", "at most 36500"),
    ("\n[transport]\nretries = 101\n", "transport.retries", "retries must be at most 100"),
    ('\n[transport]\nretry_wait = "25h"\n', "transport.retry_wait", "at most 24h"),
    ("\n[transport]\nretry_wait = nan\n", "transport.retry_wait", "finite"),
    ("\n[transport]\nretry_wait = inf\n", "transport.retry_wait", "finite"),
    ('\n[transport]\nretry_wait = "' + "9" * 400 + 's"\n', "transport.retry_wait", "finite"),
    ('\n[transport]\nrate_limit = "2TiB/s"\n', "transport.rate_limit", "at most 1TiB/s"),
    ('\n[transport]\nrate_limit = "' + "9" * 400 + '.5MiB/s"\n', "transport.rate_limit",
     "expected a rate"),
    ("\n[transport]\nparallel_tasks = 65\n", "transport.parallel_tasks", "between 1 and 64"),
    ('\n[schedule]\nevery = "0.5m"\n', "schedule.every", "between 1m and 24h"),
    ("\n[storage]\nimmutable_days = 36501\n", "storage.immutable_days", "between 0 and 36500"),
    ('\n[inventory]\nkind = "vsphere"\nhost = "vc"\ntimeout = "2h"\n', "inventory.timeout",
     "at most 1h"),
    # names: the repository's rules (safe_name), item by item
    ('@jobs = [".."]', "source.jobs", "item 1: job name '..' contains '..'"),
    ('@jobs = ["Daily", "../x"]', "source.jobs", "item 2: job name '../x' contains a path separator"),
    ('@jobs = ["a/b"]', "source.jobs", "path separator"),
    ('@jobs = ["Daily"]\nmachines = ["a/b"]', "source.machines", "machine name 'a/b'"),
    ('@jobs = ["Daily"]\nmachines = [".."]', "source.machines", "contains '..'"),
    ('@jobs = ["Da\\u0000ily"]', "source.jobs", "NUL byte"),
    ('@jobs = ["' + "x" * 300 + '"]', "source.jobs", "too long"),
    ('@jobs = ["Daily"]\nmachines = ["web\\u0007"]', "source.machines", "control character"),
    # paths: the key, never "internal error"
    ('@repository = "src\\u0000x"', "source.repository", "NUL byte"),
    ('@repository = "' + "a" * 300 + '"', "source.repository", "longer than 255 bytes"),
    ('@repository = "dst/' + "b" * 300 + '"', "target.repository", "longer than 255 bytes"),
    ('@repository = "' + "/c" * 2100 + '"', "source.repository", "longer than 4096 bytes"),
    ('^history = "h\\u0000"', "history", "NUL byte"),
    ('^history = "' + "h" * 256 + '"', "history", "longer than 255 bytes"),
    ('\n[storage]\nencryption = true\npassword_file = "' + "p" * 256 + '"\n',
     "storage.password_file", "longer than 255 bytes"),
    ('\n[storage]\nencryption = true\npassword_command = "cat \\u0000"\n',
     "storage.password_command", "NUL byte"),
    ('@repository = "dst"\nmover = "host\\u0000:7443"', "target.mover", "NUL byte"),
]


def _apply(case: str) -> tuple[str, str]:
    """The job text of a case, and the text of the line the error must point at.

    A case starting with "@" replaces the base line of the same key ("@keep = 9"
    replaces "keep = 7"; "@repository" the source's, or the target's when it names
    "dst"); "^" puts a top-level key first; any other case is appended (BASE ends in
    [retention])."""
    if case.startswith("^"):
        return case[1:] + "\n" + BASE, case[1:]
    if not case.startswith("@"):
        return BASE + case, case.strip().splitlines()[-1]
    first, *rest = case[1:].split("\n")
    key = first.split("=")[0].strip()
    old = next(line for line in BASE.splitlines() if line.startswith(key + " "))
    if key == "repository" and '"dst' in first:
        old = 'repository = "dst"'
    text = BASE.replace(old, "\n".join([first, *rest]), 1)
    return text, (rest[-1] if rest else first)


@pytest.mark.parametrize("case,key,words", CASES, ids=[c[1] + ":" + c[2][:24] for c in CASES])
def test_bad_number_name_or_path_is_one_line(folder, capsys, case, key, words):
    text, needle = _apply(case)
    line = _refused(folder, text, capsys)
    where = f"{folder / 'job.toml'}:{_line_of(text, needle)}: {key}: "
    assert line.removeprefix("ferry: ").startswith(where), (line, where)
    assert words in line, line


def test_largest_allowed_values_load(folder):
    """The control case: each bound itself is accepted."""
    text = BASE.replace("keep = 7", "keep = 9999\ndeleted_items_days = 36500") + (
        GFS + 'weekly = { keep_weeks = 5200, day = "sunday" }\n'
        'monthly = { keep_months = 1200, week = "first" }\n'
        'yearly = { keep_years = 100, month = "january" }\n'
        '\n[transport]\nretries = 100\nretry_wait = "24h"\nrate_limit = "1TiB/s"\n'
        'parallel_tasks = 64\n\n[storage]\nimmutable_days = 36500\n')
    spec = load_job(_job(folder, text))
    assert spec.retention.keep == 9999 and spec.retention.gfs.yearly.keep == 100
    assert spec.transport.retry_wait == 86400 and spec.transport.rate_limit == 1024**4


def test_bad_file_via_the_ferry_script(folder, ferry):
    """The same refusal through a real `ferry` process: exit 2, one line, no traceback."""
    text = BASE + GFS + 'weekly = { keep_weeks = 1000000000000, day = "sunday" }\n'
    line = assert_one_line_failure(ferry("run", _job(folder, text)), 2)
    assert re.search(r"job\.toml:\d+: retention\.gfs\.weekly\.keep_weeks: .*at most 5200", line), line
    assert not any((folder / "dst").iterdir())


@pytest.mark.parametrize("args,words", [
    (["preview", "JOB", "--days", "0"], "--days: must be between 1 and 36600"),
    (["preview", "JOB", "--days", "100000"], "--days: must be between 1 and 36600"),
    (["preview", "JOB", "--interval", "1s"], "--interval: must be from 1m to 366d"),
    (["run", "JOB", "--hold-timeout", "1000d"], "--hold-timeout: must be from 0s to 7d"),
    (["history", "--limit", "0"], "--limit: must be between 1 and 100000"),
    (["daemon", "--jobs", "DIR", "--poll", "0s"], "--poll: must be from 0.1s to 1h"),
    (["backup", "--repo", "DIR", "--job", "j", "--machine", "m", "--disk", "DIR",
      "--keep", "1000000"], "--keep: must be between 1 and 9999"),
])
def test_command_line_numbers_are_bounded(folder, capsys, args, words):
    path = _job(folder, BASE)
    argv = [str(path) if a == "JOB" else str(folder) if a == "DIR" else a for a in args]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and words in err, err


def test_preview_of_the_longest_policy_is_bounded(folder, capsys):
    """keep = 9999 and 100 years of GFS: the default horizon would be 37231 days of
    thousands of points (hours); the preview stops at its work bound and says so. Counted,
    not timed: the listed points stay within the bound."""
    text = BASE.replace("keep = 7", "keep = 9999") + (
        GFS + 'weekly = { keep_weeks = 5200, day = "sunday" }\n'
        'monthly = { keep_months = 1200, week = "first" }\n'
        'yearly = { keep_years = 100, month = "january" }\n')
    path = _job(folder, text)
    assert cli.main(["preview", str(path), "--used", "10GiB", "--from", "2026-01-01T22:00"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    shown = int(re.search(r"Retention preview: DR copy \S+ \.\. \S+ \((\d+) days\)", out)[1])
    m = re.search(r"preview ends on \S+, after (\d+) of 37231 days: the chain holds (\d+) "
                  r"points", out)
    assert m, out[-2000:]
    days, chain = int(m[1]), int(m[2])
    assert days == shown and 365 < days < 37231
    # the bound is what stopped it: the listed days hold about MAX_WORK points
    assert days * chain / 2 <= MAX_WORK <= 3 * days * chain, (days, chain)


def test_simulate_stops_at_its_work_bound():
    """The bound counts points, so the same policy always stops on the same day."""
    from datetime import datetime

    from engine.model import RetentionPolicy
    from engine.simulate import Sizing, simulate

    policy = RetentionPolicy(keep=50)
    whole = simulate("j", policy, "periodic", datetime(2026, 1, 1, 22), 100, Sizing(10, 1))
    assert len(whole.days) == 100 and not any("preview ends" in n for n in whole.notes)
    cut = simulate("j", policy, "periodic", datetime(2026, 1, 1, 22), 100, Sizing(10, 1),
                   max_work=1000)
    listed = sum(len(d.points) for d in cut.days)
    assert len(cut.days) < 100 and listed <= 1000 + 50
    assert cut.days == whole.days[:len(cut.days)]
    assert cut.notes[0].startswith(f"preview ends on {cut.days[-1].date.isoformat()}, "
                                   f"after {len(cut.days)} of 100 days")
