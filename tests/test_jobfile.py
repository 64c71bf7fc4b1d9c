"""Job files: validation messages (file, line, key), round trips, atomic rewrites."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.inventory.base import InventorySettings
from engine.jobs.load import JobFileError, JobSpec, discover_jobs, load_job, validate_text
from engine.jobs.save import job_to_dict, save_job, set_enabled, template, update_retention
from engine.jobs.schema import Source, Target
from engine.model import GfsCycle, GfsPolicy, RetentionPolicy
from engine.schedule import ScheduleSpec

DATA = Path(__file__).parent / "data" / "jobs"

BASE = """\
name = "DR copy"
mode = "periodic"

[source]
repository = "../primary"
jobs = ["Daily"]
machines = []

[target]
repository = "../dr"

[schedule]
daily_at = "22:00"
window = ["20:00-06:00"]

[retention]
keep = 7
unit = "points"

[retention.gfs]
weekly  = { keep_weeks = 4, day = "sunday" }
monthly = { keep_months = 12, week = "first" }
yearly  = { keep_years = 3, month = "january" }
method  = "synthetic"

[storage]
compression = "optimal"
health_check = "last sunday 05:00"
compact = "off"

[transport]
wan_acceleration = false
parallel_tasks = 4
rate_limit = "0"
retries = 3
retry_wait = "10m"

[inventory]
kind = "vsphere"
host = "vcenter.example.org"
user = "backup@vsphere.local"
password_env = "FERRY_VSPHERE_PASSWORD"
"""

MINIMAL = """\
name = "DR copy"

[source]
repository = "../primary"
jobs = ["Daily"]

[target]
repository = "../dr"
"""


@pytest.fixture
def jobs(tmp_path: Path) -> Path:
    """tmp/jobs/ for job files next to tmp/primary (an existing source repository)."""
    (tmp_path / "primary").mkdir()
    (tmp_path / "jobs").mkdir()
    return tmp_path / "jobs"


def write(folder: Path, text: str, name: str = "job.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, marker: str) -> int:
    for n, line in enumerate(text.splitlines(), 1):
        if marker in line:
            return n
    raise AssertionError(f"{marker!r} not in text")


# --------------------------------------------------------------------------------------
# Loading valid files.


def test_base_file_is_valid(jobs: Path) -> None:
    assert validate_text(BASE, jobs / "job.toml") == []


def test_minimal_file_gets_the_documented_defaults(jobs: Path) -> None:
    spec = load_job(write(jobs, MINIMAL))
    assert spec.name == "DR copy"
    assert spec.mode == "periodic" and spec.enabled is True
    assert spec.path == jobs / "job.toml"
    assert spec.source.repository == jobs.parent / "primary"
    assert spec.target.repository == jobs.parent / "dr"
    assert spec.source.jobs == ["Daily"] and spec.source.machines == []
    assert spec.retention == RetentionPolicy(keep=7, unit="points", gfs=None, deleted_items_days=30)
    assert spec.schedule == ScheduleSpec(daily_at="22:00", every=None, days=[], window=[])
    assert (spec.storage.compression, spec.storage.health_check, spec.storage.compact) == ("auto", "off", "off")
    t = spec.transport
    assert (t.wan_acceleration, t.parallel_tasks, t.rate_limit, t.retries, t.retry_wait) == (False, 4, 0, 3, 600.0)
    assert spec.inventory is None and spec.history is None


def test_full_fixture_loads_every_table(jobs: Path) -> None:
    (jobs / "state").mkdir()
    spec = load_job(shutil.copy(DATA / "full.toml", jobs / "full.toml"))
    assert spec.enabled is False
    assert spec.history == jobs / "state" / "history.sqlite"
    assert spec.source.jobs == ["Daily", "Hourly"] and spec.source.machines == ["web01", "db01"]
    assert spec.schedule == ScheduleSpec(daily_at=None, every=7200.0,
                                         days=["mon", "tue", "wed", "thu", "fri"],
                                         window=["09:00-17:00", "20:00-06:00"])
    assert spec.retention == RetentionPolicy(
        keep=14, unit="days", deleted_items_days=10,
        gfs=GfsPolicy(weekly=GfsCycle(4, "sunday"), monthly=GfsCycle(12, "last"),
                      yearly=GfsCycle(3, "january"), method="active"))
    assert spec.storage.health_check == "last sunday 05:00"
    assert spec.transport.rate_limit == 50 * 1024**2
    assert spec.transport.retry_wait == 5400.0 and spec.transport.parallel_tasks == 8
    assert spec.inventory == InventorySettings(
        kind="vsphere", host="vcenter.example.org", port=443, protocol="https",
        verify_tls=False, user="backup@vsphere.local",
        password_env="FERRY_VSPHERE_PASSWORD", timeout=45.0)


@pytest.mark.parametrize(("table", "port", "protocol"), [
    ('kind = "vsphere"', 443, "https"),
    ('kind = "hyperv"', 5985, "http"),
    ('kind = "hyperv"\nprotocol = "https"', 5986, "https"),
    ('kind = "hyperv"\nport = 15985', 15985, "http"),
])
def test_inventory_defaults(jobs: Path, table: str, port: int, protocol: str) -> None:
    spec = load_job(write(jobs, MINIMAL + f'\n[inventory]\n{table}\nhost = "h"\n'))
    assert spec.inventory is not None
    assert (spec.inventory.port, spec.inventory.protocol) == (port, protocol)
    assert spec.inventory.verify_tls is True and spec.inventory.timeout == 30.0
    assert spec.inventory.user == "" and spec.inventory.password_env == ""


def test_values_are_normalized(jobs: Path) -> None:
    text = MINIMAL.replace('name = "DR copy"', 'name = "DR copy"\nmode = "Immediate"') + """
[schedule]
window = ["9:00-17:30"]

[retention]
keep = 2
unit = "Days"

[retention.gfs]
weekly = { keep_weeks = 1, day = "SUN" }

[storage]
compression = "Dedupe-Friendly"
health_check = "First Monday 3:00"

[transport]
rate_limit = 1000
retry_wait = 30
"""
    spec = load_job(write(jobs, text))
    assert spec.mode == "immediate"
    assert spec.schedule == ScheduleSpec(daily_at=None, every=None, window=["09:00-17:30"])
    assert spec.retention.unit == "days" and spec.retention.gfs is not None
    assert spec.retention.gfs.weekly == GfsCycle(1, "sunday")
    assert spec.storage.compression == "dedupe-friendly"
    assert spec.storage.health_check == "first monday 03:00"
    assert spec.transport.rate_limit == 1000 and spec.transport.retry_wait == 30.0


def test_unquoted_toml_time_is_accepted_for_daily_at(jobs: Path) -> None:
    spec = load_job(write(jobs, MINIMAL + "\n[schedule]\ndaily_at = 06:30:00\n"))
    assert spec.schedule.daily_at == "06:30"


def test_every_replaces_the_default_daily_time(jobs: Path) -> None:
    spec = load_job(write(jobs, MINIMAL + '\n[schedule]\nevery = "30m"\n'))
    assert spec.schedule.daily_at is None and spec.schedule.every == 1800.0


# --------------------------------------------------------------------------------------
# Every validation error: one line, the right file, line and key.

TARGET_LINE = 10  # the line of `repository = "../dr"` in BASE

# (old text in BASE, new text, key, part of the problem, marker of the expected line:
#  a text on that line, its number, or None)
ERRORS = [
    ("keep = 7", "keep = seven", "retention.keep", "bad TOML: Invalid value", "keep = seven"),
    ('mode = "periodic"', 'mode = "periodic"\nnmae = "x"', "nmae", "unknown key (did you mean 'name'?)", "nmae"),
    ("[storage]", "[storag]", "storag", "unknown key", "[storag]"),
    ("keep = 7", "keep = 7\nkepp = 7", "retention.kepp", "unknown key (did you mean 'keep'?)", "kepp"),
    ("keep = 7", 'keep = "seven"', "retention.keep", "expected an integer, got 'seven'", "keep ="),
    ("keep = 7", "keep = 7.5", "retention.keep", "expected an integer, got 7.5", "keep ="),
    ("keep = 7", "keep = 1", "retention.keep", "keep must be at least 2", "keep ="),
    ('unit = "points"', 'unit = "weeks"', "retention.unit", "expected one of points, days, got 'weeks'", "unit ="),
    ("unit = \"points\"", "unit = \"points\"\ndeleted_items_days = 0", "retention.deleted_items_days",
     "at least 1", "deleted_items_days"),
    ('mode = "periodic"', 'mode = "sometimes"', "mode", "expected one of periodic, immediate", "mode ="),
    ('compression = "optimal"', 'compression = "ultra"', "storage.compression",
     "none, dedupe-friendly, optimal, high, extreme, auto", "compression ="),
    ('compression = "optimal"', "compression = 3", "storage.compression", "expected a string, got 3", "compression ="),
    ('keep_weeks = 4, day = "sunday"', "keep_weeks = 4", "retention.gfs.weekly.day",
     "weekly GFS needs a day", "weekly"),
    ('day = "sunday"', 'day = "funday"', "retention.gfs.weekly.day", "expected a weekday", "weekly"),
    ('keep_weeks = 4', "keep_weeks = 0", "retention.gfs.weekly.keep_weeks", "keep_weeks must be at least 1", "weekly"),
    ('week = "first"', 'week = "fifth"', "retention.gfs.monthly.week",
     "expected one of first, second, third, fourth, last", "monthly"),
    ('keep_months = 12, week = "first"', "keep_months = 12", "retention.gfs.monthly.week",
     "monthly GFS needs a week", "monthly"),
    ('month = "january"', 'month = "smarch"', "retention.gfs.yearly.month", "expected a month", "yearly"),
    ('keep_years = 3, month = "january"', "keep_years = 3", "retention.gfs.yearly.month",
     "yearly GFS needs a month", "yearly"),
    ('method  = "synthetic"', 'method  = "lazy"', "retention.gfs.method", "synthetic, active", "method"),
    ('repository = "../primary"', 'repository = "../nowhere"', "source.repository",
     "repository not found: ", 'repository = "../nowhere"'),
    ('jobs = ["Daily"]', "jobs = []", "source.jobs", "must list at least one name", "jobs ="),
    ('jobs = ["Daily"]', 'jobs = "Daily"', "source.jobs", "expected a list, got 'Daily'", "jobs ="),
    ('jobs = ["Daily"]', 'jobs = ["Daily", 1]', "source.jobs", "item 2: expected a string, got 1", "jobs ="),
    ('jobs = ["Daily"]', 'jobs = ["Daily", "Daily"]', "source.jobs", "'Daily' is listed twice", "jobs ="),
    ('repository = "../dr"', 'path = "../dr"', "target.repository", "required key is missing", "[target]"),
    ('repository = "../dr"', 'repository = "../dr"\npath = "x"', "target.path", "unknown key", "path ="),
    ('repository = "../dr"', 'repository = "../no/dr"', "target.repository", "parent folder not found",
     "../no/dr"),
    ('repository = "../dr"', 'repository = "../primary"', "target.repository",
     "must not be the source repository", TARGET_LINE),
    ('repository = "../dr"', 'repository = "../primary/copies"', "target.repository",
     "must not be the source repository", "copies"),
    ('daily_at = "22:00"', 'daily_at = "25:00"', "schedule.daily_at", 'expected a time of day like "22:00"',
     "daily_at"),
    ('daily_at = "22:00"', 'every = "soon"', "schedule.every", 'expected a duration like "10m"', "every"),
    ('daily_at = "22:00"', 'every = "10s"', "schedule.every", "between 1m and 24h", "every"),
    ('daily_at = "22:00"', 'daily_at = "22:00"\nevery = "4h"', "schedule.every",
     "use either daily_at or every, not both", "every"),
    ('daily_at = "22:00"', 'daily_at = "22:00"\ndays = ["funday"]', "schedule.days", "expected a weekday", "days"),
    ('window = ["20:00-06:00"]', 'window = ["9-17"]', "schedule.window",
     'expected a window like "20:00-06:00"', "window"),
    ('window = ["20:00-06:00"]', 'window = ["06:00-06:00"]', "schedule.window", "same time", "window"),
    ('mode = "periodic"', 'mode = "immediate"', "schedule.daily_at", "only periodic jobs have daily_at",
     "daily_at"),
    ('compact = "off"', 'compact = "last sunday 05:00"', "storage.compact",
     "compact full works only without GFS", "compact"),
    ('health_check = "last sunday 05:00"', 'health_check = "sometimes"', "storage.health_check",
     '"last sunday 05:00"', "health_check"),
    ("parallel_tasks = 4", "parallel_tasks = 0", "transport.parallel_tasks", "between 1 and 64", "parallel"),
    ("parallel_tasks = 4", "parallel_tasks = 65", "transport.parallel_tasks", "between 1 and 64", "parallel"),
    ('rate_limit = "0"', 'rate_limit = "fast"', "transport.rate_limit", 'like "50MiB/s"', "rate_limit"),
    ("retries = 3", "retries = -1", "transport.retries", "retries must be at least 0", "retries"),
    ('retry_wait = "10m"', 'retry_wait = "later"', "transport.retry_wait", "expected a duration", "retry_wait"),
    ("wan_acceleration = false", 'wan_acceleration = "no"', "transport.wan_acceleration",
     "expected true or false, got 'no'", "wan_acceleration"),
    ('kind = "vsphere"', 'kind = "xen"', "inventory.kind", "expected one of vsphere, hyperv", "kind ="),
    ('host = "vcenter.example.org"', "", "inventory.host", "required key is missing", "[inventory]"),
    ('user = "backup@vsphere.local"', 'password = "hunter2"', "inventory.password", "password_env", "password ="),
    ('password_env = "FERRY_VSPHERE_PASSWORD"', 'password_env = "my password"', "inventory.password_env",
     "environment variable name", "password_env"),
    ('name = "DR copy"', 'name = "DR/copy"', "name", "path separator", "name ="),
    ('name = "DR copy"', 'name = "DR..copy"', "name", "'..'", "name ="),
    ('name = "DR copy"', 'name = "DR\\u0007copy"', "name", "control character", "name ="),
    ('name = "DR copy"', 'name = ""', "name", "must not be empty", "name ="),
    ('name = "DR copy"', "", "name", "every job needs a name", None),
    ('name = "DR copy"', 'name = "DR copy"\nhistory = "../none/h.sqlite"', "history", "parent folder not found",
     "history"),
    ("[source]", 'source = "x"\n[sourcex]', "source", "expected a table, got 'x'", "source ="),
    ('[target]\nrepository = "../dr"', "", "target", "required table [target] is missing", None),
    ("keep = 7", "keep = 7\nkeep = 8", "retention.keep", "bad TOML: Cannot overwrite a value", "keep = 8"),
    ("[storage]", "[storage", "storage", "bad TOML", "[storage"),
]


@pytest.mark.parametrize(("old", "new", "key", "problem", "marker"), ERRORS,
                         ids=[f"{i}-{case[2]}" for i, case in enumerate(ERRORS)])
def test_each_error_is_one_line_with_file_line_and_key(
    jobs: Path, old: str, new: str, key: str, problem: str, marker: str | int | None
) -> None:
    assert line_of(BASE, 'repository = "../dr"') == TARGET_LINE
    assert old in BASE
    text = BASE.replace(old, new, 1)
    path = write(jobs, text)
    with pytest.raises(JobFileError) as info:
        load_job(path)
    err = info.value
    line = marker if isinstance(marker, int) or marker is None else line_of(text, marker)
    assert (err.key, err.line) == (key, line), str(err)
    assert problem in err.problem
    assert err.path == path
    message = str(err)
    assert "\n" not in message
    where = f"{path}:{line}" if line else f"{path}"
    assert message.startswith(f"{where}: {key}: ")
    assert [str(e) for e in validate_text(text, path)][0] == message


def test_missing_source_repository_names_the_absolute_path(jobs: Path) -> None:
    path = write(jobs, MINIMAL.replace("../primary", "../gone"))
    with pytest.raises(JobFileError, match=r"repository not found: .*/gone$"):
        load_job(path)


def test_dotted_sub_table_headers_point_at_the_header(jobs: Path) -> None:
    text = MINIMAL + '\n[retention.gfs.weekly]\nkeep_weeks = 2\n\n[retention]\nkeep = 3\n'
    errors = validate_text(text, jobs / "job.toml")
    assert [(e.key, e.line) for e in errors] == [
        ("retention.gfs.weekly.day", line_of(text, "[retention.gfs.weekly]"))]


def test_keys_written_as_dotted_keys_are_found(jobs: Path) -> None:
    text = MINIMAL + '\n[retention]\ngfs.weekly.keep_weeks = 2\ngfs.weekly.day = "someday"\n'
    (err,) = validate_text(text, jobs / "job.toml")
    assert (err.key, err.line) == ("retention.gfs.weekly.day", line_of(text, "someday"))


def test_validate_text_reports_all_errors_in_line_order(jobs: Path) -> None:
    text = (BASE.replace("keep = 7", 'keep = "seven"')
            .replace('day = "sunday"', 'day = "funday"')
            .replace("parallel_tasks = 4", "parallel_tasks = 100")
            .replace('jobs = ["Daily"]', "jobs = []")
            .replace('repository = "../dr"', 'repository = "../missing/dr"')
            .replace('host = "vcenter.example.org"', 'host = "vcenter.example.org"\npassword = "x"'))
    errors = validate_text(text, jobs / "job.toml")
    assert [(e.key, e.line) for e in errors] == [
        ("source.jobs", line_of(text, "jobs = []")),
        ("target.repository", line_of(text, "missing/dr")),
        ("retention.keep", line_of(text, "keep = ")),
        ("retention.gfs.weekly.day", line_of(text, "weekly")),
        ("transport.parallel_tasks", line_of(text, "parallel_tasks")),
        ("inventory.password", line_of(text, "password =")),
    ]
    assert all("\n" not in str(e) for e in errors)


def test_unreadable_files_are_job_file_errors(tmp_path: Path) -> None:
    with pytest.raises(JobFileError, match=r"missing\.toml: cannot read job file"):
        load_job(tmp_path / "missing.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'name = "caf\xe9"\n')
    with pytest.raises(JobFileError, match="not UTF-8"):
        load_job(bad)


def test_job_file_error_format_and_pickle() -> None:
    e = JobFileError(Path("jobs/dr.toml"), 12, "retention.keep", "keep must be\nat least 2")
    assert str(e) == "jobs/dr.toml:12: retention.keep: keep must be at least 2"
    assert str(JobFileError(Path("a.toml"), None, "target", "missing")) == "a.toml: target: missing"
    assert str(JobFileError(Path("a.toml"), None, "", "cannot read")) == "a.toml: cannot read"
    again = pickle.loads(pickle.dumps(e))
    assert (again.path, again.line, again.key, again.problem) == (e.path, e.line, e.key, e.problem)


# --------------------------------------------------------------------------------------
# Writing.


def test_full_file_round_trips_through_save_and_load(jobs: Path) -> None:
    (jobs / "state").mkdir()
    path = shutil.copy(DATA / "full.toml", jobs / "full.toml")
    spec = load_job(path)
    saved = save_job(spec)
    assert saved == spec
    assert load_job(path) == spec
    text = Path(path).read_text()
    assert 'repository = "../primary"' in text  # relative paths stay relative
    assert 'history = "state/history.sqlite"' in text
    assert 'weekly  = { keep_weeks = 4, day = "sunday" }' in text  # unchanged: as written
    assert 'yearly  = { keep_years = 3, month = "january" }' in text  # normalized in place
    assert text.startswith("# A job file that uses every table")  # comments kept
    assert 'rate_limit = "50MiB/s"' in text and 'retry_wait = "1h30m"' in text
    assert "password" not in text.replace("password_env", "")


def test_base_file_round_trips(jobs: Path) -> None:
    spec = load_job(write(jobs, BASE))
    assert save_job(spec) == spec
    assert load_job(jobs / "job.toml") == spec


def test_saving_elsewhere_rebases_relative_paths_and_keeps_absolute_ones(jobs: Path) -> None:
    target = jobs.parent / "dr"
    spec = load_job(write(jobs, MINIMAL.replace('"../dr"', f'"{target}"')))
    (jobs / "sub").mkdir()
    moved = save_job(spec, jobs / "sub" / "copy.toml")
    assert moved.source.repository == spec.source.repository
    assert moved.target.repository == target
    text = (jobs / "sub" / "copy.toml").read_text()
    assert 'repository = "../../primary"' in text
    assert f'repository = "{target}"' in text


def test_save_refuses_an_invalid_spec_and_leaves_the_file(jobs: Path) -> None:
    path = write(jobs, BASE)
    before = path.read_bytes()
    spec = load_job(path)
    spec.retention.keep = 1
    with pytest.raises(JobFileError, match="keep must be at least 2"):
        save_job(spec)
    assert path.read_bytes() == before
    assert [p.name for p in jobs.iterdir()] == ["job.toml"]  # no temp file left


def test_job_to_dict_is_plain_toml_data(jobs: Path) -> None:
    spec = load_job(write(jobs, BASE))
    data = job_to_dict(spec)
    tomli_w.dumps(data)  # only TOML types
    assert data["retention"]["gfs"]["weekly"] == {"keep_weeks": 4, "day": "sunday"}
    assert data["source"]["repository"] == "../primary"
    assert data["schedule"] == {"daily_at": "22:00", "window": ["20:00-06:00"]}
    assert data["inventory"]["port"] == 443


def test_a_spec_built_in_code_saves_with_absolute_paths(jobs: Path) -> None:
    spec = JobSpec(path=jobs / "new.toml", name="Built",
                   source=Source(repository=jobs.parent / "primary", jobs=["Daily"]),
                   target=Target(repository=jobs.parent / "dr"),
                   schedule=ScheduleSpec(daily_at=None, every=4 * 3600.0, days=["sat"]))
    loaded = save_job(spec)
    assert loaded == spec
    assert f'repository = "{jobs.parent / "primary"}"' in (jobs / "new.toml").read_text()


def test_update_retention_rewrites_only_the_retention_table(jobs: Path) -> None:
    text = BASE.replace("[storage]", "# storage settings stay\n[storage]")
    path = write(jobs, text)
    policy = RetentionPolicy(keep=10, unit="days", deleted_items_days=14,
                             gfs=GfsPolicy(weekly=GfsCycle(2, "saturday"), method="active"))
    spec = update_retention(path, policy)
    assert spec.retention == policy
    new = path.read_text()
    head, tail = text.split("[retention]")
    assert new.startswith(head)
    assert new.endswith(tail[tail.index("# storage settings stay"):])
    # edited in place: the keys keep their alignment
    assert '[retention.gfs]\nweekly  = { keep_weeks = 2, day = "saturday" }\nmethod  = "active"\n' in new
    assert "monthly" not in new
    assert load_job(path) == spec


def test_update_retention_keeps_the_comments_inside_retention(jobs: Path) -> None:
    text = BASE.replace("keep = 7", "# short-term points\nkeep = 7   # a week of dailies")
    path = write(jobs, text.replace('method  = "synthetic"', 'method  = "synthetic"  # no reads'))
    spec = update_retention(path, RetentionPolicy(keep=9, gfs=GfsPolicy(
        weekly=GfsCycle(4, "sunday"), monthly=GfsCycle(12, "first"), yearly=GfsCycle(3, "january"),
        method="active")))
    new = path.read_text()
    assert "# short-term points\nkeep = 9   # a week of dailies\n" in new
    assert 'method  = "active"  # no reads' in new
    assert spec.retention.keep == 9 and load_job(path) == spec


def test_set_enabled_on_a_quoted_key(jobs: Path) -> None:
    path = write(jobs, MINIMAL.replace('name = "DR copy"', 'name = "DR copy"\n"enabled" = true  # on'))
    assert set_enabled(path, False).enabled is False
    assert '"enabled" = false  # on' in path.read_text()
    assert set_enabled(path, True).enabled is True
    added = write(jobs, MINIMAL)
    assert set_enabled(added, False).enabled is False
    assert load_job(added).enabled is False


def test_update_retention_removes_gfs_and_handles_sub_table_headers(jobs: Path) -> None:
    text = MINIMAL + '\n[retention]\nkeep = 3\n\n[retention.gfs.weekly]\nkeep_weeks = 2\nday = "sun"\n'
    path = write(jobs, text + '\n[storage]\ncompression = "high"\n')
    spec = update_retention(path, RetentionPolicy(keep=5))
    assert spec.retention == RetentionPolicy(keep=5) and spec.storage.compression == "high"
    assert "gfs" not in path.read_text()


def test_update_retention_appends_a_missing_table(jobs: Path) -> None:
    path = write(jobs, MINIMAL)
    spec = update_retention(path, RetentionPolicy(keep=4))
    assert spec.retention.keep == 4
    assert path.read_text().startswith(MINIMAL)


@pytest.mark.parametrize("policy", [
    RetentionPolicy(keep=1),
    RetentionPolicy(unit="weeks"),
    RetentionPolicy(gfs=GfsPolicy(weekly=GfsCycle(4, "someday"))),
    RetentionPolicy(gfs=GfsPolicy(monthly=GfsCycle(0, "first"))),
])
def test_update_retention_refuses_an_invalid_policy_and_leaves_the_file(jobs: Path, policy) -> None:
    path = write(jobs, BASE)
    before = path.read_bytes()
    with pytest.raises(JobFileError) as info:
        update_retention(path, policy)
    assert info.value.key.startswith("retention.")
    assert path.read_bytes() == before
    assert sorted(p.name for p in jobs.iterdir()) == ["job.toml"]


def test_update_retention_refuses_an_already_invalid_file(jobs: Path) -> None:
    path = write(jobs, BASE.replace("parallel_tasks = 4", "parallel_tasks = 0"))
    before = path.read_bytes()
    with pytest.raises(JobFileError, match="parallel_tasks"):
        update_retention(path, RetentionPolicy())
    assert path.read_bytes() == before


def test_update_retention_repairs_a_bad_retention_table(jobs: Path) -> None:
    path = write(jobs, BASE.replace("keep = 7", "keep = 1").replace("keep_weeks = 4", "keep_weks = 4"))
    spec = update_retention(path, RetentionPolicy(keep=9))
    assert spec.retention == RetentionPolicy(keep=9)


def test_template_is_a_valid_job(jobs: Path) -> None:
    text = template('Nightly "DR"')
    spec = load_job(write(jobs, text))
    assert spec.name == 'Nightly "DR"'
    assert spec.source.repository == jobs.parent / "primary"
    with pytest.raises(ValueError, match="path separator"):
        template("a/b")


# --------------------------------------------------------------------------------------
# Discovery.


def test_discover_jobs_lists_specs_and_errors_sorted(jobs: Path) -> None:
    write(jobs, MINIMAL.replace("DR copy", "B job"), "b.toml")
    write(jobs, MINIMAL.replace("DR copy", "A job"), "a.toml")
    write(jobs, MINIMAL.replace("jobs = [", "jobs = 1 + ["), "c.toml")
    write(jobs, MINIMAL.replace("DR copy", "a JOB"), "d.toml")
    write(jobs, MINIMAL, ".hidden.toml")
    write(jobs, MINIMAL, "notes.txt")
    found = discover_jobs(jobs)
    assert [p.name for p, _ in found] == ["a.toml", "b.toml", "c.toml", "d.toml"]
    assert isinstance(found[0][1], JobSpec) and found[0][1].name == "A job"
    assert isinstance(found[1][1], JobSpec)
    assert isinstance(found[2][1], JobFileError) and found[2][1].line == 5
    dup = found[3][1]
    assert isinstance(dup, JobFileError) and dup.key == "name" and dup.line == 1
    assert "already used by a.toml" in dup.problem


# --------------------------------------------------------------------------------------
# validate_text never raises.

_scalars = st.one_of(st.booleans(), st.integers(-2**63, 2**63 - 1), st.text(max_size=12),
                     st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(
                         ["22:00", "4h", "sunday", "last sunday 05:00", "../primary", "50MiB/s",
                          "20:00-06:00", "vsphere", "points", "0"]))
_keys = st.sampled_from(["name", "mode", "enabled", "history", "source", "target", "repository", "jobs",
                         "machines", "schedule", "daily_at", "every", "days", "window", "retention",
                         "keep", "unit", "gfs", "weekly", "monthly", "yearly", "keep_weeks", "day",
                         "week", "month", "method", "storage", "compression", "health_check",
                         "transport", "rate_limit", "retry_wait", "inventory", "kind", "host",
                         "port", "password", "x y", "a.b"])
_tomlish = st.recursive(
    _scalars | st.lists(_scalars, max_size=3),
    lambda inner: st.dictionaries(_keys, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=300))
def test_validate_text_never_raises_on_arbitrary_text(jobs: Path, text: str) -> None:
    errors = validate_text(text, jobs / "fuzz.toml")
    for e in errors:
        assert "\n" not in str(e) and "internal error" not in e.problem


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.dictionaries(_keys, _tomlish, max_size=8))
def test_validate_text_never_raises_on_tomlish_dicts(jobs: Path, data: dict) -> None:
    text = tomli_w.dumps(data)
    errors = validate_text(text, jobs / "fuzz.toml")
    for e in errors:
        assert "\n" not in str(e) and "internal error" not in e.problem
        assert e.line is None or 1 <= e.line <= text.count("\n") + 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, len(BASE)), junk=st.text(max_size=5))
def test_validate_text_never_raises_on_damaged_job_files(jobs: Path, cut: int, junk: str) -> None:
    for e in validate_text(BASE[:cut] + junk + BASE[cut:], jobs / "job.toml"):
        assert "\n" not in str(e) and "internal error" not in e.problem
