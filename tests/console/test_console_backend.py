"""console.backend: friendly failures, the `enabled` switch, atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.backend import Backend, EngineUnavailable
from engine.jobs.text import atomic_write
from engine.model import Status


def test_missing_jobs_folder(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match="does not exist"):
        Backend(tmp_path / "nowhere").discover()


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text("old")
    atomic_write(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["job.toml"]


def test_set_enabled_on_a_real_job_file(tmp_path: Path) -> None:
    from console_real_repos import build

    jobs = build(tmp_path)
    spec = Backend(jobs).set_enabled(jobs / "dr-copy.toml", False)
    assert spec.enabled is False
    assert (jobs / "dr-copy.toml").read_text().startswith("# DR copy of the Daily backups")


def test_real_backend_reads_chains_and_history(tmp_path: Path) -> None:
    """Typed records from a real repository: JobSpec in, MachineInfo and LastRun out."""
    from console_real_repos import build

    from engine.cli import main

    jobs = build(tmp_path)
    backend = Backend(jobs)
    (entry,) = backend.discover()
    assert entry.spec is not None and entry.spec.name == "DR copy"
    assert backend.last_run(entry.spec) is None
    infos = backend.machines(entry.spec)
    assert [i.name for i in infos] == ["db01", "web01", "web02"]
    assert [i.behind for i in infos] == [1, 1, 1]
    assert main(["run", str(jobs / "dr-copy.toml")]) == 0
    infos = backend.machines(entry.spec)
    assert [i.behind for i in infos] == [0, 0, 0]
    assert all(i.target_size > 0 for i in infos)
    last = backend.last_run(entry.spec)
    assert last is not None and last.session.status == Status.SUCCESS
    assert sorted(t.machine for t in last.tasks) == ["db01", "web01", "web02"]


def test_whatif_defaults_to_the_real_chains_like_ferry_preview(tmp_path: Path) -> None:
    """The console's what-if and `ferry preview` are one code path: with no sizing model
    both size from the real chains, day by day the same."""
    from datetime import datetime

    from console_real_repos import build

    from engine.cli import main
    from engine.preview_cli import WhatIf, build_preview
    from engine.preview_render import preview_json

    jobs = build(tmp_path)
    backend = Backend(jobs)
    (entry,) = backend.discover()
    assert entry.spec is not None
    assert main(["run", str(jobs / "dr-copy.toml")]) == 0
    spec = entry.spec
    start = datetime(2026, 11, 25, 22, 0)
    console = backend.simulate(spec, spec.retention, start, 20, None)
    cli = build_preview(spec, WhatIf(start=start, days=20))
    assert preview_json(console) == preview_json(cli)
    real = backend.real_sizing(spec)
    assert real is not None and real.full > 0
    assert console.days[0].total_size >= real.full  # real sizes, not a 100 GiB model
    assert console.days[0].total_size < 100 * 1024**3 * 0.5
