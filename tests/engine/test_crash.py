"""Crash safety: `ferry backup` killed with SIGKILL at named steps and at random moments.

After every kill: every point `ferry chain --json` lists exports exactly as the
disks were at its time, the interrupted point is either complete or absent,
and the next backup succeeds. The named steps are reached by construction
(`paused_backup.py` stops the real backup there and waits for the kill): inside the
new point's block writes, between its commits (a reverse backup's rollback and the
full's header slot), after the metadata names it, and inside the retention that
follows (a forever-forward merge, a deleted chain or rollback). Each step's outcome
is asserted exactly; the random kills only add moments nobody named, and assert
correctness, not where they landed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
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
from engine.repository.repository import Repository
from engine.restore import export_point
from engine.units import rfc3339

ROOT = Path(__file__).resolve().parents[2]
PAUSED_BACKUP = Path(__file__).with_name("paused_backup.py")
# the named kill steps of each method (paused_backup.py), and what a kill there leaves:
# before the metadata names the point it is absent; after, it is committed, and a kill
# inside the retention that follows leaves more points (or files) than retention wants
ABSENT, IN_PLACE = "absent", "absent, in-place write interrupted"
COMMITTED, RETAINING = "committed", "committed, retention interrupted"
STEPS: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    "forward": [("put:0", (ABSENT, IN_PLACE)), ("put:9", (IN_PLACE,)),
                ("commit:1", (IN_PLACE,)), ("save:1", (COMMITTED, RETAINING)),
                ("save:2", (RETAINING,))],
    "forever-forward": [("put:7", (IN_PLACE,)), ("commit:1", (IN_PLACE,)),
                        ("save:1", (RETAINING,)), ("retain-put:0", (RETAINING,)),
                        ("retain-put:1", (RETAINING,)), ("retain-commit", (RETAINING,)),
                        ("save:2", (RETAINING,))],
    "reverse": [("put:0", (ABSENT, IN_PLACE)), ("put:13", (IN_PLACE,)),
                ("commit:1", (IN_PLACE,)), ("commit:2", (IN_PLACE,)),
                ("save:1", (RETAINING,)), ("save:2", (RETAINING,))],
}
# steps only a backup whose retention removes something reaches
NEEDS_RETENTION = ("save:2", "retain-put:0", "retain-put:1", "retain-commit")
RANDOM_KILLS = 4  # per method, at any moment of a run


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
        self.last = ""  # the outcome of the last kill
        self.marker = tmp / "paused"

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

    def killed_backup(self, active: bool, window: tuple[float, float]) -> None:
        """A backup killed at a random moment of `window` seconds after its start."""
        when = self.next_time()
        self.history[when] = self.m.hashes()
        p = subprocess.Popen(ferry_cmd(*self.args(when, active)), cwd=ROOT, env=ferry_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(self.rng.uniform(*window))
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
        finally:
            _o, err = p.communicate(timeout=60)
        assert p.returncode in (0, -signal.SIGKILL), err
        self.after_kill(when, active, finished=p.returncode == 0)

    def retention_acts(self, active: bool) -> bool:
        """Whether the next backup's retention removes a point (the model says)."""
        model = ChainModel(self.method, self.keep)
        model.chains = [list(c) for c in self.model.chains]
        before = len(model.expected())
        model.add(day(self.n + 1), active)
        return len(model.expected()) <= before

    def paused_backup(self, active: bool, step: str) -> None:
        """A backup stopped at `step` and killed there; the step must be reached."""
        when = self.next_time()
        self.history[when] = self.m.hashes()
        self.marker.unlink(missing_ok=True)
        p = subprocess.Popen([sys.executable, str(PAUSED_BACKUP), step, str(self.marker),
                              "--", *self.args(when, active)], cwd=ROOT, env=ferry_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while not self.marker.exists() and p.poll() is None \
                    and time.monotonic() < deadline:
                time.sleep(0.01)
            reached = self.marker.exists()
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
        finally:
            _o, err = p.communicate(timeout=60)
        assert reached, f"step {step} not reached (exit {p.returncode}): {err}"
        assert p.returncode == -signal.SIGKILL, err
        self.after_kill(when, active, finished=False)

    def after_kill(self, when, active: bool, finished: bool) -> None:
        if not self.repo.exists():  # killed before it made the repository folder
            assert not self.ids
            self.outcomes["absent"] += 1
            self.last = "absent"
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
        self.last = kind

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
@pytest.mark.parametrize(("method", "keep", "seed"), [
    ("forward", 3, 71),
    ("forever-forward", 2, 72),  # keep=2: every backup merges
    ("reverse", 3, 73),  # every backup injects into the full
])
def test_sigkill_during_backup(tmp_path, method, keep, seed):
    s = Scenario(tmp_path, method, keep, seed)
    # the very first full, killed in its block writes and after its commit (no metadata
    # yet): nothing may be listed after either
    for step in ("put:3", "commit:1"):
        s.paused_backup(False, step)
        assert s.last.startswith("absent"), (step, s.last)
    s.backup()
    s.m.change(0.5)
    took = s.backup()
    kills = [(step, want) for step, want in STEPS[method]]
    i = 0
    for step, want in kills + [("random", ())] * RANDOM_KILLS:
        i += 1
        s.m.change(s.rng.uniform(0.3, 0.6))
        active = method == "forward" and i % 4 == 3
        if step in NEEDS_RETENTION:
            for _ in range(8):  # backups until the next one's retention removes a point
                if s.retention_acts(active):
                    break
                s.m.change(0.02)
                s.backup(active=method == "forward" and len(s.model.chains) < 2)
            assert s.retention_acts(active), f"{step}: no backup with retention in sight"
        try:
            if step == "random":
                s.killed_backup(active, (0.5 * took, 1.1 * took))
            else:
                s.paused_backup(active, step)
                assert s.last in want, f"{step}: outcome {s.last!r}, expected one of {want}"
            # the next backup succeeds, and the chain has the shape retention wants
            s.m.change(0.02)
            s.backup(cli=i % 4 == 0)
        except AssertionError as exc:
            listing = sorted(f.name for f in s.folder.iterdir()) if s.folder.is_dir() else []
            raise AssertionError(f"{method} kill {i} ({step}, active full {active}): {exc}"
                                 f"\noutcomes so far {dict(s.outcomes)}\nfolder {listing}"
                                 ) from exc
    print(f"\n{method}: one backup {took:.2f}s, outcomes {dict(s.outcomes)}")


@pytest.mark.parametrize("method", ["forward", "forever-forward", "reverse"])
def test_leftovers_are_never_listed_and_are_swept(tmp_path, method):
    """A run killed mid-write leaves a .part; leftovers of any kind are swept next time."""
    s = Scenario(tmp_path, method, 2, 74)
    s.backup()
    s.m.change(0.6)
    s.paused_backup(False, "put:9")  # killed inside its block writes
    parts = [f.name for f in s.folder.iterdir() if f.name.endswith(".part")]
    assert parts, "a kill inside the block writes leaves its .part"
    # leftovers of other crash moments: a metadata temp file, a renamed file never committed
    (s.folder / f"{MACHINE}.fbm.tmp").write_text("{half")
    (s.folder / f"{MACHINE}D2026-01-02T000000_0badc0de.fib").write_bytes(b"x" * 9000)
    res = run_ferry("chain", "--repo", s.repo, "--json")
    assert_ok(res)
    (chain,) = json.loads(res.stdout)["chains"]
    assert [p["id"] for p in chain["points"]] == s.ids
    s.m.change(0.01)
    s.backup()  # asserts the folder holds only what the metadata names
