"""Snapshot tests of every console screen and key state, at 80x24 and 160x48.

Deterministic by construction: fixture backend (no disk), manual clock, scripted
engine events (no engine threads), no blinking cursors. Update after review with
`pytest tests/console --snapshot-update`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from console_fixtures import JOB_TEXT, JOBS_DIR, hold_ticks, run_ticks
from console_helpers import DR_KEY, feed, make_app, ready

from engine.copy.control import RunControl

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((160, 48), id="160x48")]


async def _ready(pilot: Any) -> None:
    await ready(pilot)


async def _live(pilot: Any) -> None:
    await ready(pilot)
    feed(pilot.app, run_ticks(), control=RunControl())
    pilot.app.nav.open_live(DR_KEY)
    await ready(pilot)


async def _held(pilot: Any) -> None:
    await ready(pilot)
    app = pilot.app
    feed(app, hold_ticks(), control=RunControl())
    app.nav.open_live(DR_KEY)
    await ready(pilot)
    await pilot.press("p")  # operator hold through the live screen's binding
    feed(app, [[]])  # one quiet tick: held tasks send nothing
    await ready(pilot)


async def _chain(pilot: Any) -> None:
    await ready(pilot)
    pilot.app.nav.open_chain(DR_KEY, "web01")
    await ready(pilot)


async def _whatif(pilot: Any) -> None:
    await ready(pilot)
    pilot.app.nav.open_whatif(DR_KEY)
    await ready(pilot)


async def _editor_error(pilot: Any) -> None:
    from console.screens.editor import EditorScreen

    await ready(pilot)
    text = JOB_TEXT.replace("keep = 7", "keep = 1").replace('unit = "points"', 'unit = "weeks"')
    pilot.app.push_screen(EditorScreen(JOBS_DIR / "dr-copy.toml", text, job_key=DR_KEY))
    await ready(pilot)
    await pilot.press("ctrl+s")
    await ready(pilot)


async def _history(pilot: Any) -> None:
    await ready(pilot)
    pilot.app.nav.open_history(DR_KEY)
    await ready(pilot)


async def _expanded(pilot: Any) -> None:
    await ready(pilot)
    await pilot.press("j", "j")  # machines are listed under their job: to web01
    await ready(pilot)


@pytest.mark.parametrize("size", SIZES)
def test_main(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=_ready)


@pytest.mark.parametrize("size", SIZES)
def test_main_machine_selected(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=_expanded)


def test_main_filter(snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        await pilot.press("slash", "o", "f", "f")
        await ready(pilot)

    assert snap_compare(make_app(), run_before=run_before)


def test_main_filter_finds_machine_of_collapsed_job(snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        await pilot.press("space")  # collapse DR copy
        await pilot.press("slash", "w", "e", "b", "0", "2", "enter")
        await ready(pilot)

    assert snap_compare(make_app(), run_before=run_before)


def test_main_filter_no_matches(snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        await pilot.press("slash", "z", "z", "z")
        await ready(pilot)

    assert snap_compare(make_app(), run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_live_mid_progress(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=_live)


@pytest.mark.parametrize("size", SIZES)
def test_live_on_hold(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=_held)


def test_live_stop_confirmation(snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await _live(pilot)
        await pilot.press("x")
        await ready(pilot)

    assert snap_compare(make_app(), run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_chain_view(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=_chain)


@pytest.mark.parametrize("size", SIZES)
def test_retention_whatif(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=_whatif)


@pytest.mark.parametrize("size", SIZES)
def test_editor_validation_error(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=_editor_error)


@pytest.mark.parametrize("size", SIZES)
def test_history(snap_compare: Any, size: tuple[int, int]) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=_history)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare: Any, size: tuple[int, int]) -> None:
    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        await pilot.press("question_mark")
        await ready(pilot)

    assert snap_compare(make_app(), terminal_size=size, run_before=run_before)


def test_palette(snap_compare: Any) -> None:
    async def run_before(pilot: Any) -> None:
        await ready(pilot)
        await pilot.press("ctrl+p")
        await ready(pilot)
        await pilot.press("t", "h", "e", "m", "e")
        await ready(pilot)

    assert snap_compare(make_app(), run_before=run_before)


@pytest.mark.parametrize("theme", ["ferry-dark", "ferry-light", "ferry-high-contrast",
                                   "ferry-mono"])
def test_theme_main(snap_compare: Any, theme: str) -> None:
    assert snap_compare(make_app(theme=theme), run_before=_expanded)


@pytest.mark.parametrize("theme", ["ferry-light", "ferry-high-contrast", "ferry-mono"])
def test_theme_live(snap_compare: Any, theme: str) -> None:
    assert snap_compare(make_app(theme=theme), run_before=_held)


def test_bad_theme_file_is_reported(snap_compare: Any, tmp_path: Path) -> None:
    from console.themes import THEMES_DIR

    for source in THEMES_DIR.glob("*.toml"):
        (tmp_path / source.name).write_text(source.read_text())
    (tmp_path / "broken.toml").write_text('name = "broken"\nprimary = "not-a-colour"\n')
    assert snap_compare(make_app(themes_dir=tmp_path), run_before=_ready)
