"""The console's backend shows an S3 job like any other (its chains come from the bucket)."""

from __future__ import annotations

from datetime import timedelta

from copyjob.conftest import T0, Source

from console.backend import Backend
from engine.copy.runner import run_job

from .test_s3_copy import s3_job


def test_console_backend_reads_the_bucket(tmp_path, bucket):
    src = Source(tmp_path, methods=("forward",))
    m = src.machines["vm-forward"]
    src.backup(T0)
    spec = s3_job(tmp_path, src, f"s3://{bucket}/dr", mode="immediate")
    assert run_job(spec, at=T0 + timedelta(hours=1)).status == "Success"
    backend = Backend(tmp_path)
    [info] = backend.machines(spec)
    assert info.name == "vm-forward" and not info.error
    assert info.target is not None and len(info.target.points) == 1
    out = tmp_path / "out"
    backend.export_point(spec, "vm-forward", "latest", out)
    assert (out / "disk0.img").read_bytes() == list(m.states.values())[-1]
    # a bucket that is not there: the machine says why, nothing raises
    gone = s3_job(tmp_path, src, "s3://no-such-bucket-here/dr", name="Gone")
    [info] = backend.machines(gone)
    assert info.target is None and "target:" in info.error
