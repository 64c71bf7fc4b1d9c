"""Themes as files, colours only from theme variables, bindings with ids, user keymaps."""

from __future__ import annotations

import asyncio
import re
import tomllib
from pathlib import Path

import pytest
from console_helpers import make_app, ready, screen_text

from console.bindings import binding_ids, binding_owners, own_bindings
from console.keymap import load_keymap
from console.themes import THEMES_DIR, ThemeFileError, load_theme_file, load_themes

CONSOLE = Path(__file__).resolve().parents[2] / "console"
COLOUR_LITERAL = re.compile(
    r"#[0-9a-fA-F]{3,8}\b|\brgba?\(|\bhsla?\(|:\s*(red|green|blue|yellow|white|black|grey|gray|"
    r"magenta|cyan|orange|purple|ansi_\w+)\b")


def test_bundled_themes_load() -> None:
    loaded = load_themes()
    assert loaded.errors == []
    names = {t.name for t in loaded.themes}
    assert {"ferry-dark", "ferry-light", "ferry-high-contrast", "ferry-mono"} <= names
    assert next(t for t in loaded.themes if t.name == "ferry-light").dark is False


@pytest.mark.parametrize("body, problem", [
    ('name = "x"\nprimary = "nope"\n', "'nope' is not a colour"),
    ('name = "x"\n', "'primary' colour is required"),
    ('primary = "#fff"\n', "'name' must be a non-empty string"),
    ('name = "x"\nprimary = "#fff"\nshiny = true\n', "unknown key 'shiny'"),
    ('name = "x"\nprimary = "#fff"\ndark = "yes"\n', "'dark' must be bool"),
    ('name = "x"\nprimary = \n', "bad.toml: "),
])
def test_bad_theme_file_is_one_clear_message(tmp_path: Path, body: str, problem: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body)
    with pytest.raises(ThemeFileError) as info:
        load_theme_file(path)
    assert problem in str(info.value) and "bad.toml" in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_theme_is_skipped_and_others_load(tmp_path: Path) -> None:
    (tmp_path / "good.json").write_text('{"name": "good", "primary": "#336699"}')
    (tmp_path / "bad.toml").write_text('name = "bad"\nprimary = "#zzz"\n')
    (tmp_path / "dup.toml").write_text('name = "good"\nprimary = "#000"\n')
    loaded = load_themes(tmp_path)
    assert [t.name for t in loaded.themes] == ["good"]
    assert len(loaded.errors) == 2 and all(e.startswith("theme skipped: ") for e in loaded.errors)


def _css_blocks() -> list[tuple[str, str]]:
    blocks = [(str(p), p.read_text()) for p in CONSOLE.rglob("*.tcss")]
    for path in CONSOLE.rglob("*.py"):
        text = path.read_text()
        for match in re.finditer(r'(DEFAULT_CSS|CSS)\s*=\s*"""(.*?)"""', text, re.S):
            blocks.append((f"{path}:{match.group(1)}", match.group(2)))
    return blocks


def test_no_hard_coded_colours_in_css() -> None:
    blocks = _css_blocks()
    assert len(blocks) > 10
    for where, css in blocks:
        assert not COLOUR_LITERAL.search(css), f"hard-coded colour in {where}"


def test_every_binding_has_id_and_description() -> None:
    seen: dict[str, str] = {}
    for owner in binding_owners():
        for binding in own_bindings(owner):
            assert binding.id, f"{owner.__name__}: {binding.key} has no id"
            assert binding.description, f"{owner.__name__}: {binding.id} has no description"
            assert seen.setdefault(binding.id, owner.__name__) == owner.__name__, \
                f"binding id {binding.id} used twice"
    assert {"job.start", "job.hold", "job.resume", "job.stop", "app.quit", "app.help",
            "table.down", "table.up", "table.first", "table.last"} <= set(seen)


def test_keymap_file(tmp_path: Path) -> None:
    path = tmp_path / "keymap.toml"
    path.write_text('"job.start" = "S"\n"app.quit" = ["q", "ctrl+q"]\n"nope.id" = "z"\n'
                    '"job.hold" = 3\n')
    loaded = load_keymap(path, known_ids=binding_ids())
    assert loaded.keymap == {"job.start": "S", "app.quit": "q,ctrl+q"}
    assert len(loaded.errors) == 2
    assert load_keymap(tmp_path / "missing.toml").keymap == {}
    (tmp_path / "broken.toml").write_text("= oops")
    assert "ignored" in load_keymap(tmp_path / "broken.toml").errors[0]


def test_keymap_remaps_the_running_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "keymap.toml"
    path.write_text('[keymap]\n"job.chain" = "C"\n')
    monkeypatch.setenv("FERRY_KEYMAP", str(path))

    async def run() -> None:
        app = make_app()
        async with app.run_test(size=(100, 30)) as pilot:
            await ready(pilot)
            assert "C Chains" in screen_text(app)
            await pilot.press("c")  # the old key does nothing now
            await ready(pilot)
            assert type(app.screen).__name__ == "OverviewScreen"
            await pilot.press("C")
            await ready(pilot)
            assert type(app.screen).__name__ == "ChainScreen"

    asyncio.run(run())


def test_no_color_starts_in_mono(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert make_app().theme == "ferry-mono"


def test_themes_dir_exists() -> None:
    assert THEMES_DIR.is_dir()


ANSI_FAMILY = {"green": {2, 10}, "yellow": {3, 11}, "red": {1, 9}}


@pytest.mark.parametrize("name", ["dark", "light"])
def test_sixteen_colour_palette_keeps_state_colours(name: str) -> None:
    """TERM=xterm: Success stays green, Warning yellow, Failed red; footer keys (accent)
    never look like errors."""
    from rich.color import Color, ColorSystem

    data = tomllib.loads((THEMES_DIR / f"{name}.toml").read_text())

    def ansi(key: str) -> int | None:
        return Color.parse(data[key]).downgrade(ColorSystem.STANDARD).number

    assert ansi("success") in ANSI_FAMILY["green"]
    assert ansi("warning") in ANSI_FAMILY["yellow"]
    assert ansi("error") in ANSI_FAMILY["red"]
    assert ansi("accent") not in ANSI_FAMILY["red"]
