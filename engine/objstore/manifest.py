"""Restore point manifests and block object names: the object layout.

Under `<prefix>/<job>/<machine>/`:

* `packs/<16 hex>.<p|sp>` - the stored payloads of several blocks (up to ~4 MiB)
  back to back (`sp`: sealed, i.e. encrypted); a manifest entry names its pack, its
  offset and the xxh3-64 of its stored bytes (checked by every ranged read); the
  user metadata `xxh3` is the xxh3-64 of the whole object. One request per ~4 MiB
  instead of one per block: the gateway's cost is per object, not per byte;
* `blocks/<xxh3-128 hex>.<z|r|sz|sr>` - one block's stored payload (zstd frame or
  raw; `s`: sealed), named by the digest of its raw bytes (keyed when encrypted):
  what buckets written before packs hold, and what a repair writes (a reader whose
  packed copy is damaged falls back to it, so one repair heals every point); its
  user metadata `xxh3` is the xxh3-64 of the stored bytes (checked on every read);
* `points/<point id>-<tag>.mf` - one manifest per layer of a point: per disk its
  size and the blocks this layer holds (like a backup file's index, without data);
* `chain.json` - the machine's chain, naming the manifests: the single commit point;
* `index-epoch` - changes before any block is deleted (invalidates block index caches).

A manifest is zstd(JSON head + packed entries) + xxh3-64 of the compressed bytes.
Version 1 (`FERRYMF1`) entries name `blocks/` objects only; version 2 (`FERRYMF2`,
written since packs) add pack id, offset and stored checksum (pack 0 = `blocks/`).
In memory a packed entry's `Entry.offset` is `pack << 32 | offset` (`pack_loc`), so
merges and synthetic fulls carry locations along with the entries they reuse.
"""

from __future__ import annotations

import json
import secrets
import struct
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

import xxhash
import zstandard

from engine.errors import FerryError
from engine.keys import OVERHEAD
from engine.repository.container import (
    FLAG_RAW,
    FLAG_SEALED,
    FLAG_ZERO,
    FLAG_ZSTD,
    DiskIndex,
    Entry,
    stored_problem,
)
from engine.repository.fileformat import stored_check

if TYPE_CHECKING:
    from engine.objstore.store import Bucket

MAGIC = b"FERRYMF1"
MAGIC2 = b"FERRYMF2"
_ENTRY = struct.Struct("<QIIB16s")  # block, stored length, raw length, flags, digest
_ENTRY2 = struct.Struct("<QIIB16sQIQ")  # ... + pack id, offset in it, xxh3-64 of stored
MAX_MANIFEST = 256 << 20  # bytes of one manifest object (hostile-size bound)
MAX_BLOCK_SIZE = 64 << 20
# sealed (encrypted) payloads get their own names: ciphertext never shares an object
# with plaintext, and their digests are keyed per chain anyway
SUFFIX = {FLAG_ZSTD: "z", FLAG_RAW: "r", FLAG_ZSTD | FLAG_SEALED: "sz", FLAG_RAW | FLAG_SEALED: "sr"}
STORED_FLAGS = frozenset(SUFFIX) | {FLAG_ZERO}
FLAG_OF = {v: k for k, v in SUFFIX.items()}


class ManifestError(FerryError):
    """A manifest object that is damaged or not one."""


def block_name(digest: bytes, flags: int) -> str:
    return f"blocks/{digest.hex()}.{SUFFIX[flags]}"


PACK_SUFFIX = {False: "p", True: "sp"}  # sealed or not: one pack never mixes them
PACK_BITS = 32  # Entry.offset = pack << PACK_BITS | offset in the pack


def pack_loc(pack: int, offset: int) -> int:
    return pack << PACK_BITS | offset


def split_loc(loc: int) -> tuple[int, int]:
    """(pack id, offset in it) of an entry's `offset`; pack 0 = its own `blocks/` object."""
    return loc >> PACK_BITS, loc & ((1 << PACK_BITS) - 1)


def pack_name(pack: int, sealed: bool) -> str:
    return f"packs/{pack:016x}.{PACK_SUFFIX[sealed]}"


def new_pack_id() -> int:
    return secrets.randbits(63) or 1  # 63 bits: a signed SQLite INTEGER holds it


def parse_pack_name(name: str) -> int | None:
    """The pack id of `packs/<16 hex>.<p|sp>`, None for anything else."""
    stem, _, suffix = name.rpartition("/")[2].partition(".")
    if len(stem) != 16 or suffix not in PACK_SUFFIX.values():
        return None
    try:
        return int(stem, 16) or None
    except ValueError:
        return None


def object_name(e: Entry) -> str:
    """The object holding `e`'s stored bytes: its pack, or its own `blocks/` object."""
    pack, _ = split_loc(e.offset)
    if pack:
        return pack_name(pack, bool(e.flags & FLAG_SEALED))
    return block_name(e.digest, e.flags)


def parse_block_name(name: str) -> tuple[bytes, int] | None:
    """(digest, flags) of `blocks/<hex>.<z|r>`, None for anything else."""
    stem, _, suffix = name.rpartition("/")[2].partition(".")
    if len(stem) != 32 or suffix not in FLAG_OF:
        return None
    try:
        return bytes.fromhex(stem), FLAG_OF[suffix]
    except ValueError:
        return None


def manifest_name(point_id: str) -> str:
    return f"points/{point_id}-{secrets.token_hex(4)}.mf"


@dataclass
class Manifest:
    """One layer of a point: the point record it was written for, and its block index."""

    state: str  # the point id this layer describes
    block_size: int
    disks: dict[str, DiskIndex]
    lock_until: str = ""  # ISO time (UTC) of the Object Lock on this manifest, "" = none
    point: dict[str, Any] | None = None  # the chain entry it was written for (rebuild aid)

    def encode(self) -> bytes:
        head = json.dumps({"state": self.state, "block_size": self.block_size,
                           "lock_until": self.lock_until, "point": self.point,
                           "disks": [{"name": d.name, "size": d.size, "count": len(d.blocks)}
                                     for d in self.disks.values()]}).encode()
        parts = [MAGIC2, struct.pack("<I", len(head)), head]
        for d in self.disks.values():
            for b in sorted(d.blocks):
                e = d.blocks[b]
                pack, off = split_loc(e.offset)
                parts.append(_ENTRY2.pack(b, e.stored, e.raw, e.flags, e.digest, pack, off,
                                          e.check or 0))
        body = zstandard.ZstdCompressor(level=3).compress(b"".join(parts))
        return body + struct.pack("<Q", xxhash.xxh3_64_intdigest(body))

    @classmethod
    def decode(cls, blob: bytes, where: str) -> Manifest:
        if len(blob) < 8 or struct.unpack("<Q", blob[-8:])[0] != xxhash.xxh3_64_intdigest(
                blob[:-8]):
            raise ManifestError(f"{where}: manifest checksum mismatch (object damaged)")
        try:
            raw = zstandard.ZstdDecompressor().decompress(blob[:-8], max_output_size=MAX_MANIFEST)
            if raw[:8] not in (MAGIC, MAGIC2):
                raise ValueError("not a manifest")
            v2 = raw[:8] == MAGIC2
            fmt = _ENTRY2 if v2 else _ENTRY
            (hlen,) = struct.unpack_from("<I", raw, 8)
            head = json.loads(raw[12:12 + hlen])
            pos = 12 + hlen
            bs = int(head["block_size"])
            if not 0 < bs <= MAX_BLOCK_SIZE:
                raise ValueError("bad block size")
            disks: dict[str, DiskIndex] = {}
            for d in head["disks"]:
                end = pos + int(d["count"]) * fmt.size
                if end > len(raw):
                    raise ValueError("truncated")
                blocks = {}
                for row in fmt.iter_unpack(raw[pos:end]):
                    b, stored, rawlen, flags, dg = row[:5]
                    if rawlen > bs or flags not in STORED_FLAGS or \
                            stored > bs + 1024 + OVERHEAD:
                        raise ValueError("bad entry")
                    if not v2:
                        blocks[b] = Entry(0, stored, rawlen, flags, dg)
                        continue
                    pack, off, check = row[5:]
                    if pack >> 63 or (pack and flags == FLAG_ZERO):
                        raise ValueError("bad entry")
                    blocks[b] = Entry(pack_loc(pack, off), stored, rawlen, flags, dg,
                                      check if pack else None)
                pos = end
                disks[str(d["name"])] = DiskIndex(str(d["name"]), int(d["size"]), blocks)
            return cls(str(head["state"]), bs, disks, str(head.get("lock_until") or ""),
                       head.get("point"))
        except ManifestError:
            raise
        except Exception as exc:  # zstd, json, struct, key errors: one line
            raise ManifestError(f"{where}: manifest unreadable ({exc})") from None


def read_entry(bucket: Bucket, machine_key: str, e: Entry) -> bytes:
    """The stored bytes of `e`: a ranged GET of its pack checked against the entry's
    checksum (falling back to the block's own `blocks/` object, which a repair writes),
    or its own object (checked against the object's stored checksum)."""
    from engine.objstore.store import ObjectDamaged, ObjectMissing, S3Error

    if e.flags == FLAG_ZERO:
        return b""
    legacy = f"{machine_key}/{block_name(e.digest, e.flags)}"
    pack, off = split_loc(e.offset)
    if not pack:
        return bucket.get(legacy, e.stored + 1)
    key = f"{machine_key}/{pack_name(pack, bool(e.flags & FLAG_SEALED))}"
    problem: S3Error
    try:
        data = bucket.get_range(key, off, e.stored)
        if len(data) == e.stored and stored_check(data) == e.check:
            return data
        problem = ObjectDamaged(f"s3://{bucket.name}/{key} at {off}: stored checksum "
                                f"mismatch (object damaged)")
    except ObjectMissing as exc:
        problem = exc
    repaired = bucket.try_get(legacy, e.stored + 1)
    if repaired is None:
        raise problem
    return repaired


class ManifestLayer:
    """A manifest opened for reading: what `PointView` expects of a backup file."""

    def __init__(self, bucket: Bucket, machine_key: str, name: str, state: str):
        self.bucket = bucket
        self.machine_key = machine_key
        self.path = PurePosixPath(name)
        key = f"{machine_key}/{name}"
        m = Manifest.decode(bucket.get(key, MAX_MANIFEST), f"s3://{bucket.name}/{key}")
        if m.state != state:
            raise ManifestError(f"s3://{bucket.name}/{key}: describes point {m.state}, "
                                f"not {state}")
        self.manifest = m
        self.block_size = m.block_size
        self.disks = m.disks

    def read_stored(self, e: Entry) -> bytes:
        return read_entry(self.bucket, self.machine_key, e)

    def read_verified(self, e: Entry) -> tuple[bytes, str]:
        """(stored bytes, what is wrong or ""), as `Container.read_verified`."""
        payload = self.read_stored(e)
        return payload, stored_problem(e, payload)

    def close(self) -> None:
        pass
