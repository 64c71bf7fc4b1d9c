"""`ferry` entry point routing: console, serve, everything else to engine.cli."""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import pytest

from console import entry
from engine.jobsdir import SAMPLE_JOBS, default_jobs


def test_no_args_and_console_open_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    monkeypatch.setattr(entry, "run_console", lambda argv: calls.append(list(argv)) or 0)
    assert entry.main([]) == 0
    assert entry.main(["console", "--jobs", "/x"]) == 0
    assert calls == [[], ["--jobs", "/x"]]


def test_console_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    class FakeApp:
        def __init__(self, jobs: Path, theme: str | None = None) -> None:
            seen.update(jobs=jobs, theme=theme)

        leave_running = False

        def run(self) -> int:
            return 0

        def local_runs(self) -> list[Any]:
            return []

    monkeypatch.setitem(sys.modules, "console.app", types.SimpleNamespace(FerryConsole=FakeApp))
    assert entry.run_console([]) == 0
    assert seen == {"jobs": default_jobs(), "theme": None}
    assert entry.run_console(["--jobs", "/srv/jobs", "--theme", "ferry-mono"]) == 0
    assert seen == {"jobs": Path("/srv/jobs"), "theme": "ferry-mono"}


def test_default_jobs_dir_is_the_bundled_samples(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FERRY_JOBS", raising=False)
    assert SAMPLE_JOBS == Path(entry.__file__).resolve().parents[1] / "sample_repos" / "jobs"
    assert default_jobs() == SAMPLE_JOBS  # a source checkout: `make run` shows the samples
    monkeypatch.setenv("FERRY_JOBS", "/srv/jobs")
    assert default_jobs() == Path("/srv/jobs")


def test_serve_binds_localhost_and_runs_python_m_console(monkeypatch: pytest.MonkeyPatch) -> None:
    made: dict[str, Any] = {}

    class FakeServer:
        def __init__(self, command: str, host: str, port: int, title: str) -> None:
            made.update(command=command, host=host, port=port)

        def serve(self) -> None:
            made["served"] = True

    import textual_serve.server

    monkeypatch.setattr(textual_serve.server, "Server", FakeServer)
    assert entry.main(["serve", "--port", "8123", "--jobs", "/srv/jobs"]) == 0
    assert made["host"] == "127.0.0.1" and made["port"] == 8123 and made["served"]
    assert "-m console --jobs /srv/jobs" in made["command"]


def test_other_commands_go_to_engine_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    fake = types.SimpleNamespace(main=lambda argv: calls.append(argv) or 3)
    monkeypatch.setitem(sys.modules, "engine.cli", fake)
    assert entry.main(["run", "job.toml", "--dry-run"]) == 3
    assert calls == [["run", "job.toml", "--dry-run"]]


def test_engine_cli_missing_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "engine.cli", None)  # import raises ImportError
    assert entry.main(["history"]) == 2
    assert capsys.readouterr().err.startswith("ferry: the command line is not available")
