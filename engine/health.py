"""Health check: re-hash stored blocks and name every corrupt one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.keys import KeyRing
from engine.objstore.manifest import ManifestError
from engine.objstore.open import open_repository
from engine.objstore.repo import S3Repository
from engine.objstore.store import ObjectDamaged, ObjectMissing, S3Error
from engine.repository.container import FLAG_SEALED, ContainerError
from engine.repository.metadata import MetadataError
from engine.repository.repository import Repository
from engine.repository.resolve import Located, PointView


@dataclass
class CorruptBlock:
    disk: str
    block: int
    file: str
    reason: str
    point: str = ""  # the state of `file` the block was read at
    digest: str = ""  # hex, as the target knows it (keyed when encrypted)
    raw: int = 0

    def record(self) -> dict[str, Any]:
        """As kept in `facts["damaged"]` (engine.repository.damage)."""
        return {"file": self.file, "point": self.point, "disk": self.disk, "block": self.block,
                "digest": self.digest, "raw": self.raw, "reason": self.reason}


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


def check_machine(repo: Repository | S3Repository, job: str, machine: str, all_points: bool = False,
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
        res.errors += _metadata_copies(repo, job, machine)
        points = meta.points if all_points else meta.points[-1:]
        seen: dict[tuple[str, int, bytes], str] = {}  # stored block -> problem ("" = fine)
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
                            res.corrupt.append(CorruptBlock(
                                disk.name, b, layer.path.name, problem,
                                str(getattr(layer, "state", "")), loc.entry.digest.hex(),
                                loc.entry.raw))
    return res


def check_repository(repo_path: Path | str, job: str | None = None, machine: str | None = None,
                     all_points: bool = False, keys: KeyRing | None = None,
                     record: bool = False) -> list[CheckResult]:
    """`record`: keep what was found in each machine's metadata (`facts["damaged"]`), so
    the copy job's next run (or `ferry check --repair`) re-fetches it from the source."""
    repo = open_repository(repo_path)
    pairs = [(j, m) for j, m in repo.machines(job) if machine is None or m == machine]
    results = [check_machine(repo, j, m, all_points, keys) for j, m in pairs]
    if record and isinstance(repo, Repository):
        for r in results:
            if r.corrupt:
                record_findings(repo, r)
    return results


def record_findings(repo: Repository, res: CheckResult) -> None:
    """Add a check's corrupt blocks to the machine's damage records (exclusive lock)."""
    from engine.repository.damage import add_records
    from engine.repository.locks import COPY_LOCK_WAIT

    blocks = [c.record() for c in res.corrupt if c.digest and c.point]
    if not blocks:
        return
    with repo.lock(res.job, res.machine, exclusive=True, wait=COPY_LOCK_WAIT):
        meta = repo.load(res.job, res.machine)
        add_records(meta, blocks)
        repo.save(meta)


def _problem(view: PointView, loc: Located, deep: bool) -> str:
    """What is wrong with one stored block ("" = fine); a missing object is a problem too."""
    try:
        return (view.read_verified(loc) if deep else view.read_checked(loc))[1]
    except ObjectDamaged:
        return "stored checksum mismatch (object damaged)"
    except S3Error as exc:
        return "object missing" if isinstance(exc, ObjectMissing) else f"unreadable ({exc})"


def _metadata_copies(repo: Repository | S3Repository, job: str, machine: str) -> list[str]:
    """A damaged copy of the metadata (the other one serves): said, so it gets rewritten."""
    if not isinstance(repo, Repository):
        return []
    from engine.repository.metadata import copy_path, read_one

    path = repo.meta_path(job, machine)
    out = []
    for p in (path, copy_path(path)):
        if not p.exists() and p is not path:
            continue  # no copy yet: written by the next save (repositories made before it)
        try:
            read_one(p)
        except MetadataError as exc:
            out.append(f"{exc}; its other copy serves (the next run or `ferry check "
                       f"--rebuild` rewrites it)")
    return out
