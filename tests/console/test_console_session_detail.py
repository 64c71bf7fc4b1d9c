"""Enter on a history session: per-machine statistics and its timestamped, searchable log."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from console_helpers import DR_KEY, make_app, ready, screen_text, wait_until

from console.screens.session import SessionScreen
from console.widgets.log_pane import LogPane
from console.widgets.vim_table import VimDataTable

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]


async def _open_session(pilot: Any) -> None:
    await ready(pilot)
    pilot.app.nav.open_history(DR_KEY)
    await ready(pilot)
    await pilot.press("enter")  # the newest session (3, Warning)
    await ready(pilot)


def test_session_detail_shows_statistics_and_the_log() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=(160, 48)) as pilot:
            await _open_session(pilot)
            assert isinstance(app.screen, SessionScreen)
            table = app.screen.query_one("#session-tasks", VimDataTable)
            await wait_until(pilot, lambda: table.row_count == 3, what="task rows")
            db01 = [str(c) for c in table.get_row_at(0)]
            assert db01[:2] == ["db01", "Success"] and "1 action" in db01  # the merge
            assert "2.5x" in db01  # 5 GiB read per 2 GiB sent
            log = app.screen.query_one(LogPane)
            assert log.lines[0] == "2026-11-24 22:00:00 session 3 started: 3 machines"
            assert "22:00:02 [warning] web02: on hold (source lock)" in log.lines[3]
            await pilot.press("slash", "w", "e", "b", "0", "2", "enter")
            await wait_until(pilot, lambda: len(log.lines) == 4, what="search")
            assert all("web02" in line for line in log.lines)
            await pilot.press("F")  # the log alone
            assert not table.display and log.has_focus
            await pilot.press("F")
            assert table.display
            await pilot.press("escape")
            await pilot.pause()
            assert not isinstance(app.screen, SessionScreen)

    asyncio.run(body())


def test_a_session_without_a_kept_log_says_so() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=(160, 48)) as pilot:
            await ready(pilot)
            app.nav.open_history(DR_KEY)
            await ready(pilot)
            await pilot.press("j", "enter")  # session 2: no log in the fixture
            await ready(pilot)
            await wait_until(pilot, lambda: "no log lines were kept" in screen_text(app),
                             what="the empty-log line")

    asyncio.run(body())


@pytest.mark.parametrize("size", SIZES)
def test_session_detail(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=_open_session)
