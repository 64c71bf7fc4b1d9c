"""A local cache of the bucket's block index: which digests a machine's prefix holds.

Looking digests up here instead of asking the bucket makes an increment cost
requests in proportion to the changed blocks. The cache is trusted only while its
epoch equals the bucket's `index-epoch` object, which the garbage collector
replaces before it deletes any block; otherwise it is rebuilt with one LIST per
1000 blocks. A block is added only after its upload succeeded, so the cache may
lack blocks (they are sent again) but never names one the bucket lost.
SQLite keeps memory bounded whatever the number of blocks.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

from engine.objstore.manifest import parse_block_name

UNKNOWN = -1  # lock_until not known (rebuilt from a LIST): ask the bucket when it matters


class BlockIndex:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS blocks (digest BLOB PRIMARY KEY, "
                        "flags INT, stored INT, lock_until INT) WITHOUT ROWID")
        self.db.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)")

    def close(self) -> None:
        self.db.close()

    def epoch(self) -> str:
        row = self.db.execute("SELECT v FROM kv WHERE k='epoch'").fetchone()
        return row[0] if row else ""

    def set_epoch(self, epoch: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO kv VALUES ('epoch', ?)", (epoch,))

    def lookup(self, digest: bytes) -> tuple[int, int, int] | None:
        """(flags, stored length, lock_until epoch seconds or UNKNOWN)."""
        row: tuple[int, int, int] | None = self.db.execute(
            "SELECT flags, stored, lock_until FROM blocks WHERE digest=?", (digest,)).fetchone()
        return row

    def add(self, rows: Iterable[tuple[bytes, int, int, int]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO blocks VALUES (?,?,?,?)", rows)

    def set_locks(self, rows: Iterable[tuple[int, bytes]]) -> None:
        with self.db:
            self.db.executemany("UPDATE blocks SET lock_until=? WHERE digest=?", rows)

    def remove(self, digests: Iterable[bytes]) -> None:
        with self.db:
            self.db.executemany("DELETE FROM blocks WHERE digest=?", ((d,) for d in digests))

    def count(self) -> int:
        n: int = self.db.execute("SELECT count(*) FROM blocks").fetchone()[0]
        return n

    def rebuild(self, listing: Iterator[tuple[str, int]], epoch: str) -> None:
        """Replace the cache with a LIST of the bucket's `blocks/` (epoch cleared first)."""
        self.set_epoch("")
        with self.db:
            self.db.execute("DELETE FROM blocks")
            for name, size in listing:
                parsed = parse_block_name(name)
                if parsed:
                    self.db.execute("INSERT OR REPLACE INTO blocks VALUES (?,?,?,?)",
                                    (parsed[0], parsed[1], size, UNKNOWN))
        self.set_epoch(epoch)


def new_epoch() -> str:
    return secrets.token_hex(8)
