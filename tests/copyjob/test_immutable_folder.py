"""[storage] immutable_days on a folder target: retention keeps the points younger than
N days (the rule shared with S3 and the preview), `ferry chain --json` names until when."""

from __future__ import annotations

from datetime import timedelta

from engine.cli import chain_json
from engine.copy.runner import run_job
from engine.jobfile import load_job
from engine.repository.repository import Repository

from .conftest import T0, Source, exported, write_job


def test_folder_target_keeps_immutable_points_and_shows_until(tmp_path):
    src = Source(tmp_path, methods=("forever-forward",))
    m = src.machines["vm-forever-forward"]
    dst = tmp_path / "dr"
    job = load_job(write_job(tmp_path / "j.toml", "Imm", src.repo, ["Forever"], dst, keep=2,
                             extra="[storage]\nimmutable_days = 3\n"))
    for day in range(5):
        src.backup(T0 + timedelta(days=day))
        res = run_job(job, at=T0 + timedelta(days=day, hours=1))
        assert res.status == "Success", [t.message for t in res.tasks]
    meta = Repository(dst).load("Imm", m.name)
    # keep = 2 alone would leave 2 points; days 2, 3 and 4 are younger than 3 days
    assert [p.time for p in meta.points] == [T0 + timedelta(days=d) for d in (2, 3, 4)]
    points = chain_json(dst, "Imm", m.name)["chains"][0]["points"]
    for p, shown in zip(meta.points, points, strict=True):
        want = (p.time + timedelta(days=3)).astimezone().isoformat(timespec="seconds")
        assert shown["immutable_until"] == want
        assert exported(dst, "Imm", m.name, p.id, tmp_path / "x" / p.id) == m.states[
            p.source_point]
