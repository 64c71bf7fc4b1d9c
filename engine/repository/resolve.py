"""Which stored block makes up each block of a restore point.

A point is read through layers, newest first. Forward chains: the point's
increment, the increments before it, then the full. Reverse chains: the
point's rollback, the newer rollbacks, then the full (which holds the newest
state). A layer whose disk is smaller than a block's offset (or lacks the
disk) ends the search: that block did not exist at that state, so it reads as
zeros. That rule keeps grow/shrink/grow sequences exact.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Protocol

import xxhash
import zstandard

from engine.blockio import decompressor
from engine.keys import ChainKey, EncryptionError, KeyRing
from engine.model import DiskInfo, Kind, MachineMeta, Method, RestorePoint
from engine.repository.container import (
    FLAG_SEALED,
    FLAG_ZERO,
    Container,
    DiskIndex,
    Entry,
    decode_block,
    sealed_base,
)


@dataclass
class Located:
    """A block of a point: the file it is stored in and where."""

    layer: int  # index into PointView.layers
    entry: Entry


class Layer(Protocol):
    """One backup file of a point as PointView reads it: a Container, or an object
    storage manifest (`engine.objstore.manifest.ManifestLayer`)."""

    @property
    def path(self) -> PurePath: ...
    @property
    def block_size(self) -> int: ...
    @property
    def disks(self) -> dict[str, DiskIndex]: ...
    def read_stored(self, e: Entry) -> bytes: ...
    def read_verified(self, e: Entry) -> tuple[bytes, str]: ...
    def close(self) -> None: ...


class PointView:
    """A restore point opened for reading; close() releases its files."""

    def __init__(self, folder: Path | None, meta: MachineMeta, point: RestorePoint,
                 keys: KeyRing | None = None,
                 opener: Callable[[RestorePoint], Layer] | None = None):
        """`keys`: opens the chain keys of encrypted layers (reading their blocks needs it).
        `opener` opens one layer (default: the backup file in `folder`); an object
        storage repository passes one that opens the point's manifest instead."""
        self.meta = meta
        self.point = point
        self.keys = keys
        self.layers: list[Layer] = []
        self.layer_keys: list[str] = []  # chain key id of each layer ("" = plaintext)
        self.disks: list[DiskInfo] = list(point.disks)
        try:
            for p in layer_points(meta, point):
                if opener is not None:
                    self.layers.append(opener(p))
                else:
                    assert folder is not None
                    self.layers.append(Container(folder / p.file, state=p.id))
                self.layer_keys.append(p.key)
        except Exception:
            self.close()
            raise
        self.block_size = self.layers[-1].block_size if self.layers else meta.block_size
        self._maps: dict[str, dict[int, Located]] = {}

    def close(self) -> None:
        for c in self.layers:
            c.close()

    def __enter__(self) -> PointView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def blocks(self, disk: str) -> dict[int, Located]:
        """Every non-zero block of `disk` at this point -> where it is stored."""
        if disk in self._maps:
            return self._maps[disk]
        bs = self.block_size
        merged: dict[int, Located] = {}
        for i in range(len(self.layers) - 1, -1, -1):  # oldest state first
            d = self.layers[i].disks.get(disk)
            if d is None:
                merged = {}
                continue
            nblocks = -(-d.size // bs)
            merged = {b: loc for b, loc in merged.items() if b < nblocks}
            for b, e in d.blocks.items():
                if e.flags == FLAG_ZERO:
                    merged.pop(b, None)
                else:
                    merged[b] = Located(i, e)
        self._maps[disk] = merged
        return merged

    def digests(self, disk: str) -> dict[int, bytes]:
        return {b: loc.entry.digest for b, loc in self.blocks(disk).items()}

    def size(self, disk: str) -> int:
        for d in self.disks:
            if d.name == disk:
                return d.size
        return 0

    def read_stored(self, loc: Located) -> bytes:
        return self.layers[loc.layer].read_stored(loc.entry)

    @property
    def encrypted(self) -> bool:
        return any(self.layer_keys)

    def chain_key(self, layer: int) -> ChainKey | None:
        """The key of a layer (None = plaintext); PasswordError when the ring cannot open it."""
        kid = self.layer_keys[layer]
        if not kid:
            return None
        if self.keys is None:
            from engine.password import PasswordError

            raise PasswordError("the restore point is encrypted: a password is needed")
        return self.keys.open(kid, self.meta.keys.get(kid))

    def open_keys(self) -> None:
        """Open every layer's chain key now (a wrong password fails before any output)."""
        for i in range(len(self.layers)):
            self.chain_key(i)

    def read_verified(self, loc: Located) -> tuple[bytes | None, str]:
        """(raw block, "") or (None, what is wrong): opened (sealed blocks), decoded and
        checked against its digest (keyed for encrypted layers)."""
        e = loc.entry
        payload = self.read_stored(loc)
        key = self.chain_key(loc.layer) if e.flags & FLAG_SEALED else None
        if key is not None:
            try:
                payload = key.open(payload, e.digest, e.raw, sealed_base(e.flags))
            except EncryptionError:
                return None, "authentication failed (ciphertext or its index entry changed)"
        try:
            data = decode_block(payload, e, decompressor(), opened=key is not None)
        except zstandard.ZstdError:
            return None, "cannot decompress"
        if len(data) != e.raw:
            return None, "wrong length"
        plain = xxhash.xxh3_128_digest(data)
        if (key.digest(plain, len(data)) if key is not None else plain) != e.digest:
            return None, "digest mismatch"
        return data, ""

    def read_checked(self, loc: Located) -> tuple[bytes | None, str]:
        """(stored bytes, "") or (None, what is wrong) without opening a sealed block:
        checked against the stored bytes' checksum (version-2 files; older ones by length)."""
        stored, problem = self.layers[loc.layer].read_verified(loc.entry)
        return (None, problem) if problem else (stored, "")

    def where(self, loc: Located) -> str:
        """The file a block is stored in, for messages."""
        return self.layers[loc.layer].path.name


def layer_points(meta: MachineMeta, point: RestorePoint) -> list[RestorePoint]:
    """The points whose files are read to restore `point`, newest state first."""
    pts = meta.points
    k = next(i for i, p in enumerate(pts) if p.id == point.id)
    if meta.method == Method.REVERSE and point.kind != Kind.FULL or (
        point.kind == Kind.ROLLBACK
    ):
        out = []
        for p in pts[k:]:
            out.append(p)
            if p.kind == Kind.FULL:
                return out
        raise LookupError(f"rollback point {point.id} has no full after it")
    out = []
    for p in reversed(pts[: k + 1]):
        out.append(p)
        if p.kind == Kind.FULL:
            return out
    raise LookupError(f"point {point.id} has no full before it")
