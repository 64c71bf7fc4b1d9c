"""Export a point and check it deeply from the console: the reads that may need the
encryption password.

The password is asked in a masked prompt for each action, handed to the engine in
a thread worker and dropped: the console keeps it nowhere (no attribute, no
history, no log), as `ferry export` takes it from the environment per call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from console.screens.prompt import PromptModal
from engine.errors import one_line
from engine.jobs.load import JobSpec
from engine.model import RestorePoint

if TYPE_CHECKING:
    from console.app import FerryConsole

__all__ = ["deep_check_flow", "export_flow"]


def _latest(app: FerryConsole, key: str, machine: str) -> RestorePoint | None:
    info = app.store.machine_info(key, machine)
    target = info.target if info is not None else None
    return target.points[-1] if target is not None and target.points else None


def _target(app: FerryConsole, key: str,
            machine: str | None) -> tuple[JobSpec, str, RestorePoint] | None:
    """The job's spec, the machine and its newest copied point, or None (after saying why)."""
    entry = app.store.jobs.get(key)
    spec = entry.spec if entry is not None else None
    if spec is None:
        app.notify("The job file is not valid: fix it first", severity="warning")
        return None
    if machine is None:
        app.notify("Select a machine (under its job) first", severity="warning")
        return None
    point = _latest(app, key, machine)
    if point is None:
        app.notify(f"{machine}: no copied restore point yet", severity="warning")
        return None
    return spec, machine, point


def _ask_password(app: FerryConsole, spec: JobSpec, then: Callable[[str | None], None]) -> None:
    app.push_screen(PromptModal(f"Encryption password of {spec.name}", password=True,
                                placeholder="never stored"), then)


def export_flow(app: FerryConsole, key: str, machine: str | None) -> None:
    """Ask where to, then (encrypted points) the password; export the newest point."""
    found = _target(app, key, machine)
    if found is None:
        return
    spec, name, point = found
    default = str(Path.cwd() / f"{name}-{point.id}")

    def where(answer: str | None) -> None:
        if not answer:
            return
        out = Path(answer).expanduser()
        if not point.encrypted:
            _export(app, spec, name, point.id, out, None)
            return

        def password(text: str | None) -> None:
            if text:
                _export(app, spec, name, point.id, out, text.encode())

        _ask_password(app, spec, password)

    app.push_screen(PromptModal(f"Export {name} {point.time:%Y-%m-%d %H:%M} to folder",
                                value=default), where)


def _export(app: FerryConsole, spec: JobSpec, machine: str, point_id: str, out: Path,
            password: bytes | None) -> None:
    def work() -> None:
        try:
            paths = app.backend.export_point(spec, machine, point_id, out, password)
        except Exception as exc:  # one line in a toast, never a traceback
            app.call_from_thread(app.notify, f"{machine}: export failed: {one_line(exc)}",
                                 title="Export", severity="error", timeout=10)
            return
        app.call_from_thread(app.notify, f"{machine}: {len(paths)} disk(s) written to {out}",
                             title="Export")

    app.notify(f"{machine}: exporting to {out}…", title="Export")
    app.run_worker(work, thread=True, group="export", exit_on_error=False,
                   description="export")


def deep_check_flow(app: FerryConsole, key: str, machine: str | None) -> None:
    """Ask the password, then authenticate and decrypt every point of the machine."""
    found = _target(app, key, machine)
    if found is None:
        return
    spec, name, point = found
    if not point.encrypted:
        app.notify(f"{name}: not encrypted; `ferry check` verifies it without a password",
                   severity="warning")
        return

    def password(text: str | None) -> None:
        if not text:
            return
        secret = text.encode()

        def work() -> None:
            try:
                res = app.backend.check_deep(spec, name, secret)
            except Exception as exc:
                app.call_from_thread(app.notify, f"{name}: deep check failed: {one_line(exc)}",
                                     title="Deep check", severity="error", timeout=10)
                return
            if res.ok:
                text_ = (f"{name}: ok, {len(res.points)} point(s), {res.blocks} blocks "
                         "authenticated and decrypted")
                app.call_from_thread(app.notify, text_, title="Deep check")
            else:
                first = (res.errors or [f"disk {c.disk} block {c.block} in {c.file}: {c.reason}"
                                        for c in res.corrupt])[0]
                bad = len(res.corrupt) + len(res.errors)
                app.call_from_thread(app.notify, f"{name}: {bad} problem(s): {first}",
                                     title="Deep check", severity="error", timeout=10)

        app.notify(f"{name}: checking every point…", title="Deep check")
        app.run_worker(work, thread=True, group="deep-check", exit_on_error=False,
                       description="deep check")

    _ask_password(app, spec, password)
