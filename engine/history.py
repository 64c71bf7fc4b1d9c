"""Job sessions and per-machine task results in SQLite.

The database lives in the target repository (`<repo>/.ferry/history.sqlite`)
unless the job file names another path, so the history travels with the data.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any, Protocol

from engine.model import Status

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
  id TEXT PRIMARY KEY, job TEXT NOT NULL, status TEXT NOT NULL, started TEXT NOT NULL,
  finished TEXT NOT NULL, duration_s REAL, processed INTEGER, read INTEGER,
  transferred INTEGER, written INTEGER, message TEXT, dry_run INTEGER DEFAULT 0,
  kind TEXT DEFAULT 'copy');
CREATE TABLE IF NOT EXISTS tasks (
  session_id TEXT NOT NULL REFERENCES sessions(id), machine TEXT NOT NULL,
  status TEXT NOT NULL, kind TEXT, point TEXT, source_point TEXT, processed INTEGER,
  read INTEGER, transferred INTEGER, written INTEGER, duration_s REAL, held_s REAL,
  bottleneck TEXT, message TEXT, attempts INTEGER DEFAULT 1);
CREATE INDEX IF NOT EXISTS sessions_job ON sessions(job, started);
CREATE TABLE IF NOT EXISTS log (
  session_id TEXT NOT NULL, seq INTEGER NOT NULL, time TEXT NOT NULL, level TEXT NOT NULL,
  machine TEXT, kind TEXT, text TEXT NOT NULL, PRIMARY KEY (session_id, seq));
"""
LOG_KEYS = ("time", "level", "machine", "kind", "text")
MAX_LOG_ROWS = 10000  # read bound: a damaged or foreign database can't flood the console
SESSION_KEYS = ("id", "job", "status", "started", "finished", "duration_s", "processed", "read",
                "transferred", "written", "message", "dry_run", "kind")
# what a session was: a copy run, or a background retention pass (`ferry retain`, the daemon)
KINDS = ("copy", "retention")
TASK_KEYS = ("machine", "status", "kind", "point", "source_point", "processed", "read",
             "transferred", "written", "duration_s", "held_s", "bottleneck", "message", "attempts")


class _Job(Protocol):
    """What history_path needs of a job spec (JobSpec, or a test's stand-in)."""

    @property
    def target(self) -> Any: ...  # engine.jobs.schema.Target: its repository folder


def history_path(spec: _Job) -> Path:
    """Where a job's history is kept."""
    explicit = getattr(spec, "history", None)
    return Path(explicit) if explicit else Path(spec.target.repository) / ".ferry" / "history.sqlite"


class History:
    """A small wrapper; every call opens its own connection (thread-safe, short-lived)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30)
        con.row_factory = sqlite3.Row
        con.executescript(SCHEMA)
        _add_kind_column(con)
        return con

    def record(self, session: dict[str, Any], tasks: list[dict[str, Any]],
               log: list[dict[str, Any]] | None = None) -> None:
        """One session, its task rows and its log lines (`engine.session_log`), at once."""
        with self._connect() as con:
            con.execute(f"INSERT INTO sessions ({','.join(SESSION_KEYS)}) VALUES "
                        f"({','.join('?' * len(SESSION_KEYS))})",
                        [session.get(k) if k != "kind" else session.get(k) or "copy"
                         for k in SESSION_KEYS])
            con.executemany(f"INSERT INTO tasks (session_id,{','.join(TASK_KEYS)}) VALUES "
                            f"(?,{','.join('?' * len(TASK_KEYS))})",
                            [[session["id"]] + [t.get(k) for k in TASK_KEYS] for t in tasks])
            con.executemany(f"INSERT INTO log (session_id,seq,{','.join(LOG_KEYS)}) VALUES "
                            f"(?,?,{','.join('?' * len(LOG_KEYS))})",
                            [[session["id"], i] + [line.get(k) for k in LOG_KEYS]
                             for i, line in enumerate(log or [])])

    def log(self, session_id: str, limit: int = MAX_LOG_ROWS) -> list[dict[str, Any]]:
        """A session's log lines in order (none for sessions recorded before logs were kept)."""
        if not self.path.exists():
            return []
        with self._connect() as con:
            rows = con.execute(f"SELECT {','.join(LOG_KEYS)} FROM log WHERE session_id = ? "
                               "ORDER BY seq LIMIT ?", [session_id, max(0, int(limit))])
            return [dict(r) for r in rows]

    def sessions(self, job: str | None = None, limit: int = 100,
                 kind: str | None = None) -> list[dict[str, Any]]:
        """Newest first; `kind` ("copy" or "retention") keeps only sessions of that kind."""
        if not self.path.exists():
            return []
        where, args = [], []
        if job:
            where.append("job = ?")
            args.append(job)
        if kind:
            where.append("COALESCE(kind, 'copy') = ?")
            args.append(kind)
        with self._connect() as con:
            q = "SELECT * FROM sessions" + (" WHERE " + " AND ".join(where) if where else "")
            rows = con.execute(q + " ORDER BY started DESC, rowid DESC LIMIT ?", args + [limit])
            return [{**dict(r), "kind": r["kind"] or "copy"} for r in rows]

    def machines(self, job: str) -> list[str]:
        """Every machine a session of `job` had a task for (sorted)."""
        if not self.path.exists():
            return []
        with self._connect() as con:
            rows = con.execute("SELECT DISTINCT t.machine FROM tasks t JOIN sessions s "
                               "ON s.id = t.session_id WHERE s.job = ? ORDER BY t.machine",
                               [job])
            return [r[0] for r in rows]

    def copied(self, job: str) -> dict[str, str]:
        """machine -> the source point its latest copy (not Failed) copied."""
        if not self.path.exists():
            return {}
        with self._connect() as con:
            rows = con.execute("SELECT t.machine, t.source_point FROM tasks t JOIN sessions s "
                               "ON s.id = t.session_id WHERE s.job = ? AND t.status != ? "
                               "AND COALESCE(t.source_point, '') != '' "
                               "ORDER BY s.started, s.rowid", [job, str(Status.FAILED)])
            return {r[0]: r[1] for r in rows}

    def tasks(self, session_id: str) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        with self._connect() as con:
            rows = con.execute("SELECT * FROM tasks WHERE session_id = ? ORDER BY machine",
                               [session_id])
            return [dict(r) for r in rows]


def _add_kind_column(con: sqlite3.Connection) -> None:
    """Histories written before sessions had a kind get the column (their rows: copies)."""
    cols = {r[1] for r in con.execute("PRAGMA table_info(sessions)")}
    if "kind" in cols:
        return
    try:
        con.execute("ALTER TABLE sessions ADD COLUMN kind TEXT DEFAULT 'copy'")
        con.commit()
    except sqlite3.OperationalError as exc:  # another process added it a moment ago
        if "duplicate column" not in str(exc):
            raise
