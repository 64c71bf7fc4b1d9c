"""Health check: re-hash stored blocks and name every corrupt one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.keys import KeyRing
from engine.repository.container import FLAG_SEALED, ContainerError
from engine.repository.metadata import MetadataError
from engine.repository.repository import Repository
from engine.repository.resolve import PointView


@dataclass
class CorruptBlock:
    disk: str
    block: int
    file: str
    reason: str


@dataclass
class CheckResult:
    job: str
    machine: str
    points: list[str] = field(default_factory=list)  # ids checked
    blocks: int = 0
    corrupt: list[CorruptBlock] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # unreadable metadata or files

    @property
    def ok(self) -> bool:
        return not self.corrupt and not self.errors


def check_machine(repo: Repository, job: str, machine: str, all_points: bool = False,
                  keys: KeyRing | None = None) -> CheckResult:
    """Verify the latest point (or every point) of one machine under a shared lock.

    Plaintext blocks are decompressed and re-hashed. Sealed blocks of encrypted
    points are checked against their stored checksum without the password; with
    `keys` (`ferry check --deep`) they are also authenticated, opened and re-hashed.
    """
    res = CheckResult(job, machine)
    with repo.lock(job, machine, exclusive=False):
        try:
            meta = repo.load(job, machine)
        except MetadataError as exc:
            res.errors.append(str(exc))
            return res
        points = meta.points if all_points else meta.points[-1:]
        folder = repo.machine_dir(job, machine)
        seen: dict[tuple[str, int], str] = {}  # stored block -> problem ("" = fine)
        reported: set[tuple[str, int, str]] = set()  # (disk, block, file) named once
        for point in points:
            res.points.append(point.id)
            try:
                view = PointView(folder, meta, point, keys)
            except (ContainerError, LookupError, OSError) as exc:
                res.errors.append(f"point {point.id}: {exc}")
                continue
            with view:
                for disk in view.disks:
                    for b, loc in sorted(view.blocks(disk.name).items()):
                        layer = view.layers[loc.layer]
                        key = (layer.path.name, loc.entry.offset)
                        res.blocks += 1
                        if key not in seen:  # a block stored once is read once ...
                            deep = keys is not None or not loc.entry.flags & FLAG_SEALED
                            seen[key] = (view.read_verified(loc) if deep
                                         else view.read_checked(loc))[1]
                        problem = seen[key]  # ... but every disk block using it is named
                        named = (disk.name, b, layer.path.name)
                        if problem and named not in reported:
                            reported.add(named)
                            res.corrupt.append(CorruptBlock(disk.name, b, layer.path.name, problem))
    return res


def check_repository(repo_path: Path, job: str | None = None, machine: str | None = None,
                     all_points: bool = False, keys: KeyRing | None = None) -> list[CheckResult]:
    repo = Repository(repo_path)
    pairs = [(j, m) for j, m in repo.machines(job) if machine is None or m == machine]
    return [check_machine(repo, j, m, all_points, keys) for j, m in pairs]
