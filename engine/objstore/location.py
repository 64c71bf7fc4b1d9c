"""Where an object storage repository lives: `s3://bucket/prefix` plus endpoint and keys.

Credentials come only from environment variables (their names are settings, the
values never are); nothing here ever prints a secret.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import FerryError

S3_SCHEME = "s3://"
# compiled on first use: the {1,61} makes it ~2 ms, paid by every command otherwise (issue 15)
_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
DEFAULT_ENDPOINT_ENV = "AWS_ENDPOINT_URL"
DEFAULT_ACCESS_ENV = "AWS_ACCESS_KEY_ID"
DEFAULT_SECRET_ENV = "AWS_SECRET_ACCESS_KEY"


class S3ConfigError(FerryError, ValueError):
    """A bad `s3://` URL or missing credentials: one line, never a secret."""


def is_s3_url(text: object) -> bool:
    return isinstance(text, str) and text.startswith(S3_SCHEME)


@dataclass(frozen=True)
class S3Location:
    """A bucket and prefix with where to reach them; the keys only as variable names."""
    bucket: str
    prefix: str = ""  # no leading or trailing slash
    endpoint: str | None = None  # None: $AWS_ENDPOINT_URL, else the AWS default
    region: str = "us-east-1"
    access_key_env: str = DEFAULT_ACCESS_ENV
    secret_key_env: str = DEFAULT_SECRET_ENV

    @property
    def url(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.prefix}".rstrip("/")

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def resolved_endpoint(self) -> str | None:
        return self.endpoint or os.environ.get(DEFAULT_ENDPOINT_ENV) or None

    def credentials(self) -> tuple[str, str]:
        out = []
        for name in (self.access_key_env, self.secret_key_env):
            value = os.environ.get(name)
            if not value:
                raise S3ConfigError(f"{self.url}: environment variable {name} is not set "
                                    f"(S3 credentials come from the environment)")
            out.append(value)
        return out[0], out[1]

    def state_dir(self) -> Path:
        """A local folder for this repository: job lock, history, block index cache."""
        import hashlib  # here, not at the top: a folder job's start never needs OpenSSL's hashes

        root = Path(os.environ.get("FERRY_STATE_DIR") or Path.home() / ".local/state/ferry")
        ident = f"{self.resolved_endpoint() or 'aws'}|{self.bucket}|{self.prefix}"
        tag = hashlib.sha256(ident.encode()).hexdigest()[:16]
        return root / "s3" / f"{self.bucket}-{tag}"


def parse_s3_url(text: str, **options: str | None) -> S3Location:
    """`s3://bucket[/prefix]` -> S3Location; options: endpoint, region, *_key_env."""
    if not is_s3_url(text):
        raise S3ConfigError(f"not an s3:// URL: {text!r}")
    bucket, _, prefix = text[len(S3_SCHEME):].partition("/")
    if not re.match(_BUCKET, bucket):
        raise S3ConfigError(f"bad bucket name {bucket!r} (3-63 of a-z 0-9 . -)")
    prefix = prefix.strip("/")
    parts = prefix.split("/") if prefix else []
    for p in parts:
        if p in ("", ".", "..") or any(ord(c) < 32 for c in p) or len(p.encode()) > 200:
            raise S3ConfigError(f"bad prefix {prefix!r} in {text!r}")
    kw = {k: v for k, v in options.items() if v is not None}
    return S3Location(bucket, "/".join(parts), **kw)
