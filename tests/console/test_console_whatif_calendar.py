"""Issue 11 items 3 and 4 in the console's what-if: the preview follows the job's
schedule with missed runs, runs without a new source point and a policy change on a
day, and says which GFS fulls a switched-off cycle keeps ("2 weekly fulls stay until
..."), in the simulation and on the real chains.

The fixture backend here runs the engine's own preview (`Backend.simulate`, pure: the
fixture job's target does not exist), so the screen shows real rules; the clock is
manual (the first run is the fixture's 2026-11-25 22:00, a Wednesday).
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from pathlib import Path
from typing import Any

from console_fixtures import StaticBackend
from console_helpers import DR_KEY, make_app, ready, screen_text, wait_until
from textual.widgets import Input

from console.backend import Backend
from console.clock import ManualClock

# Sunday 11-29 missed (its weekly full is made Monday), no new point on 12-01, and
# from 12-10 on the weekly cycle off (monthly stays): the fixture job keeps 7 points,
# weekly 4 weeks on Sunday, monthly 12 months in the first week.
# The fixture's target does not exist, so sizes come from the sizing model here
# (with Used empty the what-if sizes from the real chains, as `ferry preview` does).
FIELDS = {"#f-days": "30", "#f-skip": "2026-11-29", "#f-nonew": "2026-12-01",
          "#f-weekly": "0", "#f-from": "2026-12-10", "#f-used": "100GiB"}


class EngineWhatIf(StaticBackend):
    """The fixture data, with the real preview behind the what-if."""

    def simulate(self, spec: Any, policy: Any, start: datetime, days: int, sizing: Any,
                 **what: Any) -> Any:
        self.what_ifs.append(what)
        return Backend.simulate(self, spec, policy, start, days, sizing, **what)


async def _fill(pilot: Any, fields: dict[str, str] = FIELDS) -> None:
    await ready(pilot)
    app = pilot.app
    app.nav.open_whatif(DR_KEY)
    await ready(pilot)
    screen = app.screen
    for selector, value in fields.items():
        screen.query_one(selector, Input).value = value
    screen.recompute()
    await wait_until(pilot, lambda: screen.result is not None and screen.values is not None
                     and screen.values.policy_from == date(2026, 12, 10)
                     and len(screen.result.days) == 30, what="what-if recomputed")
    await app.workers.wait_for_complete()
    await pilot.pause()


def test_whatif_calendar_snapshot(snap_compare: Any) -> None:
    """80x24: the day of the policy change, what it keeps of the weekly cycle."""
    assert snap_compare(make_app(backend=EngineWhatIf()), terminal_size=(80, 24),
                        run_before=_fill)


def test_whatif_follows_the_calendar_and_says_what_a_switched_off_cycle_keeps() -> None:
    async def body() -> None:
        backend = EngineWhatIf()
        app = make_app(backend=backend)
        async with app.run_test(size=(120, 36)) as pilot:
            await _fill(pilot)
            assert backend.what_ifs[-1]["skip"] == frozenset({date(2026, 11, 29)})
            assert backend.what_ifs[-1]["no_new_point"] == frozenset({date(2026, 12, 1)})
            # setting "From" shows that day: the change and the weekly fulls it keeps
            text = screen_text(app)
            assert "2026-12-10" in text and "retention policy changed" in text
            assert "2 weekly fulls stay until 2027-01-03" in text
            assert "(cycle off)" in text  # the kept fulls' reasons say why they stay
            for steps, day, line in ((9, "2026-12-01", "no new source point at 2026-12-01"),
                                     (1, "2026-11-30", "weekly full made (catch-up for 2026-11-29)"),
                                     (1, "2026-11-29", "no run at 2026-11-29")):
                for _ in range(steps):
                    await pilot.press("pageup")
                await pilot.pause()
                text = screen_text(app)
                index = (date.fromisoformat(day) - date(2026, 11, 25)).days + 1
                assert f"Day {index}/30 {day}" in text, text
                assert line in text, text

    asyncio.run(body())


def test_whatif_form_refuses_bad_dates_in_one_line() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            app.nav.open_whatif(DR_KEY)
            await ready(pilot)
            screen = app.screen
            screen.query_one("#f-skip", Input).value = "2026-13-01"
            screen.recompute()
            await pilot.pause()
            assert "skip: expected dates like" in screen_text(app)
            screen.query_one("#f-skip", Input).value = ""
            screen.query_one("#f-from", Input).value = "soon"
            screen.recompute()
            await pilot.pause()
            assert "from: expected a date like" in screen_text(app)
            assert screen.values is None or screen.values.policy_from is None

    asyncio.run(body())


def test_real_chains_keep_their_weekly_fulls_when_the_form_switches_weekly_off(
        tmp_path: Path) -> None:
    """Real repositories: one run on Sunday 2026-11-29 gives each of 3 machines a weekly
    full; unticking weekly in the form says all 3 stay until 12-27."""
    path = _real_job_after_a_run(tmp_path, '[retention.gfs]\nweekly = { keep_weeks = 4, '
                                            'day = "sunday" }\n')

    async def body() -> None:
        app = _console_on(path)
        async with app.run_test(size=(120, 36)) as pilot:
            screen = await _whatif_of(pilot, path)
            assert "Real chains" not in screen_text(app)
            screen.query_one("#f-weekly", Input).value = "0"
            screen.recompute()
            await wait_until(pilot, lambda: "Real chains" in screen_text(app), what="note")
            assert "Real chains: 3 weekly fulls stay until 2026-12-27" in screen_text(app)

    asyncio.run(body())


def test_whatif_of_an_immutable_job_says_what_immutability_costs(tmp_path: Path) -> None:
    """A job with `[storage] immutable_days`: the worst-day line adds the space immutability
    costs (the same what-if with immutable_days = 0, as `ferry preview` says it)."""
    path = _real_job_after_a_run(tmp_path, "[storage]\nimmutable_days = 14\n")

    async def body() -> None:
        app = _console_on(path)
        async with app.run_test(size=(160, 40)) as pilot:
            screen = await _whatif_of(pilot, path)
            cost = screen.result.immutability
            assert cost is not None and cost["extra_worst_day"] > 0, cost
            assert "· immutability +" in screen_text(app)

    asyncio.run(body())


def _real_job_after_a_run(tmp_path: Path, extra: str) -> Path:
    """The real sample repositories' job with `extra` tables, copied once on Sunday
    2026-11-29 22:00 (each machine gets its first point)."""
    from console_real_repos import JOB_FILE, build

    from engine.copy.runner import run_job
    from engine.jobs.load import load_job

    path = build(tmp_path) / "dr-copy.toml"
    assert "[storage]" not in JOB_FILE
    path.write_text(JOB_FILE + "\n" + extra)
    assert run_job(load_job(path), at=datetime(2026, 11, 29, 22, 0)).status == "Success"
    return path


def _console_on(path: Path) -> Any:
    from console.app import FerryConsole

    return FerryConsole(path.parent, clock=ManualClock(datetime(2026, 11, 30, 9, 0)),
                        pump_interval=3600.0, watch_hangup=False)


async def _whatif_of(pilot: Any, path: Path) -> Any:
    """The what-if screen of the job at `path`, once its first preview is in."""
    app = pilot.app
    await wait_until(pilot, lambda: bool(app.jobs), what="jobs loaded")
    app.nav.open_whatif(str(path))
    await ready(pilot)
    screen = app.screen
    await wait_until(pilot, lambda: screen.result is not None, what="first preview")
    return screen
