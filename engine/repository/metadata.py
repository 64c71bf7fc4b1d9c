"""One machine's metadata file (.fbm): its chain, replaced atomically.

The metadata file is the single commit point of every chain change: a backup
file not named here does not exist for readers, and a container state not
named here is never read. Replacement is write-temp, fsync, rename, fsync-dir.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import xxhash

from engine.errors import FerryError
from engine.model import DiskInfo, Kind, MachineMeta, Method, RestorePoint

FORMAT = 1
log = logging.getLogger("ferry.metadata")


class MetadataError(FerryError):
    """A metadata file that is missing, unreadable or damaged."""


def _point_to_dict(p: RestorePoint) -> dict[str, Any]:
    return {
        "id": p.id, "time": p.time.isoformat(), "kind": p.kind.value, "file": p.file,
        "disks": [{"name": d.name, "size": d.size} for d in p.disks], "size": p.size,
        "gfs": p.gfs, "gfs_dates": p.gfs_dates, "source_point": p.source_point,
        "complete": p.complete, "block_size": p.block_size,
        **({"gfs_assigned": p.gfs_assigned} if p.gfs_assigned else {}),
        **({"gfs_until": p.gfs_until} if p.gfs_until else {}),
        **({"key": p.key} if p.key else {}),
    }


def point_from_dict(d: dict[str, Any]) -> RestorePoint:
    """A point record (as in the .fbm, or as a backup file's index keeps it)."""
    return _point_from_dict(d)


def _point_from_dict(d: dict[str, Any]) -> RestorePoint:
    return RestorePoint(
        id=d["id"], time=datetime.fromisoformat(d["time"]), kind=Kind(d["kind"]), file=d["file"],
        disks=[DiskInfo(x["name"], int(x["size"])) for x in d["disks"]], size=int(d["size"]),
        gfs=list(d.get("gfs", [])), gfs_dates=dict(d.get("gfs_dates", {})),
        source_point=d.get("source_point", ""), complete=bool(d.get("complete", True)),
        block_size=int(d.get("block_size", 0)), key=str(d.get("key", "")),
        gfs_assigned=_iso_dates(d.get("gfs_assigned")), gfs_until=_iso_dates(d.get("gfs_until")),
    )


def _iso_dates(value: object) -> dict[str, str]:
    """flag -> ISO date, refusing anything else (metadata read from disk is hostile)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("GFS dates must be a table of flag -> date")
    out = {}
    for k, v in value.items():
        if k not in ("W", "M", "Y") or not isinstance(v, str):
            raise ValueError(f"bad GFS date entry {k!r}")
        date.fromisoformat(v)
        out[k] = v
    return out


def point_record(meta: MachineMeta, p: RestorePoint) -> dict[str, Any]:
    """What a backup file's index keeps about its point and chain, so that
    `ferry check --rebuild` can rebuild the metadata from the files alone."""
    return {"job": meta.job, "machine": meta.machine, "method": meta.method.value,
            "compression": meta.compression, "point": _point_to_dict(p),
            **({"envelope": meta.keys[p.key]} if p.key and p.key in meta.keys else {})}


def meta_to_dict(meta: MachineMeta) -> dict[str, Any]:
    return {
        "job": meta.job, "machine": meta.machine, "block_size": meta.block_size,
        "method": meta.method.value, "compression": meta.compression,
        "points": [_point_to_dict(p) for p in meta.points], "facts": meta.facts,
        "gone_since": meta.gone_since,
        **({"keys": meta.keys} if meta.keys else {}),
    }


def meta_from_dict(d: dict[str, Any]) -> MachineMeta:
    return MachineMeta(
        job=d["job"], machine=d["machine"], block_size=int(d["block_size"]),
        method=Method(d["method"]), compression=d["compression"],
        points=[_point_from_dict(p) for p in d["points"]], facts=dict(d.get("facts", {})),
        gone_since=d.get("gone_since", ""), keys=_keys(d.get("keys", {})),
    )


def _keys(value: object) -> dict[str, dict[str, Any]]:
    """The wrapped chain keys (checked in detail when one is opened)."""
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, dict) for k, v in value.items()):
        raise ValueError("keys is not a table of key envelopes")
    return dict(value)


COPIES = ".fbm-copies"  # <job>/.fbm-copies/<machine>.fbm: the second copy of each .fbm


def copy_path(path: Path) -> Path:
    """Where the second copy of the metadata file `path` lives: in the job folder, not
    the machine folder (another directory, other sectors; one bad sector loses one)."""
    path = Path(path)
    return path.parent.parent / COPIES / path.name


def write_meta(path: Path, meta: MachineMeta) -> None:
    """Atomically replace `path` with `meta`, then its copy (both durable on return).

    The file `path` is the commit point; the copy follows it (a crash in between
    leaves a copy one commit behind, and the next save rewrites it)."""
    body = json.dumps(meta_to_dict(meta), indent=1, sort_keys=True)
    doc = json.dumps({"format": FORMAT, "checksum": xxhash.xxh3_64_hexdigest(body.encode()),
                      "body": body})
    _replace(path, doc)
    copy = copy_path(path)
    try:
        copy.parent.mkdir(exist_ok=True)
        _replace(copy, doc)
    except BaseException:
        copy.with_name(copy.name + ".tmp").unlink(missing_ok=True)
        raise


def _replace(path: Path, doc: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(doc)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_meta(path: Path, folder_files: set[str] | None = None) -> MachineMeta:
    """Load and verify a metadata file, falling back to its copy when it is damaged or
    missing; MetadataError (naming `path`) when neither is sound.

    A copy is used for a missing file only when the backup files it names are all in
    the machine folder (`folder_files`), so a stale copy never adopts a new machine.
    """
    try:
        return read_one(path)
    except MetadataError as first:
        try:
            meta = read_one(copy_path(path))
        except MetadataError:
            raise first from None
        if not Path(path).exists():
            files = folder_files if folder_files is not None else set()
            if not meta.points or any(p.file not in files for p in meta.points):
                raise first from None
        log.warning("%s; its copy %s is used (the next save or `ferry check --rebuild` "
                    "rewrites it)", first, copy_path(path))
        return meta


def read_one(path: Path) -> MachineMeta:
    """Load and verify one metadata file; MetadataError names the file and the problem."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        body = doc["body"]
        if doc.get("format") != FORMAT:
            raise MetadataError(f"{path}: unknown metadata format {doc.get('format')!r}")
        if xxhash.xxh3_64_hexdigest(body.encode()) != doc["checksum"]:
            raise MetadataError(f"{path}: metadata checksum mismatch (file damaged)")
        return meta_from_dict(json.loads(body))
    except MetadataError:
        raise
    except FileNotFoundError:
        raise MetadataError(f"{path}: metadata file not found") from None
    except OSError as exc:
        raise MetadataError(f"{path}: cannot read metadata: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MetadataError(f"{path}: metadata damaged ({type(exc).__name__})") from None
