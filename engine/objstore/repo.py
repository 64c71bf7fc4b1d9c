"""An object storage repository: the read/commit side that `Repository` has for folders.

`chain.json` per machine is the single commit point (one PUT replaces it
atomically); the manifests and blocks it names are written before it and deleted
only after it no longer names them (see `gc.py`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator

import xxhash

from engine.keys import KeyRing
from engine.model import MachineMeta, RestorePoint
from engine.objstore.location import S3Location
from engine.objstore.manifest import ManifestLayer
from engine.objstore.store import Bucket
from engine.repository.metadata import FORMAT, MetadataError, meta_from_dict, meta_to_dict
from engine.repository.repository import safe_name
from engine.repository.resolve import PointView

CHAIN = "chain.json"
EPOCH = "index-epoch"
MAX_CHAIN = 64 << 20
HISTORY_KEY = ".ferry/history.sqlite"


class S3Repository:
    """`s3://bucket/prefix` holding `<job>/<machine>/` chains. Cheap to create."""

    def __init__(self, loc: S3Location, bucket: Bucket | None = None):
        self.loc = loc
        self.bucket = bucket or Bucket(loc)
        self.path = loc.url  # what messages and `ferry chain --json` show

    def __str__(self) -> str:
        return self.loc.url

    def exists(self) -> bool:
        return True

    def machine_key(self, job: str, machine: str) -> str:
        return self.loc.key(safe_name(job, "job name"), safe_name(machine, "machine name"))

    def lock(self, job: str, machine: str, exclusive: bool,
             wait: float | None = None) -> contextlib.nullcontext[None]:
        """No chain lock on object storage: one writer per job (the run's job lock)."""
        return contextlib.nullcontext()

    def _children(self, prefix: str) -> list[str]:
        c = self.bucket._c
        out, token = [], None
        while True:
            kw = {"Prefix": prefix, "Delimiter": "/", "MaxKeys": 1000}
            if token:
                kw["ContinuationToken"] = token
            r = self.bucket._call("LIST", prefix, c.list_objects_v2, **kw)
            out += [p["Prefix"][len(prefix):].rstrip("/") for p in r.get("CommonPrefixes", [])]
            if not r.get("IsTruncated"):
                return out
            token = r.get("NextContinuationToken")

    def jobs(self) -> list[str]:
        base = self.loc.key() + "/" if self.loc.prefix else ""
        return sorted(j for j in self._children(base) if j and not j.startswith("."))

    def machines(self, job: str | None = None) -> list[tuple[str, str]]:
        out = []
        for j in [job] if job else self.jobs():
            for m in sorted(self._children(self.loc.key(safe_name(j, "job name")) + "/")):
                if self.has(j, m):
                    out.append((j, m))
        return out

    def _chain_key(self, job: str, machine: str) -> str:
        return f"{self.machine_key(job, machine)}/{CHAIN}"

    def has(self, job: str, machine: str) -> bool:
        try:
            return self.bucket.try_get(self._chain_key(job, machine), MAX_CHAIN) is not None
        except Exception:  # noqa: BLE001 - a bad name is simply not a machine here
            return False

    def try_load(self, job: str, machine: str) -> MachineMeta | None:
        key = self._chain_key(job, machine)
        blob = self.bucket.try_get(key, MAX_CHAIN)
        if blob is None:
            return None
        where = f"s3://{self.bucket.name}/{key}"
        try:
            doc = json.loads(blob)
            body = doc["body"]
            if doc.get("format") != FORMAT:
                raise MetadataError(f"{where}: unknown chain format {doc.get('format')!r}")
            if xxhash.xxh3_64_hexdigest(body.encode()) != doc["checksum"]:
                raise MetadataError(f"{where}: chain checksum mismatch (object damaged)")
            meta = meta_from_dict(json.loads(body))
        except MetadataError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MetadataError(f"{where}: chain damaged ({type(exc).__name__})") from None
        if meta.job != job or meta.machine != machine:
            raise MetadataError(f"{where}: names {meta.job}/{meta.machine}, not {job}/{machine}")
        for p in meta.points:
            if not p.file.startswith("points/") or "/" in p.file[7:] or ".." in p.file:
                raise MetadataError(f"{where}: bad manifest name {p.file!r}")
        return meta

    def load(self, job: str, machine: str) -> MachineMeta:
        meta = self.try_load(job, machine)
        if meta is None:
            raise MetadataError(f"s3://{self.bucket.name}/{self._chain_key(job, machine)}: "
                                f"chain not found")
        return meta

    def save(self, meta: MachineMeta) -> None:
        """Commit a chain change: one PUT of chain.json (atomic on S3)."""
        body = json.dumps(meta_to_dict(meta), indent=1, sort_keys=True)
        doc = json.dumps({"format": FORMAT, "checksum": xxhash.xxh3_64_hexdigest(body.encode()),
                          "body": body})
        self.bucket.put(self._chain_key(meta.job, meta.machine), doc.encode())

    def opener(self, meta: MachineMeta) -> Callable[[RestorePoint], ManifestLayer]:
        key = self.machine_key(meta.job, meta.machine)
        return lambda p: ManifestLayer(self.bucket, key, p.file, p.id)

    def view(self, meta: MachineMeta, point: RestorePoint,
             keys: KeyRing | None = None) -> PointView:
        return PointView(None, meta, point, keys, opener=self.opener(meta))

    def keys(self, job: str, machine: str, sub: str) -> Iterator[tuple[str, int]]:
        """(name relative to the machine, size) of the objects under `sub/`."""
        base = self.machine_key(job, machine) + "/"
        for key, size in self.bucket.list(base + sub + "/"):
            yield key[len(base):], size
