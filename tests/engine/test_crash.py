"""Crash safety: `ferry backup` killed with SIGKILL at many moments.

After every kill: every point `ferry chain --json` lists exports exactly as the
disks were at its time, the interrupted point is either complete or absent,
and the next backup succeeds. Kill moments are spread over the measured
duration of one backup, and some are aimed at the in-place phases: the merge
of forever-forward retention, the injection into a reverse incremental full,
and the retention that follows a committed point.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from enginekit import (
    BS,
    JOB,
    MACHINE,
    ChainModel,
    assert_ok,
    day,
    ferry_cmd,
    ferry_env,
    file_sha,
    popen_ferry,
    run_ferry,
    sha,
)

from engine.backup import take_backup
from engine.repository.container import SLOT_SIZE
from engine.repository.repository import Repository
from engine.restore import export_point
from engine.units import rfc3339

ROOT = Path(__file__).resolve().parents[2]
BUDGET = 25.0  # seconds of kills per method; at least 12 kills run whatever it takes


class BigMachine:
    """Two disks (about 16 MiB and 2 MiB) of compressible text: slow to compress at extreme."""

    def __init__(self, folder: Path, seed: int):
        self.folder = folder
        folder.mkdir(parents=True)
        self.rng = random.Random(seed)
        words = [bytes(self.rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(
            self.rng.randint(2, 9))) for _ in range(4000)]
        self.corpus = b" ".join(self.rng.choice(words) for _ in range(220_000))
        self.disks = {"sda": bytearray(), "sdb": bytearray()}
        for name, size in (("sda", 64 * BS + 12345), ("sdb", 8 * BS + 99)):
            self.disks[name] = bytearray(b"".join(self.block() for _ in range(-(-size // BS)))
                                         [:size])
            (folder / name).write_bytes(self.disks[name])

    def block(self) -> bytes:
        off = self.rng.randrange(len(self.corpus) - BS)
        return self.rng.randbytes(16) + self.corpus[off:off + BS - 16]

    def change(self, share: float) -> None:
        """Rewrite about `share` of the blocks of each disk; sometimes grow or shrink sda."""
        for name, buf in self.disks.items():
            nblocks = -(-len(buf) // BS)
            with open(self.folder / name, "r+b") as f:
                for b in self.rng.sample(range(nblocks), max(1, int(nblocks * share))):
                    data = self.block()[: len(buf) - b * BS]
                    buf[b * BS:b * BS + len(data)] = data
                    f.seek(b * BS)
                    f.write(data)
        r = self.rng.random()
        sda = self.disks["sda"]
        if r < 0.15:
            extra = self.rng.randint(1, 3 * BS)
            sda.extend(self.block()[:extra] if extra <= BS else bytes(extra))
            os.truncate(self.folder / "sda", len(sda))
            with open(self.folder / "sda", "r+b") as f:
                f.seek(len(sda) - extra)
                f.write(sda[-extra:])
        elif r < 0.25:
            del sda[len(sda) - self.rng.randint(1, 2 * BS):]
            os.truncate(self.folder / "sda", len(sda))
        if len(sda) > 72 * BS:
            del sda[68 * BS + 777:]
            os.truncate(self.folder / "sda", len(sda))

    def hashes(self) -> dict[str, str]:
        return {n: sha(bytes(b)) for n, b in self.disks.items()}

    def paths(self) -> list[Path]:
        return [self.folder / n for n in self.disks]


class Scenario:
    def __init__(self, tmp: Path, method: str, keep: int, seed: int):
        self.method, self.keep = method, keep
        self.repo = tmp / "repo"
        self.out = tmp / "out"
        self.m = BigMachine(tmp / "disks", seed)
        self.rng = random.Random(seed)
        self.model = ChainModel(method, keep)
        self.history: dict = {}  # time -> {disk: sha256}
        self.ids: list[str] = []  # the chain as last verified
        self.n = 0
        self.folder = Repository(self.repo).machine_dir(JOB, MACHINE)
        self.fbm = self.folder / f"{MACHINE}.fbm"
        self.outcomes: Counter = Counter()

    def args(self, when, active: bool) -> list[str]:
        args = ["backup", "--repo", str(self.repo), "--job", JOB, "--machine", MACHINE,
                "--method", self.method, "--keep", str(self.keep), "--block-size", "256KiB",
                "--compression", "extreme", "--at", when.isoformat()]
        for p in self.m.paths():
            args += ["--disk", str(p)]
        return args + (["--active-full"] if active else [])

    def next_time(self):
        self.n += 1
        return day(self.n)

    def backup(self, active: bool = False, cli: bool = True) -> float:
        """One backup that must succeed; returns its duration."""
        when = self.next_time()
        self.history[when] = self.m.hashes()
        t = time.monotonic()
        if cli:
            assert_ok(run_ferry(*self.args(when, active)))
        else:  # in-process: the same code without the interpreter start
            take_backup(self.repo, JOB, MACHINE, self.m.paths(), method=self.method,
                        active_full=active, keep=self.keep, block_size=BS,
                        compression="extreme", at=when)
        took = time.monotonic() - t
        self.model.add(when, active)
        meta = Repository(self.repo).load(JOB, MACHINE)
        assert [(p.time, p.kind.value) for p in meta.points] == self.model.expected()
        self.ids = [p.id for p in meta.points]
        self.verify_point(meta.points[-1].id, when)
        # the crash leftovers are swept: only what the metadata names is left
        want = {p.file for p in meta.points} | {self.fbm.name, "lock"}
        assert {f.name for f in self.folder.iterdir()} == want
        return took

    def _full_header(self) -> tuple[Path | None, bytes]:
        """The file an in-place rewrite goes to (the full) and its two header slots."""
        meta = Repository(self.repo).try_load(JOB, MACHINE)
        if not meta or self.method == "forward":
            return None, b""
        full = self.folder / (meta.points[0] if self.method == "forever-forward"
                              else meta.points[-1]).file
        with open(full, "rb") as f:
            return full, f.read(2 * SLOT_SIZE)

    def _ino(self) -> int:
        try:
            return os.stat(self.fbm).st_ino
        except FileNotFoundError:
            return 0

    def killed_backup(self, active: bool, strategy: str, window: tuple[float, float]) -> None:
        when = self.next_time()
        self.history[when] = self.m.hashes()
        ino = self._ino()
        full, header = self._full_header() if strategy == "slot-commit" else (None, b"")
        meta = Repository(self.repo).try_load(JOB, MACHINE) if self.repo.exists() else None
        named = [self.folder / p.file for p in meta.points] if meta else []
        p = subprocess.Popen(ferry_cmd(*self.args(when, active)), cwd=ROOT, env=ferry_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            if strategy == "uniform":
                time.sleep(self.rng.uniform(*window))
            else:  # wait for the moment, then a short random delay
                deadline = time.monotonic() + 60
                while p.poll() is None and time.monotonic() < deadline:
                    if strategy == "after-commit" and self._ino() != ino:
                        break
                    if strategy == "injection" and any(
                            f.name.endswith(".frb.part") for f in self.folder.iterdir()):
                        break
                    if strategy == "slot-commit":  # a new header slot: the metadata is next
                        with open(full, "rb") as f:
                            if f.read(2 * SLOT_SIZE) != header:
                                break
                        continue
                    if strategy == "file-gone" and not all(f.exists() for f in named):
                        break  # retention deletes what the metadata no longer names
                    time.sleep(0.0005)
                time.sleep(self.rng.uniform(*window))
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
        finally:
            _o, err = p.communicate(timeout=60)
        assert p.returncode in (0, -signal.SIGKILL), err
        self.after_kill(when, active, finished=p.returncode == 0)

    def after_kill(self, when, active: bool, finished: bool) -> None:
        if not self.repo.exists():  # killed before it made the repository folder
            assert not self.ids
            self.outcomes["absent"] += 1
            return
        # `ferry chain --json` runs while this process exports every point it lists
        chain = popen_ferry("chain", "--repo", self.repo, "--json")
        try:
            meta = Repository(self.repo).try_load(JOB, MACHINE)
            for p in meta.points if meta else []:  # every listed point still exports exactly
                self.verify_point(p.id, p.time)
        finally:
            stdout, stderr = chain.communicate(timeout=60)
        assert chain.returncode == 0, stderr
        chains = [c for c in json.loads(stdout)["chains"]
                  if (c["job"], c["machine"]) == (JOB, MACHINE)]
        points = chains[0]["points"] if chains else []
        assert [p["id"] for p in points] == [p.id for p in meta.points] if meta else not points
        ids = [p["id"] for p in points]
        times = [p["time"] for p in points]
        present = rfc3339(when) in times
        if finished:
            assert present
        if not present:  # the interrupted point left no trace in the chain
            assert ids == self.ids, "a kill before the commit changed the chain"
            kind = "absent"
            if self.in_place_leftovers(points):
                kind = "absent, in-place write interrupted"
        else:
            assert times[-1] == rfc3339(when), "the new point must be the newest"
            old = ids[:-1]
            assert old == self.ids[len(self.ids) - len(old):], "old points lost out of order"
            self.model.add(when, active)
            final = len(self.model.expected())
            assert final <= len(ids) <= len(self.ids) + 1
            kind = "finished" if finished else "committed"
            if len(ids) > final or self.orphans(points):
                kind = "committed, retention interrupted"
            self.ids = ids
        self.outcomes[kind] += 1

    def orphans(self, points) -> bool:
        named = {Path(p["file"]).name for p in points}
        return any(f.suffix in (".fbk", ".fib", ".frb") and f.name not in named
                   for f in self.folder.iterdir())

    def in_place_leftovers(self, points) -> bool:
        """Evidence that the kill hit an in-place rewrite of a named file (merge, injection)."""
        for p in points:
            path = self.repo / p["file"]
            if path.exists() and path.stat().st_size != p["size"]:
                return True
        return self.folder.is_dir() and (self.orphans(points) or any(
            f.name.endswith(".part") for f in self.folder.iterdir()))

    def verify_point(self, pid: str, when) -> None:
        want = self.history[when]
        if self.out.exists():
            for f in self.out.iterdir():
                f.unlink()
        paths = export_point(self.repo, JOB, MACHINE, pid, self.out)
        got = {p.name: file_sha(p) for p in paths}
        assert got == want, f"point {pid} at {when} does not export exactly"


@pytest.mark.slow
@pytest.mark.parametrize(("method", "keep", "kills", "seed"), [
    ("forward", 3, 16, 71),
    ("forever-forward", 2, 16, 72),  # keep=2: every backup merges
    ("reverse", 3, 16, 73),  # every backup injects into the full
])
def test_sigkill_during_backup(tmp_path, method, keep, kills, seed):
    s = Scenario(tmp_path, method, keep, seed)
    # how long the interpreter takes to start and refuse: no kill before that is useful
    t = time.monotonic()
    run_ferry("backup", "--repo", s.repo, "--job", JOB, "--machine", MACHINE, "--disk",
              s.m.paths()[0], "--keep", "0")
    start = time.monotonic() - t
    # the very first full, killed (no metadata yet): nothing may be listed after
    for _ in range(2):
        s.killed_backup(False, "uniform", (0.5 * start, 1.5 * start))
    if not s.ids:
        s.backup()
    # measure one heavy increment: the kill moments are spread over its duration
    s.m.change(0.5)
    took = s.backup()
    began = time.monotonic()
    for i in range(kills):
        if i >= 12 and time.monotonic() - began > BUDGET:  # a very busy machine
            break
        s.m.change(s.rng.uniform(0.3, 0.6))
        active = method == "forward" and i % 4 == 3
        # half the kills at any moment of the run, half at the commit boundaries
        if i % 2 == 0:
            strategy, window = "uniform", (0.8 * start, max(1.1 * took, start + 0.05))
        elif method != "forward" and i % 8 == 1:  # between the two commits of a rewrite
            strategy, window = "slot-commit", (0.0, 0.0)
        elif i % 8 == 3 or (method == "forward" and i % 8 == 7):
            strategy, window = "file-gone", (0.0, 0.0)
        elif method == "reverse" and i % 8 == 5:
            strategy, window = "injection", (0.0, max(0.02, 0.6 * (took - start)))
        else:
            strategy, window = "after-commit", (0.0, 0.015)
        try:
            s.killed_backup(active, strategy, window)
            # the next backup succeeds, and the chain has the shape retention wants
            s.m.change(0.02)
            s.backup(cli=i % 4 == 0)
        except AssertionError as exc:
            listing = sorted(f.name for f in s.folder.iterdir()) if s.folder.is_dir() else []
            raise AssertionError(f"{method} kill {i} ({strategy}, active full {active}): {exc}"
                                 f"\noutcomes so far {dict(s.outcomes)}\nfolder {listing}"
                                 ) from exc
    print(f"\n{method}: start {start:.2f}s, one backup {took:.2f}s, "
          f"outcomes {dict(s.outcomes)}")
    assert s.outcomes["absent"] + s.outcomes["absent, in-place write interrupted"] >= 1
    assert sum(v for k, v in s.outcomes.items() if k.startswith("committed")) >= 1
    if method == "reverse":
        assert s.outcomes["absent, in-place write interrupted"] >= 1, s.outcomes
    if method == "forever-forward":
        assert s.outcomes["committed, retention interrupted"] >= 1, s.outcomes


@pytest.mark.parametrize("method", ["forward", "forever-forward", "reverse"])
def test_leftovers_are_never_listed_and_are_swept(tmp_path, method):
    """A run killed mid-write leaves a .part; leftovers of any kind are swept next time."""
    s = Scenario(tmp_path, method, 2, 74)
    s.backup()
    s.m.change(0.6)
    when = s.next_time()
    s.history[when] = s.m.hashes()
    p = subprocess.Popen(ferry_cmd(*s.args(when, False)), cwd=ROOT, env=ferry_env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while p.poll() is None and time.monotonic() < deadline and not any(
            f.name.endswith(".part") for f in s.folder.iterdir()):
        time.sleep(0.0005)
    p.kill()
    p.wait()
    parts = [f.name for f in s.folder.iterdir() if f.name.endswith(".part")]
    assert parts, "the kill came too late to leave a .part"
    # leftovers of other crash moments: a metadata temp file, a renamed file never committed
    (s.folder / f"{MACHINE}.fbm.tmp").write_text("{half")
    (s.folder / f"{MACHINE}D2026-01-02T000000_0badc0de.fib").write_bytes(b"x" * 9000)
    res = run_ferry("chain", "--repo", s.repo, "--json")
    assert_ok(res)
    (chain,) = json.loads(res.stdout)["chains"]
    assert [p["id"] for p in chain["points"]] == s.ids
    s.m.change(0.01)
    s.backup()  # asserts the folder holds only what the metadata names
