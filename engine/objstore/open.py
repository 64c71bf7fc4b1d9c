"""Open a repository by what the user typed: a folder, or `s3://bucket/prefix`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from engine.objstore.location import is_s3_url, parse_s3_url
from engine.repository.repository import Repository

if TYPE_CHECKING:
    from engine.objstore.location import S3Location
    from engine.objstore.repo import S3Repository


class TargetTable(Protocol):
    """What picks a job's target: `[target]` of a JobSpec (or of a preview's job)."""

    @property
    def repository(self) -> Path: ...
    @property
    def s3(self) -> S3Location | None: ...


class Targeted(Protocol):
    """A job, as far as its target goes."""

    @property
    def target(self) -> TargetTable: ...


def open_repository(ref: str | Path | Repository | S3Repository) -> Repository | S3Repository:
    """A `Repository` for a folder, an `S3Repository` for an s3:// URL (env endpoint/keys);
    an already open repository (e.g. a job's `target_repository`, with its own endpoint
    and key variables) is returned as it is."""
    from engine.objstore.repo import S3Repository

    if isinstance(ref, Repository | S3Repository):
        return ref
    if isinstance(ref, str) and is_s3_url(ref):
        return S3Repository(parse_s3_url(ref))
    return Repository(ref)


def target_repository(spec: Targeted) -> Repository | S3Repository:
    """The job's target: its folder, or its object storage repository."""
    loc = spec.target.s3
    if loc is not None:
        from engine.objstore.repo import S3Repository

        return S3Repository(loc)
    return Repository(spec.target.repository)
