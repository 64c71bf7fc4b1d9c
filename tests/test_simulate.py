"""The what-if simulator, its JSON and rich output, and property tests of the rules.

The property tests replay random policies and schedules through `replay` (the same
plan_gfs -> apply -> plan_retention -> apply path the copy runner uses) and check, after
every run, invariants stated independently of the implementation.
"""

from __future__ import annotations

import calendar
import json
import re
from datetime import date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from engine.gfs import flag_expiry, gfs_flags_for, last_scheduled
from engine.model import GfsCycle, GfsPolicy, RetentionPolicy
from engine.preview_render import day_char, preview_json, render_preview
from engine.retention import RetentionPoint
from engine.simulate import (
    PreviewResult,
    RunResult,
    Sizing,
    replay,
    simulate,
    sizing_from_model,
)
from engine.sizing import TIB, work_space

SUNDAY = datetime(2026, 11, 1, 22, 0)
SIZES = Sizing(full=100, incremental=10)
WEEKDAYS = [d.lower() for d in calendar.day_name]
WEEKS = ["first", "second", "third", "fourth", "last"]
MONTHS = [m.lower() for m in calendar.month_name[1:]]


# ------------------------------------------------------------- sizing and work space


def test_sizing_model_matches_rps() -> None:
    s = sizing_from_model(1000 * 1024**3, change_pct=10, reduction_pct=50)
    assert s.full == 500 * 1024**3
    assert s.incremental == 50 * 1024**3
    with pytest.raises(ValueError):
        sizing_from_model(100, change_pct=10, reduction_pct=0)


@pytest.mark.parametrize("full,expected", [
    (0, 0),
    (100, 105),
    (10 * TIB, 10.5 * TIB),
    (15 * TIB, 10.5 * TIB + 5 * 0.66 * TIB),
    (600 * TIB, 10.5 * TIB + 10 * 0.66 * TIB + 80 * 0.4 * TIB + 400 * 0.25 * TIB + 100 * 0.1 * TIB),
])
def test_work_space_buckets(full: int, expected: float) -> None:
    assert work_space(full) == pytest.approx(expected, abs=1)


# ------------------------------------------------------------- simulate


def test_simulate_worked_example() -> None:
    result = simulate("DR", RetentionPolicy(keep=7), "periodic", SUNDAY, 10, SIZES)
    assert [d.date for d in result.days] == [SUNDAY.date() + timedelta(days=i) for i in range(10)]
    day7, day8 = result.days[6], result.days[7]
    assert len(day7.points) == 7 and day7.points[0].time == SUNDAY
    assert "merged 2026-11-02 into the full" in day8.actions
    assert day8.points[0].kind == "full" and day8.points[0].time == SUNDAY + timedelta(days=1)
    assert day8.total_size == 100 + 6 * 10  # the merged full keeps its size
    assert day8.work_space == 105
    assert result.days[0].actions == ["full made"]


def test_simulate_days_without_a_run_keep_the_chain() -> None:
    skipped = {date(2026, 11, 3), date(2026, 11, 4)}
    result = simulate("DR", RetentionPolicy(keep=7), "periodic", SUNDAY, 6, SIZES,
                      skip=lambda t: t.date() in skipped)
    assert [len(d.points) for d in result.days] == [1, 2, 2, 2, 3, 4]
    assert result.days[2].actions == ["no run at 2026-11-03"]
    assert [day_char(d) for d in result.days] == ["F", "i", "·", "·", "i", "i"]


def test_periodic_catch_up_vs_immediate_skip_in_the_preview() -> None:
    policy = RetentionPolicy(keep=3, gfs=GfsPolicy(weekly=GfsCycle(4, "sunday")))
    missed = date(2026, 11, 8)
    runs = {}
    for mode in ("periodic", "immediate"):
        result = simulate("DR", policy, mode, SUNDAY, 14, SIZES, skip=lambda t: t.date() == missed)
        runs[mode] = result
        assert any(mode in n for n in result.notes)
    monday_p = runs["periodic"].days[8]
    monday_i = runs["immediate"].days[8]
    assert day_char(monday_p) == "W" and day_char(monday_i) == "i"
    assert any("catch-up for 2026-11-08" in a for a in monday_p.actions)
    assert any("no weekly full for this day" in a for a in runs["immediate"].days[7].actions)
    assert any("made at the next run" in a for a in runs["periodic"].days[7].actions)
    assert sum(day_char(d) == "W" for d in runs["immediate"].days) == 1  # only Nov 1


def test_worst_day_is_the_largest_total_plus_work_space() -> None:
    policy = RetentionPolicy(keep=7)
    result = simulate("DR", policy, "periodic", SUNDAY, 20, SIZES)
    best = max(d.total_size + d.work_space for d in result.days)
    assert result.worst_day.total_size + result.worst_day.work_space == best
    assert result.worst_day is next(d for d in result.days
                                    if d.total_size + d.work_space == best)


def test_simulate_ends_where_replay_ends() -> None:
    policy = RetentionPolicy(keep=5, unit="days", gfs=GfsPolicy(weekly=GfsCycle(2, "friday"),
                                                               monthly=GfsCycle(2, "last")))
    result = simulate("DR", policy, "periodic", SUNDAY, 90, SIZES, interval=timedelta(hours=8))
    final = [r for r in replay(policy, "periodic", SUNDAY, 90, SIZES, timedelta(hours=8))
             if isinstance(r, RunResult)][-1].chain
    last = result.days[-1].points
    assert [(p.time, p.kind, sorted(p.gfs), p.size) for p in last] == \
        [(p.time, p.kind, sorted(p.gfs), p.size) for p in final]
    assert all(p.reason and not p.reason.startswith("not kept") for p in last)


def test_simulate_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="mode"):
        simulate("DR", RetentionPolicy(), "weekly", SUNDAY, 3, SIZES)
    with pytest.raises(ValueError, match="interval"):
        simulate("DR", RetentionPolicy(), "periodic", SUNDAY, 3, SIZES, interval=timedelta(0))


# ------------------------------------------------------------- JSON and rich output


def small_result() -> PreviewResult:
    policy = RetentionPolicy(keep=4, gfs=GfsPolicy(weekly=GfsCycle(2, "sunday"),
                                                   monthly=GfsCycle(1, "first")))
    return simulate("DR copy", policy, "periodic", SUNDAY, 40, SIZES)


def test_preview_json_has_the_contract_shape() -> None:
    result = small_result()
    doc = json.loads(json.dumps(preview_json(result)))
    assert doc["job"] == "DR copy"
    assert {"job", "days", "worst_day"} <= doc.keys()
    assert len(doc["days"]) == 40
    day = doc["days"][-1]
    assert {"date", "points", "total_size"} <= day.keys()
    assert day["date"] == "2026-12-10"
    for p in day["points"]:
        assert {"time", "kind", "gfs", "reason", "size"} <= p.keys()
        assert p["kind"] in ("full", "incremental")
        assert datetime.fromisoformat(p["time"])
        assert set(p["gfs"]) <= {"W", "M", "Y"}
    assert day["total_size"] == sum(p["size"] for p in day["points"])
    assert {"date", "total_size"} <= doc["worst_day"].keys()
    first = doc["days"][0]["points"][0]
    assert first["gfs"] == ["W", "M"] and first["reason"].startswith("short-term 1/4, weekly")


def test_render_preview_draws_the_strip_and_the_last_day() -> None:
    result = small_result()
    console = Console(record=True, width=120, color_system=None)
    render_preview(result, console)
    text = console.export_text()
    assert "2026-11  MiiiiiiWiiiiiiWiiiiiiWiiiiiiWi" in text  # Nov 1: W+M shows as M
    assert "2026-12  iiiiiMiiii" in text  # monthly rides on the first Sunday: Dec 6
    assert "monthly until 2027-01-07" in text  # kept 1 month + 1 day
    assert "2026-11-22" not in text.split("Restore points")[1]  # its weekly flag expired
    assert "Worst day" in text and "work space" in text
    console = Console(record=True, width=120, color_system=None)
    render_preview(result, console, width_days=7)
    rows = [line for line in console.export_text().splitlines()
            if re.match(r"\d{4}-\d\d-\d\d  [FiWMY·]", line)]
    assert len(rows) == 6 and rows[0].startswith("2026-11-01  Miiiiii ")
    assert rows[1].startswith("2026-11-08  Wiiiiii ")


# ------------------------------------------------------------- property tests

cycles = {
    "weekly": st.none() | st.builds(GfsCycle, st.integers(1, 4), st.sampled_from(WEEKDAYS)),
    "monthly": st.none() | st.builds(GfsCycle, st.integers(1, 3), st.sampled_from(WEEKS)),
    "yearly": st.none() | st.builds(GfsCycle, st.integers(1, 2), st.sampled_from(MONTHS)),
}
policies = st.builds(
    RetentionPolicy,
    keep=st.integers(2, 10),
    unit=st.sampled_from(["points", "days"]),
    gfs=st.none() | st.builds(GfsPolicy, **cycles),
)


@st.composite
def schedules(draw: st.DrawFn) -> dict:
    start = datetime.combine(draw(st.dates(date(2024, 1, 1), date(2030, 12, 31))),
                             datetime.min.time()) + timedelta(hours=draw(st.integers(0, 23)))
    days = draw(st.integers(1, 500))
    hours = draw(st.sampled_from([24, 24, 24, 12, 8, 36]))
    pattern = draw(st.sampled_from(["none", "random", "every", "gap"]))
    missed: frozenset[int] = frozenset()
    if pattern == "random":
        missed = draw(st.frozensets(st.integers(0, days), max_size=days // 2))
    elif pattern == "every":  # e.g. no runs at weekends, or every third day
        m = draw(st.integers(2, 9))
        r = draw(st.sets(st.integers(0, m - 1), min_size=1, max_size=m - 1))
        missed = frozenset(d for d in range(days + 1) if d % m in r)
    elif pattern == "gap":  # the job stopped for a while
        a = draw(st.integers(0, days))
        missed = frozenset(range(a, a + draw(st.integers(1, 40))))
    return {"start": start, "days": days, "interval": timedelta(hours=hours),
            "skip": lambda t, s=start, m=missed: (t.date() - s.date()).days in m,
            "mode": draw(st.sampled_from(["periodic", "immediate"]))}


def check_run(r: RunResult, prev: list[RetentionPoint], history: list[datetime],
              parent: dict[str, str], policy: RetentionPolicy, mode: str) -> None:
    """Invariants after one run; `history` holds the times of all runs so far (this one last)."""
    chain, today = r.chain, r.time.date()
    run_time = {f"p{i + 1}": t for i, t in enumerate(history)}
    by_id = {p.id: p for p in chain}
    gfs = policy.gfs if policy.gfs is not None and policy.gfs.enabled else None

    # The newest point is always kept, and chains start with a full.
    assert chain[-1].id == r.point and chain[-1].time == r.time
    assert chain[0].kind == "full"
    # No point depends on a deleted one: each increment sits right after the point it
    # was made on (a merged full takes the id of the increment it absorbed).
    for before, p in zip(chain, chain[1:], strict=False):
        if p.kind == "incremental":
            assert parent[p.id] == before.id
    # Every point is the state of the run it is named after (a merge moves the full to
    # the absorbed increment's id *and* time), and the list stays oldest first.
    assert all(p.time == run_time[p.id] for p in chain)
    assert [p.time for p in chain] == sorted(p.time for p in chain)

    # Short-term count honoured: the newest k runs are all there.
    if policy.unit == "points":
        k = min(policy.keep, len(history))
    else:
        cutoff = today - timedelta(days=policy.keep)
        inside = sum(t.date() >= cutoff for t in history)
        k = max(inside, min(policy.min_points_days_mode, len(history)))
    newest = {f"p{i + 1}" for i in range(len(history) - k, len(history))}
    assert newest <= by_id.keys()

    if gfs is None:
        # Forever-forward: exactly the short-term points, one chain.
        assert len(chain) == k
        assert sum(p.kind == "full" for p in chain) == 1
        return

    # GFS: nothing more than needed - each point is short-term, flagged, or an older
    # point of a chain whose later point is short-term.
    chain_of, current = {}, -1
    for i, p in enumerate(chain):
        current = i if p.kind == "full" else current
        chain_of[p.id] = current
    needed_chains = {chain_of[pid] for pid in newest}
    for p in chain:
        assert p.id in newest or p.gfs or chain_of[p.id] in needed_chains, p
        for flag, due in p.gfs.items():
            assert p.kind == "full"
            # expiry counts from the day the flag was assigned (the run), not its GFS day
            assigned = p.assigned[flag]
            assert assigned == run_time[p.id].date() or p.time.date() < assigned
            assert flag_expiry(flag, assigned, gfs) > today  # expired flags are gone
            assert flag in gfs_flags_for(gfs, due)  # stands for a real GFS day
            assert due <= assigned
            if mode == "immediate":
                assert due == assigned == p.time.date()  # never back-filled
    counts = {f: sum(f in p.gfs for p in chain) for f in ("W", "M", "Y")}
    # a weekly full made late (caught up) lives one day past the next on-time one
    late = any(p.assigned.get("W", d) > d for p in chain for d in [p.gfs.get("W")] if d)
    for flag, cycle, slack in (("W", gfs.weekly, int(late)), ("M", gfs.monthly, 1),
                               ("Y", gfs.yearly, 1)):
        assert counts[flag] <= (cycle.keep + slack if cycle else 0)
    # A flagged full is never deleted while flagged; nothing is merged.
    for p in prev:
        if p.id not in by_id:
            assert all(flag_expiry(f, p.assigned[f], gfs) <= today for f in p.gfs), p
    # A GFS day with a run always has its full.
    for flag in gfs_flags_for(gfs, today):
        assert any(p.gfs.get(flag) == today for p in chain), flag
    # Periodic: a GFS day missed since the previous run is made up now.
    if mode == "periodic" and len(history) > 1:
        for flag in ("W", "M", "Y"):
            s = last_scheduled(gfs, flag, today)
            if s is not None and s > history[-2].date():
                assert any(p.gfs.get(flag) == s for p in chain), (flag, s)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy=policies, sched=schedules())
def test_rules_hold_over_random_policies_and_schedules(policy: RetentionPolicy, sched: dict) -> None:
    history: list[datetime] = []
    parent: dict[str, str] = {}
    chain: list[RetentionPoint] = []
    for item in replay(policy, sched["mode"], sched["start"], sched["days"], SIZES,
                       sched["interval"], sched["skip"]):
        if isinstance(item, datetime):
            continue
        history.append(item.time)
        if chain:
            parent[item.point] = chain[-1].id
        check_run(item, chain, history, parent, policy, sched["mode"])
        chain = item.chain


@settings(max_examples=40, deadline=None)
@given(policy=policies, sched=schedules())
def test_preview_days_are_consistent(policy: RetentionPolicy, sched: dict) -> None:
    result = simulate("p", policy, sched["mode"], sched["start"], sched["days"], SIZES,
                      sched["interval"], sched["skip"])
    # a long chain (e.g. increments on a yearly GFS full, 3 runs a day) can hit the
    # preview's work bound: it then ends early, and says so first
    ended_early = bool(result.notes) and result.notes[0].startswith("preview ends on")
    if ended_early:
        assert 0 < len(result.days) < sched["days"]
    else:
        assert len(result.days) == sched["days"]
    for d in result.days:
        assert d.total_size == sum(p.size for p in d.points)
        assert all(p.reason for p in d.points)
    assert result.worst_day.total_size + result.worst_day.work_space == max(
        d.total_size + d.work_space for d in result.days)


def test_preview_sizes_from_real_chains_sum_the_machines(tmp_path):
    """Without a sizing model, `ferry preview` sizes a run from the job's real chains:
    each machine's average full and increment, summed over the machines."""
    from types import SimpleNamespace

    from engine.backup import take_backup
    from engine.preview_cli import sizing_from_repositories
    from engine.repository.repository import Repository

    repo = tmp_path / "src"
    for i, name in enumerate(("a", "b")):
        disk = tmp_path / f"{name}.img"
        disk.write_bytes(bytes(range(256)) * 4096 * (i + 1))
        for day in range(2):
            if day:
                disk.write_bytes(disk.read_bytes()[:-10] + b"x" * 10)
            take_backup(repo, "Daily", name, [disk], block_size=256 << 10,
                        at=datetime(2026, 1, 1 + day, 22))
    spec = SimpleNamespace(name="Copy", target=SimpleNamespace(repository=tmp_path / "dst", s3=None),
                           source=SimpleNamespace(repository=repo, jobs=["Daily"]))
    sizing = sizing_from_repositories(spec)
    points = [Repository(repo).load("Daily", m).points for m in ("a", "b")]
    assert sizing.full == sum(p[0].size for p in points)
    assert sizing.incremental == sum(p[1].size for p in points)


def test_a_preview_over_its_work_bound_ends_early_and_says_so() -> None:
    """keep 2 on a yearly GFS full, a run every 8 h: the increments on the flagged full
    are never merged away, the chain grows by 3 points a day, and a preview of 317 days
    ends at its work bound (found by the property test above), naming the day it ends."""
    policy = RetentionPolicy(keep=2, gfs=GfsPolicy(yearly=GfsCycle(1, "january")))
    result = simulate("p", policy, "periodic", datetime(2024, 1, 1), 317, SIZES,
                      timedelta(hours=8), lambda t: False)
    assert 0 < len(result.days) < 317
    assert result.notes[0].startswith(f"preview ends on {result.days[-1].date.isoformat()}, "
                                      f"after {len(result.days)} of 317 days")
