"""Helpers shared by the engine tests: the CLI runner, simulated machines, chain models.

Imported by the test modules (pytest puts this folder on sys.path); `conftest.py`
wraps the common ones as fixtures.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

from engine.backup import take_backup
from engine.model import MachineMeta
from engine.repository.repository import Repository
from engine.restore import export_point

ROOT = Path(__file__).resolve().parents[2]
KiB, MiB = 1024, 1024 * 1024
BS = 256 * KiB
JOB, MACHINE = "Daily", "web01"
T0 = datetime(2026, 1, 1, 22, 0)


def day(n: int | float) -> datetime:
    return T0 + timedelta(days=n)


# --------------------------------------------------------------------------- the CLI


def ferry_cmd(*args: object) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *(str(a) for a in args)]


def ferry_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FERRY_DEBUG", None)  # it would add a traceback to every failure
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_ferry(*args: object, timeout: float = 120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(ferry_cmd(*args), cwd=ROOT, env=ferry_env(), capture_output=True,
                          text=True, timeout=timeout, **kw)


def run_many(*commands: list[object], timeout: float = 120) -> list[subprocess.CompletedProcess]:
    """Run independent ferry commands side by side (each a list of arguments)."""
    procs = [popen_ferry(*args) for args in commands]
    out = []
    for args, p in zip(commands, procs, strict=True):
        stdout, stderr = p.communicate(timeout=timeout)
        out.append(subprocess.CompletedProcess(ferry_cmd(*args), p.returncode, stdout, stderr))
    return out


def popen_ferry(*args: object, **kw) -> subprocess.Popen:
    return subprocess.Popen(ferry_cmd(*args), cwd=ROOT, env=ferry_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def describe(res: subprocess.CompletedProcess) -> str:
    return f"exit {res.returncode}\n--- stdout\n{res.stdout}\n--- stderr\n{res.stderr}"


def assert_ok(res: subprocess.CompletedProcess) -> None:
    assert res.returncode == 0, describe(res)
    assert "Traceback" not in res.stderr, describe(res)


def assert_one_line_failure(res: subprocess.CompletedProcess, code: int = 2) -> str:
    """Exit `code`, exactly one non-empty line on stderr, no traceback anywhere."""
    assert res.returncode == code, describe(res)
    assert "Traceback" not in res.stderr + res.stdout, describe(res)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].strip(), describe(res)
    return lines[0]


# --------------------------------------------------------------------------- files


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * MiB):
            h.update(chunk)
    return h.hexdigest()


def tree_snapshot(root: Path) -> dict[str, tuple]:
    """Every dir and file under root: kind, size, mtime and content hash."""
    out: dict[str, tuple] = {}
    root = Path(root)
    if not root.exists():
        return out
    for dirpath, _dirs, files in os.walk(root):
        d = Path(dirpath)
        out[f"{d.relative_to(root)}/"] = ("dir", d.stat().st_mtime_ns)
        for name in files:
            p = d / name
            st = p.lstat()
            out[str(p.relative_to(root))] = ("file", st.st_size, st.st_mtime_ns, file_sha(p))
    return out


def first_difference(a: bytes, b: bytes, bs: int = BS) -> str:
    """A short description of where two images differ (never dumps the bytes)."""
    if len(a) != len(b):
        return f"size {len(a)} != expected {len(b)}"
    for off in range(0, len(a), bs):
        if a[off:off + bs] != b[off:off + bs]:
            i = next(i for i in range(off, min(off + bs, len(a))) if a[i] != b[i])
            return f"first difference at byte {i} (block {i // bs})"
    return "identical"


# --------------------------------------------------------------------------- restore points


def export_disks(repo: Path, ref: str, out: Path, job: str = JOB,
                 machine: str = MACHINE) -> dict[str, bytes]:
    """Export a point with engine.restore.export_point and read the images back."""
    shutil.rmtree(out, ignore_errors=True)
    paths = export_point(Path(repo), job, machine, ref, Path(out))
    data = {p.name: p.read_bytes() for p in paths}
    assert sorted(os.listdir(out)) == sorted(data), "export left other files behind"
    shutil.rmtree(out)
    return data


def assert_images_equal(got: dict[str, bytes], want: dict[str, bytes], what: str) -> None:
    assert sorted(got) == sorted(want), f"{what}: disks {sorted(got)} != {sorted(want)}"
    for name in want:
        if got[name] != want[name]:
            raise AssertionError(f"{what}: disk {name}: "
                                 f"{first_difference(got[name], want[name])}")


def verify_all_points(repo: Path, history: dict[datetime, dict[str, bytes]], out: Path,
                      job: str = JOB, machine: str = MACHINE) -> MachineMeta:
    """Export every point of the chain and compare it with the disks at its time."""
    meta = Repository(repo).load(job, machine)
    for p in meta.points:
        assert p.time in history, f"point {p.id} at {p.time} was never taken"
        want = history[p.time]
        assert {d.name: d.size for d in p.disks} == {n: len(b) for n, b in want.items()}, (
            f"point {p.id} at {p.time}: disk list in the metadata is wrong")
        got = export_disks(repo, p.id, out, job, machine)
        assert_images_equal(got, want, f"point {p.kind.value} {p.id} at {p.time}")
    return meta


def assert_folder_clean(repo: Path, meta: MachineMeta) -> None:
    """After a successful backup the machine folder holds only what the metadata names."""
    folder = Repository(repo).machine_dir(meta.job, meta.machine)
    want = {p.file for p in meta.points} | {f"{meta.machine}.fbm", "lock"}
    assert set(os.listdir(folder)) == want


# --------------------------------------------------------------------------- chain shape model


class ChainModel:
    """What the chain must look like after each backup: [(time, kind)], oldest first."""

    def __init__(self, method: str, keep: int):
        self.method, self.keep = method, keep
        self.chains: list[list[datetime]] = []  # forward: chains; others: one list

    def add(self, when: datetime, active_full: bool = False) -> None:
        if self.method == "forward":
            if not self.chains or active_full:
                self.chains.append([when])
            else:
                self.chains[-1].append(when)
            while len(self.chains) >= 2 and sum(len(c) for c in self.chains[1:]) >= self.keep:
                self.chains.pop(0)
        else:
            if not self.chains:
                self.chains.append([])
            self.chains[0] = (self.chains[0] + [when])[-self.keep:]

    def expected(self) -> list[tuple[datetime, str]]:
        out = []
        for chain in self.chains:
            for i, t in enumerate(chain):
                if self.method == "forward" or self.method == "forever-forward":
                    kind = "full" if i == 0 else "incremental"
                else:
                    kind = "full" if i == len(chain) - 1 else "rollback"
                out.append((t, kind))
        return out


def chain_shape(meta: MachineMeta) -> list[tuple[datetime, str]]:
    return [(p.time, p.kind.value) for p in meta.points]


# --------------------------------------------------------------------------- simulated disks


class Machine:
    """A machine whose disks are raw image files, mirrored in memory.

    Every change is written in place (seek/write, truncate), so growth through
    truncate leaves real holes in the sparse files, as a hypervisor would.
    """

    OPS = ("edit", "rewrite", "zero", "grow", "grow_zero", "shrink", "shrink_grow", "dup",
           "none")

    def __init__(self, folder: Path, seed: int = 0, block_size: int = BS,
                 max_size: int = 3 * MiB):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rng = random.Random(seed)
        self.bs = block_size
        self.max_size = max_size
        self.disks: dict[str, bytearray] = {}
        self.corpus = b" ".join(
            bytes(self.rng.choice(b"abcdefghijklmnopqrstuvwxyz ,.\n") for _ in range(
                self.rng.randint(2, 10))) for _ in range(12000))

    # -- content
    def data(self, n: int, kind: str | None = None) -> bytes:
        """n bytes: incompressible random, or compressible text (unique per call)."""
        kind = kind or self.rng.choice(("random", "text"))
        if kind == "random":
            return self.rng.randbytes(n)
        parts, total = [], 0
        while total < n:
            off = self.rng.randrange(len(self.corpus) - 4096)
            piece = self.corpus[off:off + self.rng.randint(512, 4096)] + self.rng.randbytes(8)
            parts.append(piece)
            total += len(piece)
        return b"".join(parts)[:n]

    def odd_size(self, lo_blocks: int, hi_blocks: int) -> int:
        """A size that is not a multiple of the block size."""
        return self.rng.randint(lo_blocks, hi_blocks) * self.bs + self.rng.randint(1, self.bs - 1)

    # -- file operations (file and memory kept identical)
    def path(self, name: str) -> Path:
        return self.folder / name

    def paths(self) -> list[Path]:
        return [self.path(n) for n in self.disks]

    def state(self) -> dict[str, bytes]:
        return {n: bytes(b) for n, b in self.disks.items()}

    def write(self, name: str, off: int, data: bytes) -> None:
        with open(self.path(name), "r+b") as f:
            f.seek(off)
            f.write(data)
        buf = self.disks[name]
        end = off + len(data)
        if end > len(buf):
            buf.extend(bytes(end - len(buf)))
        buf[off:end] = data

    def truncate(self, name: str, size: int) -> None:
        os.truncate(self.path(name), size)
        buf = self.disks[name]
        if size < len(buf):
            del buf[size:]
        else:
            buf.extend(bytes(size - len(buf)))

    def add_disk(self, name: str, size: int | None = None, holes: float = 0.2,
                 zeros: float = 0.1) -> None:
        """A new disk: most blocks data, some left as holes, some written as zeros."""
        size = self.odd_size(1, max(1, self.max_size // self.bs - 1)) if size is None else size
        with open(self.path(name), "wb") as f:
            f.truncate(size)
        self.disks[name] = bytearray(size)
        for off in range(0, size, self.bs):
            n = min(self.bs, size - off)
            r = self.rng.random()
            if r < holes:
                continue
            self.write(name, off, bytes(n) if r < holes + zeros else self.data(n))

    def remove_disk(self, name: str) -> None:
        self.path(name).unlink()
        del self.disks[name]

    def nblocks(self, name: str) -> int:
        return -(-len(self.disks[name]) // self.bs)

    def mutate(self, op: str, name: str) -> None:
        size, bs, rng = len(self.disks[name]), self.bs, self.rng
        if op == "edit":
            for _ in range(rng.randint(1, 16)):
                if size:
                    off = rng.randrange(size)
                    self.write(name, off, rng.randbytes(min(rng.randint(1, 100), size - off)))
        elif op == "rewrite":
            for _ in range(rng.randint(1, 3)):
                if size:
                    off = rng.randrange(self.nblocks(name)) * bs
                    self.write(name, off, self.data(min(bs, size - off)))
        elif op == "zero":
            if size:
                off = rng.randrange(self.nblocks(name)) * bs
                self.write(name, off, bytes(min(bs, size - off)))
        elif op == "grow":
            self.write(name, size, self.data(rng.randint(1, 2 * bs + 1000)))
        elif op == "grow_zero":
            self.truncate(name, size + rng.randint(1, 2 * bs + 1000))
        elif op == "shrink":
            self.truncate(name, rng.randint(1, max(1, size - 1)) if size > 1 else size)
        elif op == "shrink_grow":  # the tail comes back as zeros
            small = rng.randint(1, max(1, size - 1)) if size > 1 else size
            self.truncate(name, small)
            self.truncate(name, size + rng.randint(0, bs))
        elif op == "dup":
            n = self.nblocks(name)
            if n >= 2:
                a, b = rng.sample(range(n), 2)
                chunk = bytes(self.disks[name][a * bs:(a + 1) * bs])
                self.write(name, b * bs, chunk[:max(0, min(bs, size - b * bs))])
        elif op != "none":
            raise ValueError(op)
        if len(self.disks[name]) > self.max_size:  # keep the disks small
            self.truncate(name, self.max_size - rng.randint(1, bs - 1))

    def random_day(self) -> list[str]:
        """0-3 random changes on random disks; about one day in six changes nothing."""
        done = []
        if self.rng.random() < 1 / 6 or not self.disks:
            return done
        for _ in range(self.rng.randint(1, 3)):
            op = self.rng.choice(self.OPS)
            name = self.rng.choice(sorted(self.disks))
            self.mutate(op, name)
            done.append(f"{op}:{name}")
        return done

    def assert_files_match(self) -> None:
        for name, buf in self.disks.items():
            assert self.path(name).read_bytes() == bytes(buf), f"simulator out of sync: {name}"

    def backup(self, repo: Path, at: datetime, *, method: str = "forward", keep: int = 14,
               active_full: bool = False, compression: str = "optimal",
               job: str = JOB, machine: str = MACHINE):
        return take_backup(Path(repo), job, machine, self.paths(), method=method,
                           active_full=active_full, keep=keep, block_size=self.bs,
                           compression=compression, at=at)
