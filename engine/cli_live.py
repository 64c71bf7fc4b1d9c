"""`ferry sessions`, `ferry hold|resume|stop JOB [--machine M]`: live runs from a shell.

The same mechanism the console uses (`engine.live`): sessions are found in the
jobs folder's (and the targets') `.ferry/sessions/`, acted on over their socket.
JOB is a job's name (looked up in --jobs DIR) or its file.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import CommandError
from engine.jsonout import emit
from engine.units import fmt_size

if TYPE_CHECKING:
    from engine.jobs.load import JobSpec
    from engine.live.client import SessionInfo


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    s = sub.add_parser("sessions", help="the runs going on now on this host, whoever started them")
    s.add_argument("--jobs", type=Path, help="jobs folder (default: $FERRY_JOBS or the samples)")
    s.add_argument("--json", action="store_true", help="print JSON")
    for verb, text in (("hold", "hold a running job (or one machine) at its next block"),
                       ("resume", "resume a held job (or one machine)"),
                       ("stop", "stop a running job (or one machine's task)")):
        p = sub.add_parser(verb, help=text)
        p.add_argument("job", help="the job's name or its file")
        p.add_argument("--machine", default="", help="only this machine")
        p.add_argument("--jobs", type=Path,
                       help="jobs folder to find JOB by name (default: $FERRY_JOBS or the samples)")


def _jobs_dir(args: argparse.Namespace) -> Path:
    from engine.cli import UsageError
    from engine.jobsdir import default_jobs

    folder = args.jobs or default_jobs()
    if not folder.is_dir():
        raise UsageError(f"ferry {args.command}: jobs folder not found: {folder}")
    return folder


def _specs(folder: Path) -> list[JobSpec]:
    from engine.jobs.load import discover_jobs

    return [spec for _, spec in discover_jobs(folder) if not isinstance(spec, Exception)]


def cmd_sessions(args: argparse.Namespace) -> int:
    from engine.live import paths
    from engine.live.client import list_sessions
    from engine.rpo import check_job

    folder = _jobs_dir(args)
    specs = _specs(folder)
    infos = list_sessions(paths.search_dirs(folder, specs))
    # the RPO monitor of each job that sets one (`[schedule] rpo`), as `ferry history`
    rpo = [(spec.name, check_job(spec)) for spec in specs if spec.schedule.rpo is not None]
    if args.json:
        emit({"sessions": [i.to_json() for i in infos],
              "rpo": [verdict.to_json(job) for job, verdict in rpo]})
        return 0
    from rich.console import Console  # only for tables: rich costs ~35 ms a start
    from rich.table import Table

    con = Console()
    for job, verdict in rpo:
        if verdict.late:
            con.print(f"Warning · {job}: {verdict.summary}", style="yellow", markup=False,
                      highlight=False)
    if not infos:
        print("no sessions running")
        return 0
    for info in infos:
        s = info.to_json()
        t = Table(title=f"{s['job']}  {s['state']}  (session {s['session']}, pid {s['pid']}, "
                  f"started by {s['started_by']} at {s['started'][:19].replace('T', ' ')})"
                  + (f"  on hold by {s['held_by']}" if s["held_by"] else ""),
                  title_justify="left")
        for col in ("machine", "state", "kind", "processed", "read", "transferred", "note"):
            t.add_column(col)
        for m in s["machines"]:
            state = m["state"] + (f" ({m['held_by']})" if m["held_by"] else "")
            done = f"{fmt_size(m['processed'])} of {fmt_size(m['total'])}" if m["total"] \
                else fmt_size(m["processed"])
            t.add_row(m["machine"], state, m["kind"], done, fmt_size(m["read"]),
                      fmt_size(m["transferred"]), m["message"])
        con.print(t)
    return 0


def find_running(args: argparse.Namespace) -> list[SessionInfo]:
    """The live sessions of JOB (name or file); one line and exit 2 when none runs."""
    from engine.jobs.load import load_job
    from engine.live import paths
    from engine.live.client import list_sessions

    path = Path(args.job)
    if path.suffix == ".toml" or path.is_file():
        spec = load_job(path)
        name, dirs = spec.name, paths.search_dirs(path.resolve().parent, [spec])
    else:
        folder = _jobs_dir(args)
        name, dirs = args.job, paths.search_dirs(folder, _specs(folder))
    # fresh: the machines come from the run itself (its state file may lag by a write)
    live = [i for i in list_sessions(dirs, fresh=True) if i.job == name and i.alive]
    if not live:
        raise NothingRuns(f"ferry {args.command}: nothing of job {name!r} is running")
    if args.machine and not any(m.get("machine") == args.machine for i in live
                                for m in i.machines):
        raise NothingRuns(f"ferry {args.command}: job {name!r} has no machine "
                          f"{args.machine!r} in its running session")
    return live


class NothingRuns(CommandError):
    """Nothing of that job (or machine) runs: one line, exit 2."""


def cmd_control(args: argparse.Namespace) -> int:
    from engine.live.client import LiveError, control

    for info in find_running(args):
        try:
            control(info, args.command, args.machine)
        except LiveError as exc:
            raise CommandError(f"ferry {args.command}: {exc}") from None
        what = f"{info.job}" + (f" / {args.machine}" if args.machine else "")
        done = {"hold": "on hold (operator) at the next block",
                "resume": "resumed", "stop": "stopping at the next block"}[args.command]
        print(f"{what}: {done} (session {info.session}, pid {info.snapshot.get('pid')})")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {"sessions": cmd_sessions, "hold": cmd_control, "resume": cmd_control,
            "stop": cmd_control}

__all__ = ["COMMANDS", "add_commands"]
