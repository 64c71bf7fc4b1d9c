"""Health check: re-hash stored blocks and name every corrupt one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.keys import KeyRing
from engine.objstore.manifest import ManifestError
from engine.objstore.open import open_repository
from engine.objstore.store import ObjectDamaged, ObjectMissing, S3Error
from engine.repository.container import FLAG_SEALED, ContainerError
from engine.repository.metadata import MetadataError
from engine.repository.repository import Repository


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
        seen: dict[tuple[str, int], str] = {}  # stored block -> problem ("" = fine)
        reported: set[tuple[str, int, str]] = set()  # (disk, block, file) named once
        for point in points:
            res.points.append(point.id)
            try:
                view = repo.view(meta, point, keys)
            except (ContainerError, ManifestError, S3Error, LookupError, OSError) as exc:
                res.errors.append(f"point {point.id}: {exc}")
                continue
            with view:
                for disk in view.disks:
                    for b, loc in sorted(view.blocks(disk.name).items()):
                        layer = view.layers[loc.layer]
                        key = (layer.path.name, loc.entry.offset, loc.entry.digest)
                        res.blocks += 1
                        if key not in seen:  # a block stored once is read once ...
                            deep = keys is not None or not loc.entry.flags & FLAG_SEALED
                            seen[key] = _problem(view, loc, deep)
                        problem = seen[key]  # ... but every disk block using it is named
                        named = (disk.name, b, layer.path.name)
                        if problem and named not in reported:
                            reported.add(named)
                            res.corrupt.append(CorruptBlock(disk.name, b, layer.path.name, problem))
    return res


def check_repository(repo_path: Path | str, job: str | None = None, machine: str | None = None,
                     all_points: bool = False, keys: KeyRing | None = None) -> list[CheckResult]:
    repo = open_repository(repo_path)
    pairs = [(j, m) for j, m in repo.machines(job) if machine is None or m == machine]
    return [check_machine(repo, j, m, all_points, keys) for j, m in pairs]


def _problem(view, loc, deep: bool) -> str:
    """What is wrong with one stored block ("" = fine); a missing object is a problem too."""
    try:
        return (view.read_verified(loc) if deep else view.read_checked(loc))[1]
    except ObjectDamaged:
        return "stored checksum mismatch (object damaged)"
    except S3Error as exc:
        return "object missing" if isinstance(exc, ObjectMissing) else f"unreadable ({exc})"
