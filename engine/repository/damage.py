"""Damaged stored blocks: verified reads for copies, other copies, and the records.

The rule: no unverified byte enters a file. Every payload a transform copies
from one backup file into another (merge, synthesis, compact, reverse rollback,
WAN cache) is read through `VerifiedReader`, which checks it against its index
entry (`fileformat.stored_problem`). A payload that fails is replaced by another
verified copy of the same block (same digest and chain key) from the machine's
own files when there is one; otherwise the block is *damaged*: the transform
writes nothing, and the blocks are recorded in the machine's metadata
(`facts["damaged"]`) so the copy job re-fetches them from its source (the
repair exchange, `engine.copy.repair`), and the chain view shows the point as
damaged until then.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from engine.model import MachineMeta
from engine.repository.container import FLAG_ZERO, Container, ContainerError, Entry

log = logging.getLogger("ferry.integrity")
MAX_RECORDS = 10000  # bounded: metadata read from disk is hostile, and so is its growth


class DamagedBlocks(ContainerError):
    """Stored blocks that failed their check, with no verified copy on this repository."""

    def __init__(self, blocks: list[dict[str, Any]]):
        self.blocks = blocks
        named = ", ".join(f"disk {b['disk']} block {b['block']} in {b['file']}"
                          for b in blocks[:5])
        more = f" and {len(blocks) - 5} more" if len(blocks) > 5 else ""
        super().__init__(f"{len(blocks)} stored block(s) damaged, no verified copy here: "
                         f"{named}{more}")


def record(file: str, point: str, disk: str, block: int, e: Entry, reason: str) -> dict[str, Any]:
    """One damaged block as kept in `facts["damaged"]` (digest as the target knows it)."""
    return {"file": file, "point": point, "disk": disk, "block": int(block),
            "digest": e.digest.hex(), "raw": e.raw, "reason": reason}


def damaged_records(meta: MachineMeta | None) -> list[dict[str, Any]]:
    """The machine's damage records whose file the chain still names (hostile input: checked)."""
    if meta is None:
        return []
    raw = meta.facts.get("damaged")
    files = {p.file for p in meta.points}
    out = []
    for r in raw if isinstance(raw, list) else []:
        if not isinstance(r, dict) or r.get("file") not in files:
            continue
        try:
            bytes.fromhex(str(r["digest"]))
            int(r["block"]), int(r["raw"]), str(r["disk"]), str(r["point"])
        except (KeyError, TypeError, ValueError):
            continue
        out.append(r)
    return out[:MAX_RECORDS]


def add_records(meta: MachineMeta, blocks: list[dict[str, Any]]) -> None:
    """Merge new damage records into the metadata (one per file, disk and block)."""
    have = {(r["file"], r["disk"], r["block"]): r for r in damaged_records(meta)}
    for b in blocks:
        have[(b["file"], b["disk"], b["block"])] = b
    meta.facts["damaged"] = list(have.values())[:MAX_RECORDS]


def clear_records(meta: MachineMeta, fixed: set[tuple[str, str, int]]) -> None:
    """Drop the records of repaired (file, disk, block)s, and of files gone from the chain."""
    left = [r for r in damaged_records(meta) if (r["file"], r["disk"], r["block"]) not in fixed]
    if left:
        meta.facts["damaged"] = left
    else:
        meta.facts.pop("damaged", None)


def damaged_points(meta: MachineMeta) -> dict[str, list[dict[str, Any]]]:
    """point id -> its damaged blocks (a point is damaged when its own file is)."""
    by_file: dict[str, list[dict[str, Any]]] = {}
    for r in damaged_records(meta):
        by_file.setdefault(r["file"], []).append(r)
    return {p.id: by_file[p.file] for p in meta.points if p.file in by_file}


class VerifiedReader:
    """Reads stored payloads of one machine's chain for copying, verified.

    `get` returns a verified (payload, entry) for a block: its own stored copy,
    or another copy of the same block elsewhere in the chain's files (same chain
    key: a sealed payload opens only under its own key). None = damaged; the
    block is then in `self.damaged`.
    """

    def __init__(self, folder: Path, meta: MachineMeta):
        self.folder = folder
        self.meta = meta
        self.damaged: list[dict[str, Any]] = []
        self.replaced = 0  # blocks served from another verified copy
        self._others: dict[str, dict[bytes, list[tuple[Container, Entry]]]] | None = None
        self._open: list[Container] = []

    def close(self) -> None:
        for c in self._open:
            c.close()
        self._open = []

    def __enter__(self) -> VerifiedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, c: Container, e: Entry, disk: str, block: int,
            key: str = "") -> tuple[bytes, Entry] | None:
        if e.flags == FLAG_ZERO:
            return b"", e
        payload, problem = c.read_verified(e)
        if not problem:
            return payload, e
        for other, oe in self._copies(key).get(e.digest, []):
            if oe.raw != e.raw or (other.path == c.path and oe.offset == e.offset):
                continue
            alt, bad = other.read_verified(oe)
            if not bad:
                self.replaced += 1
                log.warning("%s: disk %s block %s: %s; a verified copy in %s is used",
                            c.path.name, disk, block, problem, other.path.name)
                return alt, oe
        log.error("%s: disk %s block %s: %s; no verified copy in this repository",
                  c.path.name, disk, block, problem)
        self.damaged.append(record(c.path.name, c.state, disk, block, e, problem))
        return None

    def _copies(self, key: str) -> dict[bytes, list[tuple[Container, Entry]]]:
        """digest -> stored copies, over every file of the chain sealed with `key`."""
        if self._others is None:
            self._others = {}
            for p in self.meta.points:
                try:
                    c = Container(self.folder / p.file, state=p.id)
                except ContainerError:
                    continue  # a file that does not open offers no copies
                self._open.append(c)
                where = self._others.setdefault(p.key, {})
                for d in c.disks.values():
                    for oe in d.blocks.values():
                        if oe.flags != FLAG_ZERO:
                            where.setdefault(oe.digest, []).append((c, oe))
        return self._others.get(key, {})

    def check(self) -> None:
        """Raise DamagedBlocks when any block had no verified copy."""
        if self.damaged:
            raise DamagedBlocks(self.damaged)
