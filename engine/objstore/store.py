"""A thin, bounded wrapper over one bucket (botocore): every call one line on failure.

Waits are bounded (connect 10 s, read 60 s, 3 attempts); bodies read back are
bounded by the caller's limit; errors become `S3Error` naming the bucket, the key
and the server's reason, never a credential.
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import xxhash

from engine.errors import FerryError
from engine.objstore.location import S3Location

log = logging.getLogger("ferry.s3")
LOCK_MODE = "COMPLIANCE"


class S3Error(FerryError):
    """An S3 request failed (unreachable endpoint, refused, missing object)."""

    def __init__(self, message: str, code: str = ""):
        super().__init__(message)
        self.code = code


class ObjectMissing(S3Error):
    """The object does not exist."""


class ObjectDamaged(S3Error):
    """The object's bytes do not match the checksum written with them."""


CHECKSUM_META = "xxh3"  # user metadata: xxh3-64 (hex) of the stored bytes


def _client(loc: S3Location, pool: int) -> Any:  # botocore ships no types: its client is Any
    """One S3 client straight from botocore (boto3's engine): boto3's own import pulls in
    s3transfer, ~0.1 s of every run's start-up for nothing Ferry calls."""
    import botocore.session
    from botocore.config import Config

    access, secret = loc.credentials()
    cfg = Config(s3={"addressing_style": "path"}, connect_timeout=10, read_timeout=60,
                 retries={"max_attempts": 3, "mode": "standard"}, max_pool_connections=pool,
                 request_checksum_calculation="when_required",
                 response_checksum_validation="when_required")
    client = botocore.session.Session().create_client(
        "s3", endpoint_url=loc.resolved_endpoint(), region_name=loc.region,
        aws_access_key_id=access, aws_secret_access_key=secret, config=cfg)
    _quick_ack(client)
    return client


def _quick_ack(client: Any) -> None:
    """ACK every response segment at once (Linux TCP_QUICKACK, set before each response
    is read). A gateway writing a response's headers and its body apart with Nagle on
    (RGW's beast frontend by default) otherwise holds the body until the client's
    delayed ACK, 40 ms later: every small GET, LIST or error cost ~45 ms instead of ~5."""
    import socket

    from botocore.awsrequest import (
        AWSHTTPConnection,
        AWSHTTPConnectionPool,
        AWSHTTPSConnection,
        AWSHTTPSConnectionPool,
    )

    option = getattr(socket, "TCP_QUICKACK", None)
    pools = getattr(getattr(client, "_endpoint", None), "http_session", None)
    pools = getattr(pools, "_pool_classes_by_scheme", None)
    if option is None or not isinstance(pools, dict):
        return  # not Linux, or a botocore laid out otherwise: correct, only slower

    def getresponse(base: Any) -> Any:
        def quick(self: Any, *a: Any, **kw: Any) -> Any:
            sock = getattr(self, "sock", None)
            if sock is not None:
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, option, 1)
                except OSError:
                    pass
            return base.getresponse(self, *a, **kw)
        return quick

    http = type("QuickAckHTTPConnection", (AWSHTTPConnection,),
                {"getresponse": getresponse(AWSHTTPConnection)})
    https = type("QuickAckHTTPSConnection", (AWSHTTPSConnection,),
                 {"getresponse": getresponse(AWSHTTPSConnection)})
    # the session's dict is its pool managers' too: pools are made at first use
    pools["http"] = type("QuickAckPool", (AWSHTTPConnectionPool,), {"ConnectionCls": http})
    pools["https"] = type("QuickAckTLSPool", (AWSHTTPSConnectionPool,), {"ConnectionCls": https})


class Bucket:
    """One bucket at one prefix; thread safe (boto3 clients are), counts requests."""

    def __init__(self, loc: S3Location, pool: int = 16):
        self.loc = loc
        self.name = loc.bucket
        self._c = _client(loc, pool)
        self._count_lock = threading.Lock()
        self.requests: dict[str, int] = {}
        self._lock_enabled: bool | None = None

    # -- bookkeeping -----------------------------------------------------------------
    def _count(self, op: str) -> None:
        with self._count_lock:
            self.requests[op] = self.requests.get(op, 0) + 1

    def _fail(self, op: str, key: str, exc: Exception) -> S3Error:
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"s3://{self.name}/{key}" if key else f"s3://{self.name}"
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            cls = ObjectMissing if code in ("NoSuchKey", "404", "NotFound") else S3Error
            return cls(f"{where}: {op} refused: {code} {err.get('Message', '')}".strip(), code)
        if isinstance(exc, BotoCoreError):
            return S3Error(f"{where}: {op} failed: {exc}")
        return S3Error(f"{where}: {op} failed: {type(exc).__name__}: {exc}")

    def _call(self, op: str, key: str, fn: Callable[..., dict[str, Any]],
              **kw: object) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        self._count(op)
        try:
            return fn(Bucket=self.name, **kw)
        except (ClientError, BotoCoreError) as exc:
            raise self._fail(op, key, exc) from None

    # -- objects ---------------------------------------------------------------------
    def put(self, key: str, body: bytes | bytearray | memoryview,
            lock_until: datetime | None = None, checksum: bool = False) -> None:
        """One PUT; `checksum` stores the body's xxh3-64 with it, checked by `get`. A
        bytearray (a pack) is sent as it is, not copied."""
        kw: dict[str, Any] = {}
        if lock_until is not None:
            kw = {"ObjectLockMode": LOCK_MODE, "ObjectLockRetainUntilDate": lock_until}
        if checksum:
            kw["Metadata"] = {CHECKSUM_META: xxhash.xxh3_64_hexdigest(body)}
        data = body if isinstance(body, bytes | bytearray) else bytes(body)
        self._call("PUT", key, self._c.put_object, Key=key, Body=data, **kw)

    def get(self, key: str, limit: int) -> bytes:
        """The object's bytes; refuses objects larger than `limit` (hostile or damaged)."""

        r = self._call("GET", key, self._c.get_object, Key=key)
        size = int(r.get("ContentLength") or 0)
        if size > limit:
            r["Body"].close()
            raise S3Error(f"s3://{self.name}/{key}: {size} bytes, more than the {limit} allowed")
        data = self._body(r, key, limit, "allowed")
        want = (r.get("Metadata") or {}).get(CHECKSUM_META)
        if want is not None and xxhash.xxh3_64_hexdigest(data) != want:
            raise ObjectDamaged(f"s3://{self.name}/{key}: stored checksum mismatch "
                                f"(object damaged)")
        return data

    def get_range(self, key: str, start: int, length: int) -> bytes:
        """`length` bytes at `start` of an object (one block of a pack); the caller checks
        them (the object's stored checksum covers the whole object, not this range)."""

        if length <= 0:
            return b""
        r = self._call("GET", key, self._c.get_object, Key=key,
                       Range=f"bytes={start}-{start + length - 1}")
        return self._body(r, key, length, "asked for")

    def _body(self, r: dict[str, Any], key: str, limit: int, what: str) -> bytes:
        """A GET's body, read to at most `limit` bytes (one more tells it was longer)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            data: bytes = r["Body"].read(limit + 1)
        except (ClientError, BotoCoreError, OSError) as exc:
            raise self._fail("GET", key, exc) from None
        if len(data) > limit:
            raise S3Error(f"s3://{self.name}/{key}: more than the {limit} bytes {what}")
        return data

    def try_get(self, key: str, limit: int) -> bytes | None:
        try:
            return self.get(key, limit)
        except ObjectMissing:
            return None

    def list(self, prefix: str) -> Iterator[tuple[str, int]]:
        """(key, size) of every current object under `prefix`, 1000 per request."""
        token = None
        while True:
            kw = {"Prefix": prefix, "MaxKeys": 1000}
            if token:
                kw["ContinuationToken"] = token
            r = self._call("LIST", prefix, self._c.list_objects_v2, **kw)
            for o in r.get("Contents", []):
                yield o["Key"], int(o["Size"])
            if not r.get("IsTruncated"):
                return
            token = r.get("NextContinuationToken")

    def versions(self, prefix: str) -> Iterator[tuple[str, str, bool]]:
        """(key, version id, is latest) of every version and delete marker under `prefix`."""
        kw: dict[str, Any] = {"Prefix": prefix, "MaxKeys": 1000}
        while True:
            r = self._call("LIST", prefix, self._c.list_object_versions, **kw)
            for o in r.get("Versions", []) + r.get("DeleteMarkers", []):
                yield o["Key"], o["VersionId"], bool(o.get("IsLatest"))
            if not r.get("IsTruncated"):
                return
            kw["KeyMarker"] = r.get("NextKeyMarker")
            kw["VersionIdMarker"] = r.get("NextVersionIdMarker")

    def delete(self, items: Iterable[tuple[str, str | None]]) -> builtins.list[str]:
        """Delete (key, version or None) in batches of 1000; the keys the server refused."""
        refused: list[str] = []
        batch: builtins.list[dict[str, Any]] = []

        def flush() -> None:
            if not batch:
                return
            r = self._call("DELETE", batch[0]["Key"], self._c.delete_objects,
                           Delete={"Objects": list(batch), "Quiet": True})
            refused.extend(e.get("Key", "") for e in r.get("Errors", []))
            batch.clear()

        for key, version in items:
            batch.append({"Key": key, **({"VersionId": version} if version else {})})
            if len(batch) == 1000:
                flush()
        flush()
        return refused

    # -- Object Lock -----------------------------------------------------------------
    def lock_enabled(self) -> bool:
        if self._lock_enabled is None:
            try:
                r = self._call("LOCKCFG", "", self._c.get_object_lock_configuration)
                cfg = r.get("ObjectLockConfiguration", {})
                self._lock_enabled = cfg.get("ObjectLockEnabled") == "Enabled"
            except S3Error as exc:
                if "ObjectLockConfigurationNotFound" not in exc.code and exc.code not in (
                        "InvalidRequest", "NoSuchObjectLockConfiguration"):
                    raise
                self._lock_enabled = False
        return self._lock_enabled

    def retention(self, key: str) -> datetime | None:
        """The COMPLIANCE retain-until date of the current version, or None."""
        try:
            r = self._call("GETRET", key, self._c.get_object_retention, Key=key)
        except S3Error as exc:
            # AWS says NoSuchObjectLockConfiguration, RGW ObjectLockConfigurationNotFoundError
            # for a version written without a lock (e.g. a newer one put by someone else)
            if exc.code in ("NoSuchObjectLockConfiguration", "InvalidRequest",
                            "ObjectLockConfigurationNotFoundError"):
                return None
            raise
        until = r.get("Retention", {}).get("RetainUntilDate")
        return until.astimezone(UTC) if until else None

    def extend(self, key: str, until: datetime) -> None:
        self._call("PUTRET", key, self._c.put_object_retention, Key=key,
                   Retention={"Mode": LOCK_MODE, "RetainUntilDate": until})

    def request_counts(self) -> dict[str, int]:
        """The requests made so far, by kind (a session reports them: `ferry run --json`)."""
        with self._count_lock:
            return dict(sorted(self.requests.items()))
