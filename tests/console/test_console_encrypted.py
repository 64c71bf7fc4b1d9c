"""The console on an encrypted job: a lock on the job, export and deep check ask for the
password in a masked prompt, a wrong one writes nothing, the password is kept nowhere."""

from __future__ import annotations

import asyncio
import contextlib
import io
from pathlib import Path
from typing import Any

import pytest
from console_helpers import screen_text, settle, wait_until
from console_real_repos import build, disk_image
from textual.widgets import Input

from console.app import FerryConsole
from console.overview import machine_row_key
from console.screens.prompt import PromptModal
from console.widgets.job_editor import JobEditor
from console.widgets.overview_table import OverviewTable
from engine.cli import main

PW = "tiger lily 7c1e"
ENV = "FERRY_CONSOLE_TEST_PW"


def encrypted_jobs(tmp_path: Path) -> Path:
    jobs = build(tmp_path, machines=("db01",))
    job = jobs / "dr-copy.toml"
    job.write_text(job.read_text() + f'\n[storage]\nencryption = true\npassword_env = "{ENV}"\n')
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["run", str(job), "--at", "2026-11-25T22:00"]) == 0
    return jobs


def messages(app: FerryConsole) -> list[str]:
    return [n.message for n in app._notifications]


async def answer(pilot: Any, text: str) -> None:
    """Type `text` into the open prompt (replacing its default) and press Enter."""
    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, PromptModal), what="prompt")
    field = app.screen.query_one(Input)
    field.value = ""
    await pilot.press(*text)
    await pilot.press("enter")
    await settle(pilot)


def test_export_and_deep_check_ask_a_masked_password(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, PW)
    jobs = encrypted_jobs(tmp_path)
    monkeypatch.delenv(ENV)  # the console must ask, not find it in its environment
    key = str(jobs / "dr-copy.toml")
    wrong_out, out = tmp_path / "wrong", tmp_path / "out"

    async def body() -> None:
        app = FerryConsole(jobs, pump_interval=0.05, watch_hangup=False)
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_until(pilot, lambda: bool(app.store.machines.get(key)), what="chains")
            await settle(pilot)
            assert "DR copy \N{LOCK}" in screen_text(app)
            app.screen.query_one(OverviewTable).select_key(machine_row_key(key, "db01"))
            await settle(pilot)

            await pilot.press("R")
            await answer(pilot, str(wrong_out))
            await wait_until(pilot, lambda: isinstance(app.screen, PromptModal), what="password")
            field = app.screen.query_one(Input)
            assert field.password and field.value == ""
            await answer(pilot, "not the password")
            await wait_until(pilot, lambda: any("export failed" in m for m in messages(app)),
                             what="wrong-password toast")
            assert not wrong_out.exists()

            await pilot.press("R")
            await answer(pilot, str(out))
            await answer(pilot, PW)
            await wait_until(pilot, lambda: any("written to" in m for m in messages(app)),
                             what="export toast")
            assert (out / "db01-disk0.img").read_bytes() == disk_image("db01")

            await pilot.press("V")
            await answer(pilot, PW)
            await wait_until(pilot, lambda: any("authenticated and decrypted" in m
                                                for m in messages(app)), what="deep check")
            assert all(PW not in m for m in messages(app))
            assert PW not in screen_text(app)

    asyncio.run(body())


def test_switching_encryption_on_in_the_editor_warns_what_to_keep_safe(tmp_path: Path) -> None:
    jobs = build(tmp_path, machines=("db01",))
    key = str(jobs / "dr-copy.toml")

    async def body() -> None:
        app = FerryConsole(jobs, pump_interval=0.05, watch_hangup=False)
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_until(pilot, lambda: key in app.store.jobs, what="jobs")
            await settle(pilot)
            await pilot.press("e")
            await wait_until(pilot, lambda: type(app.screen).__name__ == "EditorScreen",
                             what="editor")
            editor = app.screen.query_one(JobEditor)
            editor.text = editor.text + f'\n[storage]\nencryption = true\npassword_env = "{ENV}"\n'
            await pilot.press("ctrl+s")
            await wait_until(pilot, lambda: any("losing it loses the copy" in m
                                                for m in messages(app)), what="warning")
            assert "encryption = true" in (jobs / "dr-copy.toml").read_text()

    asyncio.run(body())
