"""End-to-end pilot tests: the console driving the real engine on real repositories.

Real job files, real repositories built with `ferry backup`, real runs.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from console_helpers import job_line, screen_text, settle, wait_until
from console_real_repos import build

from console.app import FerryConsole
from console.run_model import DONE, ON_HOLD
from console.screens.live import LiveRunScreen
from engine.model import Status


def real_app(jobs: Path) -> FerryConsole:
    return FerryConsole(jobs, pump_interval=0.05, watch_hangup=False)


async def started(pilot: Any) -> None:
    app = pilot.app
    await wait_until(pilot, lambda: bool(app.jobs), what="jobs loaded")
    await settle(pilot)


def test_run_job_until_every_machine_succeeds(tmp_path: Path) -> None:
    jobs = build(tmp_path)

    async def body() -> None:
        app = real_app(jobs)
        async with app.run_test(size=(120, 36)) as pilot:
            await started(pilot)
            key = str(jobs / "dr-copy.toml")
            assert "DR copy" in screen_text(app)
            await pilot.press("s")
            await wait_until(pilot, lambda: isinstance(app.screen, LiveRunScreen))
            session = app.sessions[key]
            await wait_until(pilot, lambda: not session.active, timeout=60, what="run end")
            await settle(pilot)
            rows = session.model.rows
            assert sorted(rows) == ["db01", "web01", "web02"]
            assert all(r.state == DONE and r.status == Status.SUCCESS for r in rows.values()), \
                {n: (r.state, r.status, r.message) for n, r in rows.items()}
            assert app.store.last_status(key) == Status.SUCCESS
            text = screen_text(app)
            assert "Finished: Success" in text and "✓ Success" in text
            await pilot.press("escape")
            await settle(pilot)
            assert job_line(app, "DR copy")[2:4] == ["Idle", "Success"]
            await pilot.press("h")  # history of the session just recorded
            await wait_until(pilot, lambda: "Tasks of" in screen_text(app), what="history")
            text = screen_text(app)
            assert "Sessions · 1" in text and "db01" in text and "web02" in text
            await pilot.press("escape", "c")
            await wait_until(pilot, lambda: "full" in screen_text(app), what="chains")
            assert "#1 · 1 point" in screen_text(app)

    asyncio.run(body())


def test_hold_and_resume_with_a_source_lock(tmp_path: Path) -> None:
    from engine.repository.repository import Repository

    jobs = build(tmp_path)
    lock = Repository(tmp_path / "primary").lock("Daily", "web01", exclusive=True)
    lock.acquire()

    async def body() -> None:
        app = real_app(jobs)
        async with app.run_test(size=(120, 36)) as pilot:
            await started(pilot)
            key = str(jobs / "dr-copy.toml")
            await pilot.press("s")
            await wait_until(pilot, lambda: key in app.sessions)
            session = app.sessions[key]
            rows = session.model.rows

            def web01_waits_alone() -> bool:
                others = [r for n, r in rows.items() if n != "web01"]
                return ("web01" in rows and rows["web01"].state == ON_HOLD
                        and len(others) == 2 and all(r.state == DONE for r in others))

            await wait_until(pilot, web01_waits_alone, timeout=30, what="web01 on hold")
            await settle(pilot)
            assert rows["web01"].hold_by == "source lock"
            assert app.state_of(key).label == "On hold (by source lock)"
            assert "on hold: lock" in screen_text(app)
            await pilot.press("p")  # the operator holds the session too
            assert app.state_of(key).label == "On hold (by operator)"
            lock.release()  # the source job is done; web01 may go on, but the operator holds
            await wait_until(pilot, lambda: rows["web01"].state == ON_HOLD
                             and rows["web01"].hold_by == "operator", what="operator hold")
            await pilot.pause(0.5)
            assert rows["web01"].state == ON_HOLD and session.active
            assert "on hold: operator" in screen_text(app)
            await pilot.press("r")
            await wait_until(pilot, lambda: not session.active, timeout=60, what="run end")
            assert all(r.status == Status.SUCCESS for r in rows.values())
            assert app.store.last_status(key) == Status.SUCCESS

    try:
        asyncio.run(body())
    finally:
        lock.release()


def test_edit_job_error_at_its_line_then_fix_and_save(tmp_path: Path) -> None:
    from console.widgets.job_editor import JobEditor

    jobs = build(tmp_path)
    path = jobs / "dr-copy.toml"
    original = path.read_text()

    async def body() -> None:
        app = real_app(jobs)
        async with app.run_test(size=(120, 36)) as pilot:
            await started(pilot)
            await pilot.press("e")
            await wait_until(pilot, lambda: type(app.screen).__name__ == "EditorScreen")
            editor = app.screen.query_one(JobEditor)
            row = editor.text.splitlines().index("keep = 7")
            editor.move_cursor((row, len("keep = 7")))
            await pilot.press("backspace", "1", "ctrl+s")
            await settle(pilot)
            assert path.read_text() == original  # never write an invalid file
            assert row in editor.error_lines and editor.cursor_location[0] == row
            text = screen_text(app)
            assert f"dr-copy.toml:{row + 1}: retention.keep" in text
            editor.move_cursor((row, len("keep = 1")))
            await pilot.press("backspace", "5", "ctrl+s")
            await settle(pilot)
            assert editor.error_lines == set()
            saved = path.read_text()
            assert "keep = 5" in saved and saved.startswith("# DR copy of the Daily backups")
            await wait_until(pilot, lambda: app.jobs[str(path)].spec.retention.keep == 5,
                             what="job reloaded")

    asyncio.run(body())


def test_whatif_change_changes_the_timeline(tmp_path: Path) -> None:
    jobs = build(tmp_path)

    async def body() -> None:
        app = real_app(jobs)
        async with app.run_test(size=(120, 36)) as pilot:
            await started(pilot)
            await pilot.press("w")
            await wait_until(pilot, lambda: getattr(app.screen, "result", None) is not None,
                             what="preview")
            screen = app.screen
            first = screen.result
            assert len(first.days[-1].points) == 7
            days = len(first.days)  # as `ferry preview` picks: keep + 14 for keep 7
            assert f"Day {days}/{days}" in screen_text(app) and "7 points" in screen_text(app)
            await pilot.press("backspace", "3")
            await wait_until(pilot, lambda: screen.result is not first, what="recompute")
            await wait_until(pilot, lambda: len(screen.result.days[-1].points) == 3,
                             what="3 points kept")
            assert "3 points" in screen_text(app)
            await pilot.press("ctrl+s", "y")
            await wait_until(pilot, lambda: app.jobs[str(jobs / "dr-copy.toml")].spec
                             .retention.keep == 3, what="saved")
            assert "keep = 3" in (jobs / "dr-copy.toml").read_text()

    asyncio.run(body())


def test_schedule_toggle_keeps_comments(tmp_path: Path) -> None:
    from console.screens.confirm import ConfirmModal

    jobs = build(tmp_path)
    path = jobs / "dr-copy.toml"

    async def body() -> None:
        app = real_app(jobs)
        async with app.run_test(size=(120, 36)) as pilot:
            await started(pilot)
            key = str(path)
            await pilot.press("t")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmModal))
            await pilot.press("y")
            await wait_until(pilot, lambda: not app.jobs[key].spec.enabled, what="disabled")
            await settle(pilot)
            text = path.read_text()
            assert "enabled = false" in text and text.startswith("# DR copy of the Daily")
            assert job_line(app, "DR copy")[2] == "Disabled"
            await pilot.press("t")
            await wait_until(pilot, lambda: app.jobs[key].spec.enabled, what="enabled")
            assert "enabled = true" in path.read_text()

    asyncio.run(body())
