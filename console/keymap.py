"""User keymap: `~/.config/ferry/keymap.toml` remaps bindings by their id.

    # keymap.toml
    "job.start" = "S"
    "app.quit" = "q,ctrl+q"
    [keymap]              # the same, as a table, is also accepted
    "table.down" = "j,down"

The path is `$FERRY_KEYMAP`, else `$XDG_CONFIG_HOME/ferry/keymap.toml`, else
`~/.config/ferry/keymap.toml`. A missing file is fine; a bad one is reported
and ignored, so a typo never locks an operator out of the console.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class KeymapLoad:
    keymap: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    path: Path | None = None


def keymap_path() -> Path:
    explicit = os.environ.get("FERRY_KEYMAP")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ferry" / "keymap.toml"


def load_keymap(path: Path | None = None, known_ids: set[str] | None = None) -> KeymapLoad:
    """Read the keymap; unknown binding ids and non-string keys are reported and skipped."""
    path = path or keymap_path()
    result = KeymapLoad(path=path)
    if not path.is_file():
        return result
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        result.errors.append(f"keymap {path}: {exc}; ignored")
        return result
    table = data.get("keymap", data) if isinstance(data.get("keymap"), dict) else data
    for binding_id, keys in table.items():
        if isinstance(keys, list) and all(isinstance(k, str) for k in keys):
            keys = ",".join(keys)
        if not isinstance(keys, str) or not keys.strip():
            result.errors.append(f"keymap {path.name}: {binding_id!r} needs a key string")
            continue
        if known_ids is not None and binding_id not in known_ids:
            result.errors.append(f"keymap {path.name}: no binding with id {binding_id!r}")
            continue
        result.keymap[binding_id] = keys.replace(" ", "")
    return result
