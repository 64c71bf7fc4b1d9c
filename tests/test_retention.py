"""Short-term retention, forever-forward merges, GFS chains, plan_gfs and reasons."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from engine.model import GfsCycle, GfsPolicy, Kind, RestorePoint, RetentionPolicy
from engine.retention import (
    Action,
    RetentionPoint,
    apply,
    plan_gfs,
    plan_gfs_dates,
    plan_retention,
    points_from_chain,
    short_term_count,
)
from engine.retention_why import reasons

SUNDAY = datetime(2026, 11, 1, 22, 0)  # a Sunday


def at(day: int) -> datetime:
    return SUNDAY + timedelta(days=day)


def pv(day: int, kind: str = "incremental", gfs: dict[str, date] | None = None,
       size: int = 10) -> RetentionPoint:
    return RetentionPoint(f"d{day}", at(day), kind, dict(gfs or {}), size)


def daily(first: int, last: int, flags: dict[str, date] | None = None) -> list[RetentionPoint]:
    """A forward chain: a full on `first` (with `flags`), increments up to `last`."""
    return [pv(first, "full", flags, 100)] + [pv(d) for d in range(first + 1, last + 1)]


def run(points: list[RetentionPoint], policy: RetentionPolicy, day: int
        ) -> tuple[list[RetentionPoint], list[Action]]:
    actions = plan_retention(points, policy, at(day))
    return apply(points, actions), actions


def ids(points: list[RetentionPoint]) -> list[str]:
    return [p.id for p in points]


# ------------------------------------------------------------- forever-forward (no GFS)


def test_worked_example_keep_7_from_a_sunday() -> None:
    """Sun full + Mon..Sat = 7 points; the next Sunday merges Monday into the full."""
    policy = RetentionPolicy(keep=7)
    week = daily(0, 6)
    assert plan_retention(week, policy, at(6)) == []
    after, actions = run(week + [pv(7)], policy, 7)
    assert [(a.kind, a.point) for a in actions] == [("merge", "d1")]
    assert len(after) == 7
    full = after[0]
    assert (full.kind, full.id, full.time) == ("full", "d1", at(1))  # Monday's state
    assert full.size == 100  # a merge keeps the full's size
    assert ids(after[1:]) == [f"d{d}" for d in range(2, 8)]


def test_worked_example_days_variant() -> None:
    """6 days + the day of the run behaves like 7 points."""
    policy = RetentionPolicy(keep=6, unit="days")
    assert plan_retention(daily(0, 6), policy, at(6)) == []
    after, actions = run(daily(0, 7), policy, 7)
    assert [a.point for a in actions] == ["d1"]
    assert after[0].time == at(1)


def test_days_mode_keeps_n_plus_one_days() -> None:
    policy = RetentionPolicy(keep=3, unit="days")
    points = daily(0, 10)
    after, _ = run(points, policy, 10)
    assert [p.time.date() for p in after] == [at(d).date() for d in range(7, 11)]


def test_days_without_backups_are_counted() -> None:
    """Runs every other day, keep 7 days: the window holds ages 0, 2, 4, 6 only."""
    policy = RetentionPolicy(keep=7, unit="days")
    points = [pv(0, "full", size=100)] + [pv(d) for d in range(2, 21, 2)]
    after, _ = run(points, policy, 20)
    assert [p.time for p in after] == [at(d) for d in (14, 16, 18, 20)]


def test_days_mode_after_a_10_day_gap_keeps_at_least_3() -> None:
    policy = RetentionPolicy(keep=5, unit="days")
    points = daily(0, 4) + [pv(15)]  # job stopped for 10 days
    after, actions = run(points, policy, 15)
    assert len(after) == 3
    assert [p.time for p in after] == [at(3), at(4), at(15)]
    assert after[0].kind == "full"
    assert [a.point for a in actions] == ["d1", "d2", "d3"]
    why = reasons(after, policy, at(15))
    assert why["d3"] == "short-term minimum 3/3"
    assert why["d15"] == "short-term day 0/5"


def test_days_mode_minimum_is_configurable() -> None:
    policy = RetentionPolicy(keep=5, unit="days", min_points_days_mode=4)
    assert short_term_count(daily(0, 4) + [pv(15)], policy, at(15)) == 4


def test_shrunken_policy_merges_several_increments_in_one_run() -> None:
    points = daily(0, 13)  # 14 points under keep = 14
    policy = RetentionPolicy(keep=5)
    after, actions = run(points, policy, 13)
    assert [a.kind for a in actions] == ["merge"] * 9
    assert [a.point for a in actions] == [f"d{d}" for d in range(1, 10)]
    assert len(after) == 5
    assert (after[0].kind, after[0].time) == ("full", at(9))


def test_keep_is_never_below_one_point() -> None:
    after, _ = run(daily(0, 3), RetentionPolicy(keep=0), 3)
    assert ids(after) == ["d3"] and after[0].kind == "full"


def test_without_gfs_leftover_flags_expire_and_the_full_merges() -> None:
    """GFS switched off: its flags keep nothing (recalculated with N = 0)."""
    points = daily(0, 8, {"W": at(0).date()})
    after, actions = run(points, RetentionPolicy(keep=7), 8)
    assert actions[0].kind == "expire-flag" and actions[0].flag == "W"
    assert "GFS is off" in actions[0].reason
    assert [a.kind for a in actions[1:]] == ["merge", "merge"]
    assert len(after) == 7 and not after[0].gfs


# ------------------------------------------------------------- forward chains with GFS

WEEKLY = RetentionPolicy(keep=7, gfs=GfsPolicy(weekly=GfsCycle(2, "sunday")))


def test_gfs_never_merges() -> None:
    points = daily(0, 20, {"W": at(0).date()})
    assert all(a.kind != "merge" for a in plan_retention(points, WEEKLY, at(20)))


def test_old_chain_goes_only_when_its_last_increment_leaves_short_term() -> None:
    old = daily(0, 6, {"W": at(0).date()})
    new = daily(7, 12, {"W": at(7).date()})
    # day 12: newest 7 = days 6..12, the old chain's last increment (day 6) is still in.
    assert plan_retention(old + new, WEEKLY, at(12)) == []
    after, actions = run(old + new + [pv(13)], WEEKLY, 13)
    assert [(a.kind, a.points) for a in actions] == [
        ("delete-chain", [f"d{d}" for d in range(1, 7)])]  # the increments; the W full stays
    assert ids(after) == ["d0"] + [f"d{d}" for d in range(7, 14)]


def test_unflagged_old_chain_is_deleted_whole() -> None:
    old = daily(0, 3)  # e.g. the forever-forward chain from before GFS was enabled
    new = daily(4, 11, {"W": at(8).date()})
    after, actions = run(old + new, WEEKLY, 11)
    assert actions[0].kind == "delete-chain"
    assert actions[0].points == ["d0", "d1", "d2", "d3"]
    assert "chain left short-term" in actions[0].reason
    assert after[0].id == "d4"


def test_flagged_full_survives_until_expiry_then_goes() -> None:
    flagged = [pv(0, "full", {"W": at(0).date()}, 100)]  # W kept 2 weeks: expires day 14
    active = daily(7, 13, {"W": at(7).date()})
    points = flagged + active
    assert plan_retention(points, WEEKLY, at(13)) == []
    assert "weekly until 2026-11-15" in reasons(points, WEEKLY, at(13))["d0"]
    points = points + [pv(14, "full", {"W": at(14).date()}, 100)]
    after, actions = run(points, WEEKLY, 14)
    assert [(a.kind, a.point or a.points) for a in actions] == [
        ("expire-flag", "d0"), ("delete-chain", ["d0"])]
    assert "d0" not in ids(after)


def test_flag_of_a_disabled_cycle_expires() -> None:
    policy = RetentionPolicy(keep=3, gfs=GfsPolicy(weekly=GfsCycle(4, "sunday")))
    points = [pv(0, "full", {"W": at(0).date(), "M": at(0).date()}, 100)] + daily(1, 4)
    after, actions = run(points, policy, 4)
    assert [(a.kind, a.flag) for a in actions] == [("expire-flag", "M")]
    assert "monthly cycle off" in actions[0].reason
    assert after[0].gfs == {"W": at(0).date()}


def test_several_flags_keep_the_full_until_the_last_expires() -> None:
    policy = RetentionPolicy(keep=2, gfs=GfsPolicy(weekly=GfsCycle(1, "sunday"),
                                                   monthly=GfsCycle(1, "first")))
    assigned = at(0).date()  # Sun 2026-11-01: W expires 11-08, M expires 12-02
    points = [pv(0, "full", {"W": assigned, "M": assigned}, 100), pv(9, "full", {}, 100), pv(10)]
    after, actions = run(points, policy, 10)
    assert [(a.kind, a.flag) for a in actions] == [("expire-flag", "W")]
    assert reasons(after, policy, at(10))["d0"] == "monthly until 2026-12-02"
    after, actions = run(after + [pv(31)], policy, 31)
    assert [a.kind for a in actions] == ["expire-flag", "delete-chain"]
    assert "d0" not in ids(after)


# ------------------------------------------------------------- apply


def test_apply_is_pure() -> None:
    points = daily(0, 7)
    snapshot = [(p.id, p.time, p.kind, dict(p.gfs)) for p in points]
    apply(points, [Action("merge", point="d1"), Action("gfs-full", point="d7", flags=["W"])])
    assert [(p.id, p.time, p.kind, dict(p.gfs)) for p in points] == snapshot


def test_gfs_full_action_uses_the_given_assigned_date() -> None:
    after = apply(daily(0, 3), [Action("gfs-full", point="d3", flags=["W", "M"],
                                       dates={"W": date(2026, 11, 1)})])
    assert after[3].kind == "full"
    assert after[3].gfs == {"W": date(2026, 11, 1), "M": at(3).date()}


@pytest.mark.parametrize("action,message", [
    (Action("merge", point="d2"), "not an increment right after a full"),
    (Action("merge", point="d9"), "no point"),
    (Action("delete-chain", points=["d1"]), "depends on"),
    (Action("expire-flag", point="d1", flag="W"), "no 'W' flag"),
    (Action("explode", point="d1"), "not a retention action"),
])
def test_apply_refuses_what_the_rules_never_plan(action: Action, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apply(daily(0, 3), [action])


def test_apply_refuses_to_touch_a_flagged_full() -> None:
    points = daily(0, 3, {"W": at(0).date()})
    with pytest.raises(ValueError, match="GFS flags"):
        apply(points, [Action("merge", point="d1")])
    with pytest.raises(ValueError, match="GFS flags"):
        apply(points, [Action("delete-chain", points=["d0", "d1", "d2", "d3"])])


# ------------------------------------------------------------- plan_gfs


def gfs_policy(**cycles: GfsCycle) -> RetentionPolicy:
    return RetentionPolicy(keep=7, gfs=GfsPolicy(**cycles))


def test_gfs_day_made_on_its_day_and_counted_once() -> None:
    policy = gfs_policy(weekly=GfsCycle(4, "sunday"))
    points = daily(1, 7)  # Mon 11-02 .. Sat 11-07
    assert plan_gfs(points, policy, at(7), "periodic", at(6)) == ["W"]  # Sunday 11-08
    made = apply(points + [pv(7)], [Action("gfs-full", point="d7", flags=["W"])])
    # A second run the same Sunday makes no second weekly full.
    assert plan_gfs(made, policy, at(7) + timedelta(hours=1), "periodic", at(7)) == []
    assert plan_gfs(made, policy, at(7) + timedelta(hours=1), "immediate", at(7)) == []


def test_periodic_catches_up_a_missed_gfs_day_immediate_does_not() -> None:
    policy = gfs_policy(weekly=GfsCycle(4, "sunday"))
    points = daily(1, 6)  # last run Sat 11-07; no run on Sunday 11-08
    monday = at(8)
    assert plan_gfs_dates(points, policy, monday, "periodic", at(6)) == {"W": date(2026, 11, 8)}
    assert plan_gfs(points, policy, monday, "immediate", at(6)) == []


def test_only_the_newest_missed_gfs_day_is_made_up() -> None:
    policy = gfs_policy(weekly=GfsCycle(4, "sunday"))
    dates = plan_gfs_dates(daily(1, 2), policy, at(23), "periodic", at(2))  # 3 Sundays missed
    assert dates == {"W": date(2026, 11, 22)}


def test_last_run_defaults_to_the_newest_point() -> None:
    policy = gfs_policy(weekly=GfsCycle(4, "sunday"))
    assert plan_gfs(daily(1, 6), policy, at(8), "periodic") == ["W"]


def test_gfs_enabled_inside_the_chosen_week_makes_the_monthly_now() -> None:
    """Monthly on the first week (1st-7th), weekly off: enabled on the 3rd -> made now."""
    policy = gfs_policy(monthly=GfsCycle(12, "first"))
    points = daily(-30, 1)  # the job ran daily without GFS, last on 11-02
    assert plan_gfs_dates(points, policy, at(2), "periodic") == {"M": date(2026, 11, 1)}


def test_gfs_enabled_after_the_chosen_week_waits_for_next_month() -> None:
    policy = gfs_policy(monthly=GfsCycle(12, "first"))
    points = daily(-30, 8)  # last run 11-09
    assert plan_gfs(points, policy, at(9), "periodic") == []
    # ... and the next one is made on December 1st.
    dec1 = datetime(2026, 12, 1, 22)
    assert plan_gfs(points + [pv(29)], policy, dec1, "periodic", at(29)) == ["M"]


def test_yearly_made_later_in_the_chosen_month_for_a_new_job() -> None:
    policy = gfs_policy(yearly=GfsCycle(2, "november"))
    assert plan_gfs_dates([], policy, at(10), "periodic", None) == {"Y": date(2026, 11, 1)}
    assert plan_gfs([], policy, at(10), "immediate", None) == []


def test_new_job_gets_no_weekly_for_a_past_day() -> None:
    policy = gfs_policy(weekly=GfsCycle(4, "sunday"))
    assert plan_gfs([], policy, at(1), "periodic", None) == []
    assert plan_gfs([], policy, at(0), "periodic", None) == ["W"]


def test_no_gfs_no_flags_and_bad_mode_refused() -> None:
    assert plan_gfs(daily(0, 3), RetentionPolicy(keep=7), at(7), "periodic") == []
    with pytest.raises(ValueError, match="mode"):
        plan_gfs([], RetentionPolicy(), at(0), "sometimes")


# ------------------------------------------------------------- reasons


def test_reasons_name_short_term_rank_flags_and_dependencies() -> None:
    policy = RetentionPolicy(keep=3, gfs=GfsPolicy(weekly=GfsCycle(2, "sunday"),
                                                   monthly=GfsCycle(1, "first")))
    first = {"W": at(0).date(), "M": at(0).date()}
    points = daily(0, 4, first)  # the 11-01 chain; newest 3 = days 2..4
    why = reasons(points, policy, at(4))
    assert why["d0"] == "weekly until 2026-11-15, monthly until 2026-12-02"
    assert why["d1"] == "needed by a later point"
    assert why["d2"] == "short-term 3/3"
    assert why["d4"] == "short-term 1/3"


def test_reasons_say_what_the_next_run_removes() -> None:
    why = reasons(daily(0, 8), RetentionPolicy(keep=7), at(8))
    assert why["d0"].startswith("not kept") and "full forward" in why["d0"]
    assert why["d1"].startswith("not kept") and "merges" in why["d1"]
    assert why["d2"] == "short-term 7/7"


def test_points_from_chain_reads_flags_and_dates() -> None:
    rp = RestorePoint(id="a", time=at(0), kind=Kind.FULL, file="a.fbk", disks=[], size=5,
                      gfs=["W", "M"], gfs_dates={"W": "2026-10-25"})
    (view,) = points_from_chain([rp])
    assert view.kind == "full" and view.size == 5
    assert view.gfs == {"W": date(2026, 10, 25), "M": at(0).date()}
    with pytest.raises(ValueError, match="forward chains"):
        points_from_chain([RestorePoint("b", at(0), Kind.ROLLBACK, "b.frb", [])])


def test_immutable_points_are_neither_merged_nor_deleted() -> None:
    """immutable_days = 5 with keep = 2: points younger than 5 days stay (their reason
    says until when), and an immutable chain is forward incremental: no merge at all
    (a merge rewrites the full the locked increments read)."""
    policy = RetentionPolicy(keep=2, immutable_days=5)
    chain = daily(0, 9)
    now = at(9) + timedelta(minutes=30)
    acts = plan_retention(chain, policy, now)
    assert acts == []  # forever-forward would merge d1..d8 into the full
    why = reasons(chain, policy, now)
    assert why["d0"] == why["d4"] == "needed by a later point"
    assert why["d5"] == f"immutable until {(at(5) + timedelta(days=5)).date()}"
    assert why["d9"].startswith("short-term 1/2, immutable until ")
    assert [a.kind for a in plan_retention(chain, RetentionPolicy(keep=2), now)] == \
        ["merge"] * 8  # the rule matters
    # GFS chain: an old chain whose points are still immutable is not deleted
    gfs = RetentionPolicy(keep=2, immutable_days=5, gfs=GfsPolicy(
        weekly=GfsCycle(1, "sunday")))
    two = daily(0, 6) + daily(7, 9)
    kept = apply(two, plan_retention(two, gfs, at(9) + timedelta(minutes=30)))
    assert [p.id for p in kept] == [p.id for p in two]  # d5, d6 hold their whole chain
    plain = RetentionPolicy(keep=2, gfs=gfs.gfs)
    assert [p.id for p in apply(two, plan_retention(two, plain, at(9)))] == ["d7", "d8", "d9"]


def test_immutable_old_chain_goes_whole_once_its_last_point_passed() -> None:
    """Without GFS, an immutable job's older chain (full + increments) is deleted in one
    action once every point of it is past its immutability and short-term retention;
    until then nothing of it goes, least of all a full a kept increment reads."""
    policy = RetentionPolicy(keep=2, immutable_days=5)
    two = daily(0, 6) + daily(7, 12)
    for minutes, want in ((-30, []), (30, ["d0", "d1", "d2", "d3", "d4", "d5", "d6"])):
        now = at(11) + timedelta(minutes=minutes)  # d6 is locked until d11 22:00
        acts = plan_retention(two[:-1], policy, now)
        assert [a.points for a in acts if a.kind == "delete-chain"] == ([want] if want else [])
        assert all(a.kind == "delete-chain" for a in acts)
    reason = plan_retention(two, policy, at(12) + timedelta(minutes=30))[0].reason
    assert reason.endswith("(short-term keeps 2 points; immutable for 5 days)")
    # short-term longer than immutability: short-term decides
    long = RetentionPolicy(keep=9, immutable_days=2)
    assert plan_retention(two, long, at(12) + timedelta(minutes=30)) == []
    assert [a.points[-1] for a in plan_retention(two + [pv(13), pv(14), pv(15)], long,
                                                 at(15) + timedelta(minutes=30))] == ["d6"]


def test_periodic_full_due_every_max_immutable_days_or_a_week() -> None:
    """The rule a run and the preview share: the new increment becomes a synthetic full
    once the newest full is max(immutable_days, 7) calendar days older than it."""
    from engine.immutability import full_period_days, periodic_full_due

    assert full_period_days(RetentionPolicy(keep=2, immutable_days=3)) == 7
    assert full_period_days(RetentionPolicy(keep=2, immutable_days=10)) == 10
    three = RetentionPolicy(keep=2, immutable_days=3)
    assert not periodic_full_due(daily(0, 6), three)
    assert periodic_full_due(daily(0, 7), three)
    # calendar days of the points, not hours: 23:59 on day 7 is due, 00:01 on day 7 too
    late = daily(0, 6) + [RetentionPoint("late", at(7) - timedelta(hours=21, minutes=59),
                                         "incremental", {}, 10)]
    assert periodic_full_due(late, three)
    assert not periodic_full_due(daily(0, 7), RetentionPolicy(keep=2))  # immutability off
    assert not periodic_full_due(daily(0, 9), RetentionPolicy(keep=2, immutable_days=10))
    assert periodic_full_due(daily(0, 10), RetentionPolicy(keep=2, immutable_days=10))
    # the newest full counts (a GFS full too), and a new full is never "due"
    assert not periodic_full_due(daily(0, 6) + daily(7, 13), three)
    assert not periodic_full_due(daily(0, 7)[:-1] + [pv(7, "full")], three)
    assert not periodic_full_due([], three)
