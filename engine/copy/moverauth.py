"""A mover's identity and credentials: its TLS key and certificate, and job tokens.

Everything lives in `<repo>/.ferry/mover/` (mode 0700): `key.pem` (0600) and
`cert.pem` from `ferry mover init`; `tokens.json` (0600) holds per token only its
id, job, append-only flag, creation time and the SHA-256 of the token. The token
itself is printed once by `ferry mover token add` and never stored; a client
proves it by sending it inside the TLS session. Clients pin the certificate by
its SHA-256 fingerprint (no CA: the admin copies the fingerprint into the job).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import ssl
from pathlib import Path
from typing import Any

from engine.copy import frames as fr
from engine.copy.target import Grant
from engine.errors import FerryError
from engine.units import now as wall_now

TOKEN_PREFIX = "ferry-mover"


class AuthError(FerryError):
    """Mover set-up or a credential is wrong (one line for the admin)."""


def folder(repo: Path) -> Path:
    return Path(repo) / ".ferry" / "mover"


def fingerprint_of(der: bytes) -> str:
    return "sha256:" + hashlib.sha256(der).hexdigest()


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def init(repo: Path, host: str = "ferry-mover") -> str:
    """Create the mover's key and self-signed certificate; return the fingerprint.
    Refuses to replace an existing identity (clients pin it)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    d = folder(repo)
    if (d / "cert.pem").exists():
        raise AuthError(f"the mover of {repo} is already initialised (fingerprint "
                        f"{fingerprint(repo)}); clients pin it, so it is not replaced")
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(start + dt.timedelta(days=3650))
            .sign(key, hashes.SHA256()))
    _write_private(d / "key.pem", key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    (d / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return fingerprint(repo)


def fingerprint(repo: Path) -> str:
    pem = (folder(repo) / "cert.pem").read_text()
    return fingerprint_of(ssl.PEM_cert_to_DER_cert(pem))


def server_context(repo: Path) -> ssl.SSLContext:
    d = folder(repo)
    if not (d / "cert.pem").exists() or not (d / "key.pem").exists():
        raise AuthError(f"the mover of {repo} has no TLS identity: run "
                        f"`ferry mover init --repo {repo}` first")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(d / "cert.pem", d / "key.pem")
    return ctx


# ------------------------------------------------------------------------- tokens
def _tokens_path(repo: Path) -> Path:
    return folder(repo) / "tokens.json"


def _load(repo: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(_tokens_path(repo).read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise AuthError(f"mover token file unreadable: {exc}") from None
    return data if isinstance(data, list) else []


def _save(repo: Path, tokens: list[dict[str, Any]]) -> None:
    path = _tokens_path(repo)
    tmp = path.with_suffix(".tmp")
    _write_private(tmp, json.dumps(tokens, indent=1).encode())
    os.replace(tmp, path)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_token(repo: Path, job: str, append_only: bool = False) -> tuple[str, str]:
    """A new token for `job`: (its id, the token). Only its hash is stored."""
    fr.name(job, "job name")
    if not (folder(repo) / "cert.pem").exists():
        raise AuthError(f"run `ferry mover init --repo {repo}` first")
    tid = secrets.token_hex(4)
    token = f"{TOKEN_PREFIX}-{tid}-{secrets.token_urlsafe(32)}"
    tokens = _load(repo)
    tokens.append({"id": tid, "job": job, "append_only": append_only,
                   "created": wall_now().isoformat(), "sha256": _hash(token)})
    _save(repo, tokens)
    return tid, token


def list_tokens(repo: Path) -> list[dict[str, Any]]:
    return [{k: t.get(k) for k in ("id", "job", "append_only", "created")} for t in _load(repo)]


def revoke_token(repo: Path, tid: str) -> bool:
    tokens = _load(repo)
    kept = [t for t in tokens if t.get("id") != tid]
    if len(kept) == len(tokens):
        return False
    _save(repo, kept)
    return True


def authorize(repo: Path, token: object, job: str) -> Grant:
    """The grant of a HELLO's token (read from disk each time: a revoke takes effect
    at the next connection), or Refused with a line that says nothing of other jobs."""
    if not isinstance(token, str) or not token.startswith(TOKEN_PREFIX + "-") or len(token) > 200:
        raise fr.Refused("a valid mover token is needed")
    tid = token.split("-")[2] if token.count("-") >= 3 else ""
    digest = _hash(token)
    for t in _load(repo):
        if t.get("id") == tid and hmac.compare_digest(str(t.get("sha256")), digest):
            if t.get("job") != job:
                raise fr.Refused(f"this token is not for job {job!r}")
            return Grant(job=job, append_only=bool(t.get("append_only")), who=f"token {tid}")
    raise fr.Refused("a valid mover token is needed")
