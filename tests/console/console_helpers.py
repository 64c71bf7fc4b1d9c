"""Helpers shared by the console tests (a uniquely named module: other test folders
have their own conftest.py, so tests import these from here, not from conftest)."""

from __future__ import annotations

from console_fixtures import JOB, JOBS_DIR, StaticBackend

from console.app import FerryConsole
from console.clock import ManualClock

DR_KEY = str(JOBS_DIR / "dr-copy.toml")


def make_app(**kwargs: object) -> FerryConsole:
    """The console over the fixture backend with a manual clock and no pump timer noise."""
    kwargs.setdefault("backend", StaticBackend())
    kwargs.setdefault("clock", ManualClock())
    kwargs.setdefault("pump_interval", 3600.0)
    return FerryConsole(**kwargs)  # type: ignore[arg-type]


async def ready(pilot: object) -> None:
    """Wait until start-up workers (job discovery) have posted their results."""
    from textual.worker import WorkerCancelled

    app = pilot.app  # type: ignore[attr-defined]
    for _ in range(5):  # an exclusive worker (the live scan) replaced meanwhile: wait again
        try:
            await app.workers.wait_for_complete()
            break
        except WorkerCancelled:
            continue
    await pilot.pause()  # type: ignore[attr-defined]
    await pilot.pause()  # type: ignore[attr-defined]


def feed(app: FerryConsole, ticks: list[list[object]], key: str = DR_KEY,
         control: object | None = None) -> None:
    """Script a run: push each tick's events, advance the clock 1 s, pump."""
    session = app.sessions.get(key) or app.new_session(key, control)
    clock = app.clock
    assert isinstance(clock, ManualClock)
    if not ticks:
        return
    session.pump(clock.monotonic())
    for tick in ticks:
        for event in tick:
            session.sink(event)  # type: ignore[arg-type]
        clock.advance(1.0)
        app.pump()


__all__ = ["DR_KEY", "JOB", "make_app", "ready", "feed", "screen_text", "wait_until", "settle",
           "job_line"]


def screen_text(app: FerryConsole) -> str:
    """The active screen as plain text, one line per terminal row (for assertions)."""
    update = app.screen._compositor.render_full_update()
    lines = []
    for line in update.strips:
        lines.append("".join(seg.text for strip in line for seg in strip).rstrip())
    return "\n".join(lines)


def job_line(app: FerryConsole, name: str) -> list[str]:
    """The overview line of job `name`, split into words."""
    return next(line for line in screen_text(app).splitlines()
                if line.strip().startswith(name)).split()


async def wait_until(pilot: object, predicate: object, timeout: float = 10.0,
                     what: str = "condition") -> None:
    """Pause the pilot until `predicate()` is true (fails the test after `timeout`)."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)  # type: ignore[attr-defined]


async def settle(pilot: object) -> None:
    """Let queued messages run without waiting for workers (a live run's worker keeps going)."""
    await pilot.pause()  # type: ignore[attr-defined]
    await pilot.pause(0.05)  # type: ignore[attr-defined]
