"""The live log: full screen (`F`), searchable (`/` while it has the focus), and it keeps
following the newest lines across a terminal resize."""

from __future__ import annotations

import asyncio

from console_fixtures import JOB
from console_helpers import DR_KEY, make_app, ready

from console.widgets.log_pane import LogPane
from console.widgets.machine_table import MachineTable
from engine import events as ev


def test_live_log_full_screen_search_and_follow_after_resize() -> None:
    async def body() -> None:
        app = make_app()
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            session = app.new_session(DR_KEY)
            app.nav.open_live(DR_KEY)
            await ready(pilot)
            log = app.screen.query_one(LogPane)
            for i in range(80):
                session.sink(ev.LogLine(JOB, "info", f"web0{i % 3}: line {i}"))
            app.pump()
            await ready(pilot)
            assert log.following
            await pilot.press("F")  # the log alone, focused
            await ready(pilot)
            assert log.has_focus and not app.screen.query_one(MachineTable).display
            await pilot.resize_terminal(80, 24)
            await ready(pilot)
            assert log.following and log.scroll_y == log.max_scroll_y  # still at the tail
            session.sink(ev.LogLine(JOB, "info", "web01: after the resize"))
            app.pump()
            await ready(pilot)
            assert log.following and log.lines[-1] == "web01: after the resize"
            await pilot.resize_terminal(120, 40)
            await ready(pilot)
            assert log.following and log.scroll_y == log.max_scroll_y
            await pilot.press("slash", "w", "e", "b", "0", "2", "enter")  # search the log
            await ready(pilot)
            assert log.lines and all("web02" in line for line in log.lines)
            assert "matching" in str(log.border_title)
            await pilot.press("F")
            await ready(pilot)
            assert app.screen.query_one(MachineTable).display

    asyncio.run(body())
