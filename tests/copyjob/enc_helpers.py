"""Helpers of the encryption tests: job files, key rings, plaintext search, stream capture."""

from __future__ import annotations

import os
from pathlib import Path

from engine.copy import transport as t
from engine.keys import KeyRing
from engine.password import Password
from engine.restore import export_point

from .conftest import write_job

PW = "correct horse 9f3a battery"  # distinctive: searched for in every file and output
PW_ENV = "FERRY_TEST_PW"
SAMPLE = 4096


def enc_job(path: Path, name: str, source: Path, jobs: list[str], target: Path, *,
            keep: int = 7, storage: str = "", extra: str = "", mode: str = "periodic") -> Path:
    """A job with `[storage] encryption = true` (password from $FERRY_TEST_PW, no
    compression, so that a plaintext block would be stored as it is)."""
    return write_job(path, name, source, jobs, target, keep=keep, mode=mode,
                     extra=f'[storage]\ncompression = "none"\nencryption = true\n'
                           f'password_env = "{PW_ENV}"\n{storage}\n{extra}')


def ring(pw: str = PW) -> KeyRing:
    return KeyRing(password=Password(pw.encode()))


def export_with(repo: Path, job: str, machine: str, point: str, out: Path,
                pw: str = PW) -> bytes:
    export_point(repo, job, machine, point, out, ring(pw))
    return (out / "disk0.img").read_bytes()


def samples_of(states: list[bytes]) -> list[bytes]:
    """Every 4 KiB-aligned sample of the disks' states, all-zero ones left out."""
    zero = bytes(SAMPLE)
    out = {bytes(s[i:i + SAMPLE]) for s in states for i in range(0, len(s) - SAMPLE + 1, SAMPLE)}
    return [s for s in out if s != zero]


def leaks(blob: bytes, samples: list[bytes]) -> int:
    """How many samples occur anywhere in `blob` (at any byte offset).

    A sample at offset p covers the 8-aligned offset q = p + (-p % 8) with its bytes
    k = q - p .. k + 8, so looking up the blob's 8-aligned words in an index of every
    sample's first 8 shifts finds each occurrence; candidates are then compared whole.
    """
    index: dict[bytes, list[tuple[int, int]]] = {}
    for n, s in enumerate(samples):
        for k in range(8):
            index.setdefault(s[k:k + 8], []).append((n, k))
    found: set[int] = set()
    mv = memoryview(blob)
    for q in range(0, len(blob) - 7, 8):
        for n, k in index.get(bytes(mv[q:q + 8]), ()):
            p = q - k
            if n not in found and p >= 0 and blob[p:p + SAMPLE] == samples[n]:
                found.add(n)
    return len(found)


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


class StreamTap:
    """Every byte both sides of in-process mover streams sent (install with monkeypatch)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self._real = t.pipe

    def pipe(self, depth: int = 16):
        a, b = self._real(depth)
        for end in (a, b):
            send = end.send

            def tapped(data: bytes, send=send) -> None:
                self.chunks.append(bytes(data))
                send(data)

            end.send = tapped  # type: ignore[method-assign]
        return a, b

    def carried(self) -> bytes:
        return b"".join(self.chunks)


def set_pw(monkeypatch, pw: str = PW) -> None:
    monkeypatch.setenv(PW_ENV, pw)
    assert os.environ[PW_ENV] == pw
