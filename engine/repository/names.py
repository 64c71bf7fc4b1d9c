"""Job, machine and disk names as folder and file names: the one rule (`safe_name`).

Apart from `repository.py` so that checking a job file's names does not import the
chain and container code (the job-file load path stays cheap).
"""

from __future__ import annotations

import unicodedata

from engine.errors import FerryError


class BadName(FerryError, ValueError):
    """A job, machine or disk name that could leave the repository folder."""


def safe_name(name: str, what: str = "name") -> str:
    """Return `name` if it is usable as a folder/file name, else raise BadName."""
    if not name or not name.strip():
        raise BadName(f"{what} is empty")
    if "/" in name or "\\" in name:
        raise BadName(f"{what} {name!r} contains a path separator")
    if name in (".", "..") or ".." in name:
        raise BadName(f"{what} {name!r} contains '..'")
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in name):
        raise BadName(f"{what} {name!r} contains a control character")
    if len(name.encode()) > 200:
        raise BadName(f"{what} {name[:20]!r}... is too long")
    return name


__all__ = ["BadName", "safe_name"]
