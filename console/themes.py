"""Themes as files: `console/theme_files/*.toml` (or `.json`) -> validated `textual.theme.Theme`.

A theme file names its colours with Textual's theme fields:

    name = "ferry-dark"
    dark = true
    primary = "#4ea1ff"          # the only required colour
    secondary = ... accent = ... foreground = ... background = ... surface = ...
    panel = ... boost = ... warning = ... error = ... success = ...
    luminosity_spread = 0.15     # optional
    text_alpha = 0.95            # optional
    [variables]                  # optional Textual CSS variables
    "footer-key-foreground" = "#ffcc00"

A bad file (TOML error, unknown key, colour that does not parse) is skipped
with one clear message; the others still load.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from textual.color import Color, ColorParseError
from textual.theme import Theme

THEMES_DIR = Path(__file__).resolve().parent / "theme_files"  # package data
DEFAULT_THEME = "ferry-dark"
NO_COLOR_THEME = "ferry-mono"

COLOUR_KEYS = ("primary", "secondary", "accent", "foreground", "background", "surface",
               "panel", "boost", "warning", "error", "success")
OTHER_KEYS = {"name": str, "dark": bool, "luminosity_spread": float, "text_alpha": float,
              "variables": dict, "description": str}


class ThemeFileError(ValueError):
    """A theme file that cannot be used, with a one-line reason naming the file."""


@dataclass
class ThemeLoad:
    themes: list[Theme]
    errors: list[str]


def parse_theme(data: dict[str, Any], source: str) -> Theme:
    """Validate one theme's table and build the Theme; raises ThemeFileError."""
    unknown = sorted(set(data) - set(COLOUR_KEYS) - set(OTHER_KEYS))
    if unknown:
        raise ThemeFileError(f"{source}: unknown key {unknown[0]!r}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ThemeFileError(f"{source}: 'name' must be a non-empty string")
    if "primary" not in data:
        raise ThemeFileError(f"{source}: 'primary' colour is required")
    colours: dict[str, str] = {}
    for key in COLOUR_KEYS:
        if key in data:
            colours[key] = _colour(data[key], f"{source}: {key}")
    for key, kind in OTHER_KEYS.items():
        if key in data and key != "name":
            value = data[key]
            ok = isinstance(value, kind) or (kind is float and isinstance(value, int)
                                             and not isinstance(value, bool))
            if not ok:
                raise ThemeFileError(f"{source}: {key!r} must be {kind.__name__}")
    variables: dict[str, str] = {}
    for key, value in (data.get("variables") or {}).items():
        if not isinstance(value, str):
            raise ThemeFileError(f"{source}: variables.{key} must be a string")
        variables[str(key)] = value
    return Theme(
        name=name.strip(),
        dark=bool(data.get("dark", True)),
        luminosity_spread=float(data.get("luminosity_spread", 0.15)),
        text_alpha=float(data.get("text_alpha", 0.95)),
        variables=variables,
        **colours,  # type: ignore[arg-type]
    )


def _colour(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ThemeFileError(f"{where}: colour must be a string like '#1e2030'")
    try:
        Color.parse(value)
    except ColorParseError:
        raise ThemeFileError(f"{where}: {value!r} is not a colour") from None
    return value


def load_theme_file(path: Path) -> Theme:
    """Read and validate one theme file."""
    try:
        raw = path.read_bytes()
        if path.suffix == ".json":
            data = json.loads(raw)
        else:
            data = tomllib.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ThemeFileError(f"{path.name}: {first}") from None
    if not isinstance(data, dict):
        raise ThemeFileError(f"{path.name}: expected a table of theme settings")
    return parse_theme(data, path.name)


def load_themes(folder: Path = THEMES_DIR) -> ThemeLoad:
    """Every valid theme in `folder` (sorted by file name) plus one message per bad file."""
    themes: list[Theme] = []
    errors: list[str] = []
    seen: set[str] = set()
    if not folder.is_dir():
        return ThemeLoad([], [f"themes folder {folder} not found; using built-in themes"])
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".toml", ".json") or path.name.startswith("."):
            continue
        try:
            theme = load_theme_file(path)
        except ThemeFileError as exc:
            errors.append(f"theme skipped: {exc}")
            continue
        if theme.name in seen:
            errors.append(f"theme skipped: {path.name}: name {theme.name!r} already used")
            continue
        seen.add(theme.name)
        themes.append(theme)
    return ThemeLoad(themes, errors)
