"""Edit a job file's text in the operator's own editor (`$VISUAL`, `$EDITOR`, else vi).

Like `crontab -e`: the text goes to a private temporary file, the console hands
the terminal over (`App.suspend`), and the edited text comes back to be
validated by the engine before anything is written to the job file.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import tempfile
from pathlib import Path

from textual.app import App, SuspendNotSupported

log = logging.getLogger("ferry.console")


def editor_command() -> list[str]:
    text = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    return shlex.split(text) or ["vi"]


def edit_externally(app: App[int], text: str, path: Path) -> str | None:
    """The text after the operator's editor exits; None when it could not run."""
    command = editor_command()
    with tempfile.TemporaryDirectory(prefix="ferry-edit-") as folder:
        scratch = Path(folder) / path.name  # keeps the .toml suffix for highlighting
        scratch.write_text(text, encoding="utf-8")
        try:
            with app.suspend():
                result = subprocess.run([*command, str(scratch)], check=False)
        except SuspendNotSupported:
            app.notify("this terminal cannot hand over to an editor (browser?)",
                       title="$EDITOR", severity="warning")
            return None
        except OSError as exc:
            app.notify(f"{command[0]}: {exc}", title="$EDITOR", severity="error")
            return None
        if result.returncode != 0:
            app.notify(f"{command[0]} exited with {result.returncode}; nothing changed",
                       title="$EDITOR", severity="warning")
            return None
        try:
            return scratch.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("edited copy of %s unreadable: %s", path, exc)
            app.notify(f"the edited copy could not be read: {exc}", title="$EDITOR",
                       severity="error")
            return None
