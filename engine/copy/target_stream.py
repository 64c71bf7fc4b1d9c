"""The stream a task talks to its target through: an in-process target mover in a
thread (a folder or a bucket), or a remote `ferry mover` (`engine.copy.links`:
TLS, SSH, loopback TCP). Either way the same frames travel, so `transferred`
counts the same bytes.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from engine.copy import transport as t
from engine.copy.target import TargetMover
from engine.repository.repository import Repository

if TYPE_CHECKING:
    from engine.jobs.schema import JobSpec
    from engine.objstore.repo import S3Repository
    from engine.objstore.target import S3TargetMover

PIPE_FRAMES = 8  # BLOCK frames between an in-process source and target mover (1 MiB blocks: <= 8 MiB)


def connect_target(spec: JobSpec, target_repo: Repository | S3Repository
                   ) -> tuple[t.Endpoint, threading.Thread | None]:
    """A stream to the target mover: in-process by default, remote (TLS, SSH, loopback
    TCP: engine.copy.links) when `[target] mover` is set."""
    address = spec.target.mover
    if address:
        from engine.copy.links import connect

        return connect(spec), None
    s3 = spec.target.s3 is not None
    # an S3 target hands frames straight to its upload pool, which bounds what it holds
    # itself: a short pipe keeps the peak RSS down (boto3 alone takes ~28 MiB); a folder
    # target's writer double-buffers, so PIPE_FRAMES frames in between are enough
    src_end, dst_end = t.pipe(4 if s3 else PIPE_FRAMES)
    mover: TargetMover | S3TargetMover
    if isinstance(target_repo, Repository):
        mover = TargetMover(target_repo, dst_end)
    else:  # `[target] s3` (engine.objstore.open.target_repository)
        from engine.objstore.target import S3TargetMover

        mover = S3TargetMover(target_repo, dst_end, spec.storage.immutable_days, trusted=True)
    th = threading.Thread(target=mover.serve, name="ferry-target-mover", daemon=True)
    th.start()
    return src_end, th


def disconnect(end: t.Endpoint, mover: threading.Thread | None) -> None:
    """Say goodbye on a stream from `connect_target` and close it; an in-process mover
    gets 30 s to finish its last frame."""
    try:
        end.send_json(t.BYE, {})
    except t.StreamError:
        pass
    end.close()
    if mover is not None:
        mover.join(timeout=30)
