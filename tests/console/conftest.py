"""Console test hygiene: no user config or colour settings leak in, no blinking cursors.

Helpers live in `console_helpers.py` (other test folders have a conftest.py too, so
test modules never import from `conftest`).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[None]:
    for name in ("NO_COLOR", "TEXTUAL_THEME", "FERRY_KEYMAP", "TEXTUAL_COLOR_SYSTEM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg")))
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    monkeypatch.setenv("LANG", "en_US.UTF-8")
    # Freeze the Input cursor blink (a wall-clock timer) for deterministic snapshots.
    from textual.widgets import Input

    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)
    yield
