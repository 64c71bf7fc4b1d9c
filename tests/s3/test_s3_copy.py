"""Copies to object storage on a real Ceph cluster: every point exported byte-identical."""

from __future__ import annotations

from datetime import timedelta

from copyjob.conftest import T0, Source, write_job

from engine.copy.runner import run_job
from engine.jobs.load import load_job
from engine.objstore.open import open_repository
from engine.restore import export_point


def s3_job(tmp_path, src: Source, url: str, name: str = "S3 copy", keep: int = 7,
           extra: str = "", mode: str = "periodic"):
    path = write_job(tmp_path / f"{name}.toml", name, src.repo,
                     sorted({src.job_of(m) for m in src.machines.values()}),
                     tmp_path / "unused", extra=extra, keep=keep, mode=mode)
    path.write_text(path.read_text().replace(f'repository = "{tmp_path / "unused"}"',
                                             f'repository = "{url}"'))
    return load_job(path)


def test_three_methods_copied_and_exported_byte_identical(tmp_path, bucket):
    src = Source(tmp_path)
    url = f"s3://{bucket}/dr"
    copied = {}
    for day in range(4):
        src.backup(T0 + timedelta(days=day))
        spec = s3_job(tmp_path, src, url, mode="immediate")
        res = run_job(spec, at=T0 + timedelta(days=day, hours=1))
        assert res.status == "Success", res.to_json()
        for m in src.machines.values():
            copied.setdefault(m.name, []).append(m.states[list(m.states)[-1]])
    repo = open_repository(url)
    assert sorted(m for _, m in repo.machines("S3 copy")) == sorted(src.machines)
    for name, states in copied.items():
        meta = repo.load("S3 copy", name)
        assert len(meta.points) == 4
        for i, p in enumerate(meta.points):
            out = tmp_path / "out" / name / p.id
            export_point(url, "S3 copy", name, p.id, out)
            assert (out / "disk0.img").read_bytes() == states[i], (name, i)
