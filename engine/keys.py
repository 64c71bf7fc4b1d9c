"""The key hierarchy of encrypted chains, block sealing and keyed digests.

    password --scrypt(salt, n, r, p)--> key-encryption key (KEK, never stored)
    KEK --AES-256-GCM wrap--> chain key = data key (AES-256-GCM) + digest key (BLAKE2b)

A chain key is random (os.urandom) and made when the copy job starts a new
chain (an encrypted full); its *wrapped* form (the envelope: KDF parameters,
salt, nonce, ciphertext) is stored in the machine's metadata, so a password
change re-wraps a few hundred bytes and never rewrites data.

Blocks are sealed after compression: `nonce(12) | AES-256-GCM(payload) | tag(16)`
with a fresh random 96-bit nonce per block. Random nonces need no state that a
kill -9, a resume or two processes could lose or reuse (a counter would); with
one key per chain the collision odds stay below 2^-33 even at 2^32 blocks
(4 PiB of 1 MiB blocks). The associated data binds the ciphertext to its index
entry: (keyed digest, raw length, compression flag). Disk and block number are
*not* in it on purpose: in-file dedup, WAN-cache reuse, merges and synthetic
fulls move one stored payload to other disks and block numbers without the
password; the keyed digest is the identity that survives every such move.

Digests the target sees (index, dedup, resume, WAN cache) are keyed: BLAKE2b
with the chain's digest key over (xxh3-128 of the raw block, its length). Equal
blocks still have equal digests within the chain, but without the key the
target cannot confirm a guess about the content. Keying the source index's
xxh3 digest (not the data) lets an increment be planned without reading the
unchanged blocks, exactly as for plaintext chains.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import struct
import threading
from dataclasses import asdict, dataclass
from typing import Any

from engine.errors import FerryError
from engine.password import Password, PasswordError, PasswordSource

# scrypt: 32 MiB (128 * r * n) and ~0.3 s per derivation here; about OWASP's
# "n=2^15, r=8, p=3". Stored with every envelope, so it can be raised later.
KDF_N, KDF_R, KDF_P = 1 << 15, 8, 3
SALT_BYTES = 16
NONCE = 12
TAG = 16
OVERHEAD = NONCE + TAG  # bytes a sealed payload adds
_MAX_KDF_MEMORY = 1 << 30  # refuse stored parameters that would ask for more
_WRAP_AAD = b"ferry-chain-key-v1\0"
_AD = struct.Struct("<8s16sIB")  # label, keyed digest, raw length, compression flag
_AD_LABEL = b"FERRYBLK"
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")

# A wrapped chain key as stored in metadata JSON ({"v", "kdf", "nonce", "wrapped"}):
# read back from disk, so it stays an open mapping until _kdf_params validates it.
Envelope = dict[str, Any]


class EncryptionError(FerryError):
    """A sealed block or key envelope that does not authenticate, or a damaged envelope."""


class WrongPassword(PasswordError):
    """The password does not unwrap the chain key."""


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(value: object, what: str, lo: int, hi: int) -> bytes:
    if not isinstance(value, str) or len(value) > 4 * hi:
        raise EncryptionError(f"key envelope damaged: {what}")
    try:
        raw = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise EncryptionError(f"key envelope damaged: {what}") from None
    if not lo <= len(raw) <= hi:
        raise EncryptionError(f"key envelope damaged: {what} has {len(raw)} bytes")
    return raw


def valid_key_id(key_id: object) -> bool:
    return isinstance(key_id, str) and bool(_KEY_ID.match(key_id))


class ChainKey:
    """One chain's data key and digest key (plaintext, in memory only)."""

    __slots__ = ("key_id", "_aead", "_mac", "_raw")

    def __init__(self, key_id: str, material: bytes):
        if len(material) != 64:
            raise EncryptionError("chain key has the wrong length")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # only encrypted jobs

        self.key_id = key_id
        self._raw = material
        self._aead = AESGCM(material[:32])
        self._mac = material[32:]

    def __repr__(self) -> str:
        return f"ChainKey({self.key_id})"

    def digest(self, plain_digest: bytes, raw_len: int) -> bytes:
        """The keyed digest the target stores for a block (16 bytes)."""
        import hashlib  # imported on first use: a plaintext run never loads OpenSSL's hashes

        return hashlib.blake2b(plain_digest + raw_len.to_bytes(4, "little"), key=self._mac,
                               digest_size=16, person=b"ferry-digest").digest()

    def seal(self, payload: bytes | memoryview, digest: bytes, raw_len: int, flags: int) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + self._aead.encrypt(nonce, bytes(payload), _ad(digest, raw_len, flags))

    def seal_into(self, out: memoryview, payload: bytes | memoryview, digest: bytes,
                  raw_len: int, flags: int) -> None:
        """`seal` written into `out` (len(payload) + OVERHEAD bytes, e.g. inside a BLOCK
        frame): no fresh ciphertext buffer and no concatenation per block."""
        nonce = os.urandom(NONCE)
        out[:NONCE] = nonce
        self._aead.encrypt_into(nonce, payload, _ad(digest, raw_len, flags), out[NONCE:])

    def open(self, stored: bytes | memoryview, digest: bytes, raw_len: int, flags: int) -> bytes:
        """The compressed payload; EncryptionError if any byte of it or its entry changed."""
        from cryptography.exceptions import InvalidTag

        stored = bytes(stored)
        if len(stored) < OVERHEAD:
            raise EncryptionError("sealed block too short")
        try:
            return self._aead.decrypt(stored[:NONCE], stored[NONCE:], _ad(digest, raw_len, flags))
        except InvalidTag:
            raise EncryptionError("authentication failed") from None


def _ad(digest: bytes, raw_len: int, flags: int) -> bytes:
    return _AD.pack(_AD_LABEL, digest, raw_len, flags)


@dataclass(frozen=True)
class _Kdf:
    """Validated scrypt parameters of one envelope; frozen so it can key the KEK cache."""
    n: int
    r: int
    p: int
    salt: bytes

    def stored(self) -> dict[str, Any]:
        """The JSON form kept in an envelope (salt in base64)."""
        return {"name": "scrypt", **asdict(self), "salt": _b64(self.salt)}


def _scrypt(password: Password, kdf: _Kdf) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=kdf.salt, length=32, n=kdf.n, r=kdf.r, p=kdf.p).derive(password.bytes())


def _bounded_int(value: object, low: int, high: int) -> int | None:
    """`value` if it is an int (not a bool) within [low, high], else None."""
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    return None


def _kdf_params(env: object) -> _Kdf:
    """The envelope's KDF parameters, bounded (metadata is hostile input)."""
    kdf = env.get("kdf") if isinstance(env, dict) else None
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise EncryptionError("key envelope damaged: unknown key derivation")
    n = _bounded_int(kdf.get("n"), 2, _MAX_KDF_MEMORY)
    r = _bounded_int(kdf.get("r"), 1, 64)
    p = _bounded_int(kdf.get("p"), 1, 16)
    if n is None or r is None or p is None or n & (n - 1) or 128 * r * n > _MAX_KDF_MEMORY:
        raise EncryptionError("key envelope damaged: key derivation parameters out of range")
    return _Kdf(n, r, p, _unb64(kdf.get("salt"), "salt", 16, 64))


class KeyRing:
    """The password of one job or command and the chain keys it opened.

    The password is read from its source on first use only (a run over plaintext
    chains never asks for it) and derived once per salt: every chain made in one
    run shares this ring's salt, so a run pays for scrypt once, not per machine.
    """

    def __init__(self, source: PasswordSource | None = None, password: Password | None = None):
        self.source = source
        self._password = password
        self._lock = threading.Lock()
        self._keks: dict[_Kdf, bytes] = {}
        self._keys: dict[str, ChainKey] = {}
        self._new_kdf: _Kdf | None = None

    def __repr__(self) -> str:
        return f"KeyRing({self.source.describe() if self.source else 'given password'})"

    def password(self) -> Password:
        if self._password is None:
            if self.source is None:
                raise PasswordError("the chain is encrypted: a password is needed")
            self._password = self.source.read()
        return self._password

    def _kek(self, kdf: _Kdf) -> bytes:
        with self._lock:  # one derivation at a time: 32 MiB each, and the result is shared
            kek = self._keks.get(kdf)
            if kek is None:
                kek = self._keks[kdf] = _scrypt(self.password(), kdf)
            return kek

    def create(self) -> tuple[ChainKey, Envelope]:
        """A new random chain key and its envelope (wrapped with this ring's password)."""
        key = ChainKey(os.urandom(8).hex(), os.urandom(64))
        env = self.wrap(key)
        self._keys[key.key_id] = key
        return key, env

    def wrap(self, key: ChainKey) -> Envelope:
        with self._lock:
            if self._new_kdf is None:
                self._new_kdf = _Kdf(KDF_N, KDF_R, KDF_P, os.urandom(SALT_BYTES))
        kdf = self._new_kdf
        nonce = os.urandom(NONCE)
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        wrapped = AESGCM(self._kek(kdf)).encrypt(nonce, key._raw, _WRAP_AAD + key.key_id.encode())
        return {"v": 1, "kdf": kdf.stored(), "nonce": _b64(nonce),
                "wrapped": _b64(wrapped)}

    def open(self, key_id: str, env: object) -> ChainKey:
        """The chain key `key_id` from its envelope; WrongPassword if it does not unwrap."""
        key = self._keys.get(key_id)
        if key is not None:
            return key
        if not valid_key_id(key_id) or not isinstance(env, dict) or env.get("v") != 1:
            raise EncryptionError("key envelope damaged or missing")
        kdf = _kdf_params(env)
        nonce = _unb64(env.get("nonce"), "nonce", NONCE, NONCE)
        wrapped = _unb64(env.get("wrapped"), "wrapped key", 64 + TAG, 64 + TAG)
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            material = AESGCM(self._kek(kdf)).decrypt(nonce, wrapped,
                                                      _WRAP_AAD + key_id.encode())
        except InvalidTag:
            what = self.source.describe() if self.source else "the given password"
            raise WrongPassword(f"wrong password: {what} does not open the chain key") from None
        key = self._keys[key_id] = ChainKey(key_id, material)
        return key

    def can_open(self, key_id: str, env: object) -> bool:
        try:
            self.open(key_id, env)
        except WrongPassword:
            return False
        return True
