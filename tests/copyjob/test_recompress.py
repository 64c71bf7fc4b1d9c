"""A copy at another compression level than the source's (issue 15: recompressing copies).

The in-process source decodes every block, matches it to its digest and compresses it
again; the target then stores the payload as sent (BEGIN "decoded", engine.copy.receive)
instead of decoding it a second time. The copy must still be the source, byte for byte,
and pass `ferry check` (every stored block decoded and re-hashed there).
"""

from __future__ import annotations

import json
import random

import pytest

from engine.backup import take_backup

from .conftest import BS, T0, exported, ferry, write_job


def _compressible(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randrange(3, 12)) for _ in range(200)]
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words)
    return bytes(out[:n])


@pytest.mark.parametrize("level", ["high", "none"])
def test_a_recompressed_copy_is_the_source_and_passes_its_check(tmp_path, level):
    disk = tmp_path / "disk0.img"
    src, dst = tmp_path / "primary", tmp_path / "dr"
    states = []
    for day, seed in enumerate((1, 2)):
        data = bytearray(_compressible(6 * BS + 777, 7))
        data[seed * BS:seed * BS + 64] = random.Random(seed).randbytes(64)
        disk.write_bytes(data)
        states.append(bytes(data))
        take_backup(src, "Daily", "vm01", [disk], keep=5, block_size=BS,
                    at=T0.replace(day=1 + day))
        job = write_job(tmp_path / "j.toml", "J", src, ["Daily"], dst,
                        extra=f'[storage]\ncompression = "{level}"\n')
        run = ferry("run", job, "--json", "--at", T0.replace(day=1 + day, hour=23).isoformat())
        assert run.returncode == 0, run.stderr
    chain = json.loads(ferry("chain", "--repo", dst, "--json", check=True).stdout)
    points = chain["chains"][0]["points"]
    assert [p["kind"] for p in points] == ["full", "incremental"]
    source_size = sum(p["size"] for p in json.loads(ferry(
        "chain", "--repo", src, "--json", check=True).stdout)["chains"][0]["points"])
    target_size = sum(p["size"] for p in points)
    # recompressed indeed: raw is larger than zstd-1, zstd-3 not larger
    assert target_size > source_size if level == "none" else target_size <= source_size
    for p, state in zip(points, states, strict=True):
        assert exported(dst, "J", "vm01", p["id"], tmp_path / f"out-{p['id']}") == state
    check = ferry("check", "--repo", dst, "--all")
    assert check.returncode == 0, check.stdout + check.stderr
