"""The overview answers "is everything OK?": a job past its `[schedule] rpo` is Warning."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from console_fixtures import StaticBackend
from console_helpers import DR_KEY, job_line, make_app, ready, screen_text

from console.overview import overview_rows
from console.records import JobEntry
from console.store import Health

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]


class RpoBackend(StaticBackend):
    """The fixture jobs, DR copy with `rpo = "26h"` and SQL immediate with a 60-day RPO
    (its newest copy is 21 days old at the manual clock's 2026-11-25 22:00)."""

    def discover(self) -> list[JobEntry]:
        out = super().discover()
        for entry in out:
            if entry.spec is not None and entry.spec.name == "DR copy":
                entry.spec.schedule.rpo = 26 * 3600.0
            if entry.spec is not None and entry.spec.name == "SQL immediate":
                entry.spec.schedule.rpo = 60 * 86400.0
        return out


def test_overview_shows_rpo_warning_for_a_job_past_its_rpo() -> None:
    asyncio.run(_rpo_warning())


async def _rpo_warning() -> None:
    app = make_app(backend=RpoBackend())
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        rows = {r.key: r for r in overview_rows(app.store, app.clock.now())}
        dr = rows[DR_KEY]
        assert dr.rpo == "late" and dr.health == Health.WARNING
        assert dr.reason.startswith("RPO 1d 2h missed: db01 newest copy 22d old, "
                                    "web01 newest copy 21d old, web02 has no copy yet")
        sql = next(r for r in rows.values() if r.name == "SQL immediate")
        assert sql.rpo == "ok" and sql.health == Health.OK
        offsite = next(r for r in rows.values() if r.name == "Offsite weekly")
        assert offsite.rpo == "-"
        machines = {r.machine: r for r in rows.values() if r.job_key == DR_KEY and r.machine}
        assert machines["web02"].rpo == "late"
        assert machines["web02"].reason.startswith("no copy yet (RPO 1d 2h)")
        assert job_line(app, "DR copy")[:8] == ["DR", "copy", "Idle", "Warning", "23h", "ago",
                                               "late", "7"]
        text = screen_text(app)
        assert "need attention" in text
        assert "RPO 1d 2h missed" in text  # the details pane says why, in human units


def test_history_says_the_job_is_past_its_rpo() -> None:
    async def body() -> None:
        app = make_app(backend=RpoBackend())
        async with app.run_test(size=(80, 24)) as pilot:
            await ready(pilot)
            app.nav.open_history(DR_KEY)
            await ready(pilot)
            text = " ".join(screen_text(app).split())
            assert "Warning · DR copy: RPO 1d 2h missed: db01 newest copy 22d old" in text

    asyncio.run(body())


def test_without_rpo_nothing_is_late() -> None:
    asyncio.run(_no_rpo())


async def _no_rpo() -> None:
    app = make_app()
    async with app.run_test(size=(160, 48)) as pilot:
        await ready(pilot)
        rows = overview_rows(app.store, app.clock.now())
        assert {r.rpo for r in rows} == {"-", ""}


@pytest.mark.parametrize("size", SIZES)
def test_overview_rpo_warning(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(backend=RpoBackend()), terminal_size=size,
                        run_before=ready)
