"""Session history of an object storage target.

SQLite needs a file, so a run keeps the history in the repository's local state
folder and uploads a copy to `<prefix>/.ferry/history.sqlite` after each session;
`ferry history --repo s3://...` reads that copy.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from engine.objstore.location import parse_s3_url
from engine.objstore.repo import HISTORY_KEY, S3Repository

MAX_HISTORY = 512 << 20


def upload_history(repo: S3Repository, db: Path) -> None:
    if db.is_file():
        repo.bucket.put(repo.loc.key(HISTORY_KEY), db.read_bytes())


def fetch_history(url: str) -> Path:
    """A temporary local copy of the repository's history (empty when it has none)."""
    repo = S3Repository(parse_s3_url(url))
    blob = repo.bucket.try_get(repo.loc.key(HISTORY_KEY), MAX_HISTORY)
    fd, name = tempfile.mkstemp(prefix="ferry-history-", suffix=".sqlite")
    with os.fdopen(fd, "wb") as f:
        f.write(blob or b"")
    return Path(name)
