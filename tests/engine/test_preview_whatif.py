"""`ferry preview` follows the job's own schedule and models what-ifs (issue 11, item 3),
and `[retention] min_points` is a job setting (item 6). Through the real CLI."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from enginekit import assert_ok, assert_one_line_failure, run_ferry

from engine.jobs.load import load_job
from engine.model import RetentionPolicy
from engine.retention import RetentionPoint, short_term_count


def _job(tmp: Path, name: str, extra: str) -> Path:
    (tmp / "src").mkdir(exist_ok=True)
    path = tmp / f"{name}.toml"
    path.write_text(f"""name = "{name}"
mode = "periodic"

[source]
repository = "{tmp / 'src'}"
jobs = ["Daily"]

[target]
repository = "{tmp / 'dst'}"
{extra}
""")
    return path


WEEKDAYS = """
[schedule]
daily_at = "21:00"
days = ["mon", "tue", "wed", "thu", "fri"]

[retention]
keep = 4

[retention.gfs]
weekly = { keep_weeks = 2, day = "sunday" }
"""


def _preview(*args) -> dict:
    res = run_ferry("preview", *args, "--json", "--used", "10GiB")
    assert_ok(res)
    return json.loads(res.stdout)


def _runs(day: dict) -> list[str]:
    return [p["time"] for p in day["points"] if p["time"].startswith(day["date"])]


def test_preview_replays_the_schedule_and_interval_overrides_it(tmp_path):
    job = _job(tmp_path, "Week", WEEKDAYS)
    data = _preview(job, "--from", "2026-01-02T00:00", "--days", "14")
    days = {d["date"]: d for d in data["days"]}
    for d, day in days.items():
        weekend = date.fromisoformat(d).weekday() >= 5
        assert bool(_runs(day)) != weekend, (d, day["actions"])
        assert all(t[10:19] == "T21:00:00" for t in _runs(day))
    monday = days["2026-01-05"]
    assert any("weekly full made (catch-up for 2026-01-04)" in a for a in monday["actions"])
    # --interval stays as an override: a run every day at the start time
    data = _preview(job, "--from", "2026-01-04T22:00", "--days", "7", "--interval", "1d")
    assert all([t[:19] for t in _runs(d)] == [f"{d['date']}T22:00:00"] for d in data["days"])


def test_preview_models_missed_runs_runs_without_new_points_and_policy_change(tmp_path):
    job = _job(tmp_path, "What", WEEKDAYS.replace('days = ["mon", "tue", "wed", "thu", "fri"]',
                                                    ""))
    off = _job(tmp_path, "What-off", "[retention]\nkeep = 4\n")
    data = _preview(job, "--from", "2026-01-01T00:00", "--days", "35",
                    "--skip", "2026-01-11", "--no-new-point", "2026-01-17..2026-01-18",
                    "--policy-from", "2026-01-20", off)
    days = {d["date"]: d for d in data["days"]}
    assert any(a.startswith("no run at 2026-01-11") for a in days["2026-01-11"]["actions"])
    assert not _runs(days["2026-01-11"])
    assert any("weekly full made (catch-up for 2026-01-11)" in a
               for a in days["2026-01-12"]["actions"])
    sat, sun = days["2026-01-17"], days["2026-01-18"]
    assert any(a.startswith("no new source point") for a in sat["actions"])
    assert not _runs(sat) and not _runs(sun)
    assert any("weekly full made from the latest point" in a for a in sun["actions"]), sun
    change = days["2026-01-20"]["actions"]
    assert "retention policy changed" in change
    assert any(a.startswith("2 weekly fulls stay until 2026-02-01") for a in change), change
    assert sum("W" in p["gfs"] for p in days["2026-01-31"]["points"]) == 1
    assert sum("W" in p["gfs"] for p in days["2026-02-01"]["points"]) == 0
    assert any(n.startswith("from 2026-01-20: short-term") for n in data["notes"])


def test_preview_refuses_bad_dates_in_one_line(tmp_path):
    job = _job(tmp_path, "Bad", WEEKDAYS)
    err = assert_one_line_failure(run_ferry("preview", job, "--skip", "2026-13-01"))
    assert "2026-13-01" in err


def test_min_points_is_a_job_setting(tmp_path):
    job = _job(tmp_path, "Min", "[retention]\nkeep = 2\nunit = \"days\"\nmin_points = 5\n")
    assert load_job(job).retention.min_points_days_mode == 5
    assert load_job(_job(tmp_path, "Dflt", "[retention]\nunit = \"days\"\n")) \
        .retention.min_points_days_mode == 3
    bad = _job(tmp_path, "Zero", "[retention]\nunit = \"days\"\nmin_points = 0\n")
    err = assert_one_line_failure(run_ferry("run", bad))
    assert "min_points" in err and "Zero.toml:" in err
    # a job stopped for 10 days with a 2-day setting keeps min_points points
    from datetime import datetime, timedelta

    t0 = datetime(2026, 1, 1, 22)
    chain = [RetentionPoint(f"p{i}", t0 + timedelta(days=i), "incremental") for i in range(8)]
    now = t0 + timedelta(days=18)
    for n in (1, 3, 5):
        policy = RetentionPolicy(keep=2, unit="days", min_points_days_mode=n)
        assert short_term_count(chain, policy, now) == n


IMMUTABLE = """
[retention]
keep = 2

[storage]
immutable_days = 10
"""


def test_preview_shows_what_immutability_costs(tmp_path):
    """An immutable job's preview is replayed a second time with immutable_days = 0: the
    difference is one line of the text output and "immutability" in the JSON (the
    figures of both runs); "immutable until" stays in the reasons. Without immutability
    there is neither."""
    from engine.simulate import simulate, sizing_from_model

    job = _job(tmp_path, "Imm", IMMUTABLE)
    data = _preview(job, "--from", "2026-01-01T22:00", "--days", "40", "--interval", "1d")
    cost = data["immutability"]
    spec = load_job(job)
    from dataclasses import replace
    from datetime import datetime, timedelta

    sizes = sizing_from_model(10 << 30, 10.0, 50.0)  # --used 10GiB, the default model
    start = datetime(2026, 1, 1, 22, 0)
    plain = simulate("Imm", replace(spec.retention, immutable_days=0), "periodic", start, 40,
                     sizes, interval=timedelta(days=1))
    want = plain.worst_day
    assert cost["worst_day_without"] == {"date": want.date.isoformat(),
                                         "points": len(want.points),
                                         "total_size": want.total_size,
                                         "work_space": want.work_space}
    worst = data["worst_day"]
    assert cost["worst_day"]["total_size"] == worst["total_size"]
    assert cost["extra_worst_day"] == (worst["total_size"] + worst["work_space"]
                                       - want.total_size - want.work_space) > 0
    assert cost["worst_day"]["points"] > cost["worst_day_without"]["points"] == 2
    assert cost["immutable_days"] == 10
    assert any("immutable until 2026-" in p["reason"] for p in data["days"][-1]["points"])
    assert any(a.startswith("synthetic full made: periodic synthetic full (the newest full "
                            "is 10 days old") for d in data["days"] for a in d["actions"])
    text = run_ferry("preview", job, "--from", "2026-01-01T22:00", "--days", "40",
                     "--interval", "1d", "--used", "10GiB")
    assert_ok(text)
    lines = [x for x in text.stdout.splitlines() if x.startswith("Immutability")]
    assert len(lines) == 1 and "immutable_days = 10 costs +" in lines[0], text.stdout
    assert "without immutability" in lines[0]
    plain_job = _job(tmp_path, "Plain", IMMUTABLE.replace("immutable_days = 10", ""))
    assert "immutability" not in _preview(plain_job, "--days", "20")
