"""Retention on S3 equals `ferry preview`: a GFS job (short-term + weekly + monthly)
replayed day by day against a real Ceph gateway, compared with `engine.simulate` on
every day, every retained point exported byte-identical at the end."""

from __future__ import annotations

from retention_e2e.replaykit import Lab, compare_with_preview, no_fsync, run_replay

from engine.objstore.open import open_repository

GFS = """
[retention.gfs]
weekly = { keep_weeks = 2, day = "sunday" }
monthly = { keep_months = 1, week = "first" }
"""


class S3Lab(Lab):
    """The replay lab with its copy target in a bucket."""

    def __init__(self, root, url: str, **kw):
        super().__init__(root, **kw)
        self.dst = url
        self._repo = None

    def chain(self, job: str, machine: str = "vm1") -> list:
        if self._repo is None:
            self._repo = open_repository(self.dst)
        meta = self._repo.try_load(job, machine)
        return meta.points if meta else []


def test_gfs_on_s3_equals_preview_every_day(tmp_path, bucket, monkeypatch):
    no_fsync(monkeypatch)
    lab = S3Lab(tmp_path, f"s3://{bucket}/dr", blocks=4)
    job = lab.job("S3 GFS", keep=3, retention=GFS)
    days = 38  # Sunday 2026-11-01 .. past the first week of December
    rep = run_replay(lab, job, days)
    assert compare_with_preview(rep) == days
    last = rep.real[-1]
    flags = "".join(f for _, _, f in last)
    assert "M" in flags and flags.count("W") == 2, last  # the preview's fulls, on S3
    deleted = [a for res in rep.runs for a in res.retention if a["action"] == "delete-chain"]
    assert deleted, "old chains left the bucket as the preview says"
    assert rep.exports_checked == len(last)
