"""A copy target lets the page cache forget a point's data once it is durable
(container.drop_cached): a copied point is not read back soon, and keeping it cached
made each new page cost a host fault on this kind of VM (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from engine.copy.runner import run_job
from engine.jobs.load import load_job
from engine.repository.repository import Repository

from .conftest import T0, Source, exported, write_job


def resident(path) -> int:
    out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip())


@pytest.mark.skipif(shutil.which("fincore") is None, reason="util-linux fincore not installed")
def test_copied_point_is_not_left_in_the_page_cache(tmp_path):
    src = Source(tmp_path, methods=("forward",), size=24 << 20)  # random: stored ~ raw
    src.backup(T0)
    job = write_job(tmp_path / "job.toml", "DR", src.repo, ["Daily"], tmp_path / "dr")
    res = run_job(load_job(job), at=T0)
    assert res.status == "Success", res.to_json()
    m = next(iter(src.machines.values()))
    meta = Repository(tmp_path / "dr").load("DR", m.name)
    point = tmp_path / "dr" / "DR" / m.name / meta.points[-1].file
    size = point.stat().st_size
    assert size > 20 << 20
    assert resident(point) < size // 10, (resident(point), size)
    # and what was dropped reads back exactly (from the disk now)
    assert exported(tmp_path / "dr", "DR", m.name, meta.points[-1].id, tmp_path / "out") == \
        m.states[meta.points[-1].source_point]
