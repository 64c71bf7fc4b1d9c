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
from typing import NamedTuple

from engine.objstore.manifest import pack_loc, parse_block_name, split_loc
from engine.repository.container import Entry

UNKNOWN = -1  # lock_until not known (rebuilt from a LIST): ask the bucket when it matters
COLUMNS = ["digest", "flags", "stored", "lock_until", "pack", "off", "chk"]


class Hit(NamedTuple):
    """Where the bucket holds a block: its own object (pack 0) or a range of a pack."""

    flags: int
    stored: int
    lock_until: int  # epoch seconds, or UNKNOWN
    pack: int = 0
    off: int = 0
    check: int | None = None

    def entry(self, raw: int, digest: bytes) -> Entry:
        return Entry(pack_loc(self.pack, self.off), self.stored, raw, self.flags, digest,
                     self.check if self.pack else None)


def row_of(e: Entry, lock_until: int) -> tuple[bytes, int, int, int, int, int, int | None]:
    """The index row of an entry written (or found in a manifest) at `e`'s location
    (the unsigned 64-bit checksum stored as SQLite's signed INTEGER)."""
    pack, off = split_loc(e.offset)
    chk = e.check - (1 << 64) if pack and e.check is not None and e.check >> 63 else e.check
    return e.digest, e.flags, e.stored, lock_until, pack, off, chk if pack else None


class BlockIndex:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v TEXT)")
        have = [r[1] for r in self.db.execute("PRAGMA table_info(blocks)")]
        if have and have != COLUMNS:  # a cache from before packs: rebuilt from the bucket
            self.db.execute("DROP TABLE blocks")
            self.set_epoch("")
        self.db.execute("CREATE TABLE IF NOT EXISTS blocks (digest BLOB PRIMARY KEY, "
                        "flags INT, stored INT, lock_until INT, pack INT, off INT, chk INT) "
                        "WITHOUT ROWID")
        self.db.execute("CREATE INDEX IF NOT EXISTS blocks_pack ON blocks (pack)")

    def close(self) -> None:
        self.db.close()

    def epoch(self) -> str:
        row = self.db.execute("SELECT v FROM kv WHERE k='epoch'").fetchone()
        return row[0] if row else ""

    def set_epoch(self, epoch: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO kv VALUES ('epoch', ?)", (epoch,))

    def lookup(self, digest: bytes) -> Hit | None:
        row = self.db.execute("SELECT flags, stored, lock_until, pack, off, chk FROM blocks "
                              "WHERE digest=?", (digest,)).fetchone()
        if not row:
            return None
        chk = row[5] + (1 << 64) if row[5] is not None and row[5] < 0 else row[5]
        return Hit(row[0], row[1], row[2], row[3], row[4], chk)

    def pack_lock(self, pack: int) -> int | None:
        """The lock recorded for a pack's blocks (None: the cache names none of them)."""
        row = self.db.execute("SELECT min(lock_until), count(*) FROM blocks WHERE pack=?",
                              (pack,)).fetchone()
        return int(row[0]) if row and row[1] else None

    def add(self, rows: Iterable[tuple[bytes, int, int, int, int, int, int | None]]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO blocks VALUES (?,?,?,?,?,?,?)", rows)

    def set_locks(self, rows: Iterable[tuple[int, Entry]]) -> None:
        """Record the lock of the objects holding these entries (where the cache names
        that very object for the digest)."""
        with self.db:
            self.db.executemany(
                "UPDATE blocks SET lock_until=? WHERE digest=? AND pack=? AND off=?",
                ((lock_s, e.digest, *split_loc(e.offset)) for lock_s, e in rows))

    def remove(self, digests: Iterable[bytes], packs: Iterable[int] = ()) -> None:
        """Forget deleted objects: `blocks/` objects by digest, packs by id."""
        with self.db:
            self.db.executemany("DELETE FROM blocks WHERE digest=? AND pack=0",
                                ((d,) for d in digests))
            self.db.executemany("DELETE FROM blocks WHERE pack=?", ((p,) for p in packs))

    def count(self) -> int:
        n: int = self.db.execute("SELECT count(*) FROM blocks").fetchone()[0]
        return n

    def rebuild(self, listing: Iterator[tuple[str, int]], packed: Iterator[Entry],
                epoch: str) -> None:
        """Replace the cache with a LIST of the bucket's `blocks/` and the packed entries
        of the chain's manifests (epoch cleared first). A pack only a killed run wrote is
        not learnt: its blocks are sent again, and GC deletes it."""
        self.set_epoch("")
        with self.db:
            self.db.execute("DELETE FROM blocks")
            for e in packed:
                self.db.execute("INSERT OR REPLACE INTO blocks VALUES (?,?,?,?,?,?,?)",
                                row_of(e, UNKNOWN))
            for name, size in listing:  # a block's own object wins: a repair wrote it
                parsed = parse_block_name(name)
                if parsed:
                    self.db.execute("INSERT OR REPLACE INTO blocks VALUES (?,?,?,?,0,0,NULL)",
                                    (parsed[0], parsed[1], size, UNKNOWN))
        self.set_epoch(epoch)


def new_epoch() -> str:
    return secrets.token_hex(8)
