"""console.backend: friendly failures, the `enabled` line edit, atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from console.backend import Backend, EngineUnavailable, engine_function
from engine.jobtext import atomic_write, set_top_level_key


def test_missing_module_is_a_friendly_error() -> None:
    with pytest.raises(EngineUnavailable, match="engine.nope is not available"):
        engine_function("engine.nope", "x")
    with pytest.raises(EngineUnavailable, match="engine.units.nope is not available"):
        engine_function("engine.units", "nope")


def test_missing_jobs_folder(tmp_path: Path) -> None:
    with pytest.raises(EngineUnavailable, match="does not exist"):
        Backend(tmp_path / "nowhere").discover()


@pytest.mark.parametrize("text, expected", [
    ('name = "a"\n[source]\n', 'name = "a"\nenabled = false\n[source]\n'),
    ('# top\nname = "a"\nenabled = true  # why\n[x]\nenabled = true\n',
     '# top\nname = "a"\nenabled = false  # why\n[x]\nenabled = true\n'),
    ('[source]\nenabled = true\n', 'enabled = false\n[source]\nenabled = true\n'),
])
def test_enabled_line_edit_keeps_everything_else(text: str, expected: str) -> None:
    assert set_top_level_key(text, "enabled", "false") == expected


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "job.toml"
    path.write_text("old")
    atomic_write(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["job.toml"]


def test_set_enabled_on_a_real_job_file(tmp_path: Path) -> None:
    pytest.importorskip("engine.jobfile")
    from console_real_repos import build

    jobs = build(tmp_path)
    spec = Backend(jobs).set_enabled(jobs / "dr-copy.toml", False)
    assert spec.enabled is False
    assert (jobs / "dr-copy.toml").read_text().startswith("# DR copy of the Daily backups")
