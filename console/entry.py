"""The `ferry` console script.

- `ferry` or `ferry console [--jobs DIR]` -> the Textual console
- `ferry serve [--port N] [--jobs DIR]`   -> the console in a browser page on 127.0.0.1
- `ferry samples [--out DIR]`             -> the sample repositories, then the console on them
- anything else                            -> `engine.cli.main(argv)`
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from engine.jobsdir import default_jobs, user_jobs

if TYPE_CHECKING:
    from console.app import FerryConsole


def _console_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Ferry operations console")
    parser.add_argument("--jobs", type=Path, default=None,
                        help="folder of job files (default: $FERRY_JOBS, else the bundled "
                             "samples of a source checkout, else ~/.config/ferry/jobs)")
    parser.add_argument("--theme", default=None,
                        help="theme name: ferry-dark, ferry-light, ferry-high-contrast, ferry-mono "
                             "(default: ferry-dark; ferry-mono with NO_COLOR)")
    return parser


def run_console(argv: Sequence[str], prog: str = "ferry console") -> int:
    args = _console_parser(prog).parse_args(list(argv))
    args.jobs = args.jobs or _jobs_folder()
    from console import detach

    if sys.stdin.isatty() and sys.stdout.isatty() and not os.environ.get("FERRY_NO_SUPERVISOR"):
        detach.supervise()  # before any thread: "leave running" gives the shell back
    from console.app import FerryConsole

    app = FerryConsole(args.jobs, theme=args.theme)
    code = app.run()
    finish_runs(app, args.jobs)
    return int(code or 0)


def _jobs_folder() -> Path:
    """The default folder; the admin's own one is created on first use, so that an
    installed console opens on "no job files yet: n creates one"."""
    folder = default_jobs()
    if folder == user_jobs():
        folder.mkdir(parents=True, exist_ok=True)
    return folder


def finish_runs(app: FerryConsole, jobs: Path) -> None:
    """The UI is gone; this console's runs still going on finish here, headless."""
    from console import detach

    running = app.local_runs()
    if not running:
        return
    if app.leave_running:
        names = ", ".join(s.job for s in running)
        detach.to_background(
            f"ferry: {names} go on in the background (pid {os.getpid()}); "
            f"ferry sessions --jobs {jobs} shows them, a new console too")
    for session in running:
        session.thread_done.wait()


def serve(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="ferry serve",
                                     description="the console in a browser (127.0.0.1 only)")
    parser.add_argument("--port", type=int, default=8000,
                        help="the port on 127.0.0.1 (default: 8000)")
    parser.add_argument("--jobs", type=Path, default=None,
                        help="folder of job files (default: as `ferry console`)")
    args = parser.parse_args(list(argv))
    args.jobs = args.jobs or _jobs_folder()
    try:
        from textual_serve.server import Server
    except ImportError:
        print("ferry serve: textual-serve is not installed (pip install 'ferry[serve]')",
              file=sys.stderr)
        return 2
    command = " ".join(shlex.quote(part) for part in (
        sys.executable, "-m", "console", "--jobs", str(Path(args.jobs).resolve())))
    # No authentication in textual-serve: bind to localhost only; reach it over an SSH tunnel.
    Server(command, host="127.0.0.1", port=args.port, title="Ferry").serve()
    return 0


def samples_folder() -> Path:
    """Where `ferry samples` builds: the admin's data folder (an install has no other)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ferry" / "samples"


def _samples_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ferry samples", description="build the sample repositories (once: about a "
        "minute) and open the console on their copy jobs, as `make run` does in a checkout")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for jobs/, primary/ and dr/ (default: "
                             "$XDG_DATA_HOME/ferry/samples, else ~/.local/share/ferry/samples)")
    parser.add_argument("--no-console", action="store_true",
                        help="build only; print the jobs folder")
    return parser


def samples(argv: Sequence[str]) -> int:
    args = _samples_parser().parse_args(list(argv))
    from sample_repos.generate import install

    jobs = install(args.out or samples_folder())
    if args.no_console:
        print(jobs)
        return 0
    return run_console(["--jobs", str(jobs)])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] == "console":
        return run_console(argv[1:])
    if argv[0] == "serve":
        return serve(argv[1:])
    if argv[0] == "samples":
        return samples(argv[1:])
    try:
        from engine.cli import main as engine_main
    except ImportError as exc:
        print(f"ferry: the command line is not available ({exc})", file=sys.stderr)
        return 2
    result = engine_main(argv)
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
