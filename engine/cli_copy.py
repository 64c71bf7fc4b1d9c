"""`ferry` sub-commands of the backup copy job: run, retain, history, preview, daemon, key,
inventory (and `mover`, registered from engine/cli_mover.py)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.cli_mover import add_mover_command, cmd_mover
from engine.errors import CommandError
from engine.jobsdir import default_jobs
from engine.jsonout import emit
from engine.model import Status
from engine.objstore.location import is_s3_url
from engine.units import duration_between, fmt_duration, fmt_size, int_between, rfc3339

if TYPE_CHECKING:
    from types import TracebackType

    from rich.progress import TaskID

    from engine import events as ev
    from engine.copy.results import SessionResult
    from engine.jobs.schema import JobSpec
    from engine.password import Password
    from engine.rpo import RpoCheck


def parse_pct(text: str) -> float:
    try:
        return float(text.rstrip("%"))
    except ValueError:
        raise ValueError(f"not a percentage: {text!r}") from None


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser],
                 time_type: Callable[[str], object], size_type: Callable[[str], object]) -> None:
    """Register the copy-job commands on the main parser's sub-parsers."""
    from engine.cli import arg_type, repo_arg
    from engine.units import MAX_RANGE_DAYS, parse_dates

    _pct, _dates = arg_type(parse_pct), arg_type(parse_dates)
    hold = arg_type(duration_between(0, 7 * 86400, "from 0s to 7d"))
    poll = arg_type(duration_between(0.1, 3600, "from 0.1s to 1h"))
    interval = arg_type(duration_between(60, 366 * 86400, "from 1m to 366d"))
    r = sub.add_parser("run", help="one run of a backup copy job")
    r.add_argument("jobfile", type=Path, help="the copy job's file (TOML)")
    r.add_argument("--at", type=time_type, metavar="TIME",
                   help="as if the clock showed TIME (replays: schedule, window, retention)")
    r.add_argument("--dry-run", action="store_true",
                   help="plan and print what would be copied; change nothing")
    r.add_argument("--json", action="store_true", help="print the session as JSON at the end")
    r.add_argument("--json-progress", action="store_true",
                   help="stream one JSON message per line while the run goes (events, then "
                        "a summary line with the --json shape), like restic --json")
    r.add_argument("--hold-timeout", type=hold, default="1h", metavar="DURATION",
                   help="a machine whose source chain stays locked fails after this")

    rt = sub.add_parser("retain", help="background retention now: expired GFS flags and the "
                        "files they freed, without a copy run (the daemon does it daily)")
    rt.add_argument("jobfile", type=Path, help="the copy job's file (TOML)")
    rt.add_argument("--at", type=time_type, metavar="TIME", help="as if the clock showed TIME")
    rt.add_argument("--json", action="store_true", help="print the pass as JSON")

    h = sub.add_parser("history", help="past sessions and per-machine task results")
    h.add_argument("--job", help="only this job's sessions")
    h.add_argument("--json", action="store_true", help="print JSON")
    h.add_argument("--jobs", type=Path,
                   help="jobs folder whose histories to read (default: $FERRY_JOBS or the "
                        "samples)")
    h.add_argument("--repo", type=repo_arg,
                   help="a target repository's history instead (a folder or s3://bucket/prefix)")
    h.add_argument("--limit", type=arg_type(int_between(1, 100_000)), default=50,
                   help="the newest N sessions")

    p = sub.add_parser("preview", help="what-if retention, day by day")
    p.add_argument("jobfile", type=Path, help="the copy job's file (TOML)")
    p.add_argument("--days", type=arg_type(int_between(1, MAX_RANGE_DAYS)), default=None,
                   help="days to show (default: until the longest GFS cycle turns over)")
    p.add_argument("--from", dest="start", type=time_type, metavar="TIME",
                   help="the first run (default: the job's next scheduled run)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--used", type=size_type, metavar="SIZE",
                   help="sizing model instead of the real chains: the machines' used data")
    p.add_argument("--change", type=_pct, default=10.0, metavar="PCT",
                   help="with --used: data changed per run, in percent")
    p.add_argument("--reduction", type=_pct, default=50.0, metavar="PCT",
                   help="with --used: data left after compression and dedup, in percent")
    p.add_argument("--interval", type=interval, default=None,
                   help="a run every DURATION instead of the job's [schedule]")
    p.add_argument("--skip", type=_dates, metavar="DATES",
                   help="days without a run, e.g. 2026-01-11,2026-01-17..2026-01-19")
    p.add_argument("--no-new-point", type=_dates, metavar="DATES",
                   help="days whose runs find no new source point")
    p.add_argument("--policy-from", nargs=2, action="append", metavar=("DATE", "JOBFILE"),
                   help="from DATE on, the [retention] of JOBFILE (repeatable)")
    p.add_argument("--background", action="store_true",
                   help="model the daemon's daily background retention pass at 00:30 "
                        "(expired flags go on days without a run too)")

    i = sub.add_parser("inventory", help="machines the job's hypervisor reports")
    i.add_argument("jobfile", type=Path, help="the copy job's file (TOML)")
    i.add_argument("--json", action="store_true", help="print JSON")

    d = sub.add_parser("daemon", help="run every job in a folder on its own schedule")
    jobs_env = os.environ.get("FERRY_JOBS")
    d.add_argument("--jobs", type=Path, required=not jobs_env,
                   default=Path(jobs_env) if jobs_env else None,
                   help="the folder of job files to run (default: $FERRY_JOBS)")
    d.add_argument("--once", action="store_true", help="one pass over the due jobs, then exit")
    d.add_argument("--poll", type=poll, default="30s", metavar="DURATION",
                   help="how often the jobs folder is looked at")

    k = sub.add_parser("key", help="encryption keys of a job")
    ksub = k.add_subparsers(dest="key_command", required=True, metavar="ACTION")
    kc = ksub.add_parser("change", help="re-wrap the job's chain keys with a new password")
    kc.add_argument("jobfile", type=Path, help="the encrypted copy job's file (TOML)")
    g = kc.add_mutually_exclusive_group()
    g.add_argument("--new-password-env", metavar="NAME",
                   help="environment variable holding the new password")
    g.add_argument("--new-password-file", metavar="PATH", type=Path,
                   help="file holding the new password (mode 0600)")
    add_mover_command(sub)


def load(path: Path) -> JobSpec:
    from engine.jobs.load import load_job

    return load_job(path)


def _run(spec: JobSpec, args: argparse.Namespace, sink: ev.Sink | None = None
         ) -> tuple[SessionResult, bool]:
    """One run for `ferry run`: hang-ups leave it running, Ctrl-C stops it (recorded, then
    exit 130 through `engine.cli.main`); returns the session and whether Ctrl-C came."""
    from engine import events
    from engine.copy.control import RunControl, stop_on_interrupt
    from engine.copy.runner import RunError, run_job
    from engine.live.hangup import keep_running_on_hangup

    control = RunControl()
    keep_running_on_hangup(lambda: [control], "terminal")
    try:
        with stop_on_interrupt(control) as interrupted:
            res = run_job(spec, at=args.at, dry_run=args.dry_run, hold_timeout=args.hold_timeout,
                          control=control, sink=sink if sink is not None else events.discard)
    except RunError as exc:
        raise CommandError(f"ferry run: {exc}", exc.exit_code) from None
    return res, bool(interrupted)


def cmd_run(args: argparse.Namespace) -> int:
    spec = load(args.jobfile)
    if args.json_progress:
        return _run_json_lines(spec, args)
    renderer = None if args.json else _LiveRender()
    if renderer:
        with renderer:
            res, interrupted = _run(spec, args, renderer.sink)
    else:
        res, interrupted = _run(spec, args)
    if args.json:
        emit(res.to_json())
    else:
        _print_session(res)
    if res.status == Status.FAILED:
        reasons = "; ".join(f"{t.machine}: {t.message}" for t in res.tasks
                            if t.status == Status.FAILED)
        print(f"ferry run: {spec.name}: Failed: {reasons or res.message}", file=sys.stderr)
    if interrupted:
        raise KeyboardInterrupt  # recorded above; main says "interrupted" and exits 130
    return res.exit_code


def cmd_retain(args: argparse.Namespace) -> int:
    """`ferry retain JOBFILE`: one background retention pass (engine.copy.background)."""
    from engine.copy.background import retain_job
    from engine.copy.runner import RunError
    from engine.jobs.load import load_job

    spec = load_job(args.jobfile, need_source=False)  # the pass needs only the target
    try:
        res = retain_job(spec, at=args.at)
    except RunError as exc:
        raise CommandError(f"ferry retain: {exc}; its run applies retention",
                           exc.exit_code) from None
    if args.json:
        emit(res.to_json())
        return res.exit_code
    from rich.console import Console

    con = Console()
    con.print(f"{res.job}: background retention {res.status}: {res.message}")
    for a in res.retention:
        con.print(f"retention: {a['machine']}: {a['action']} {a.get('detail', '')}")
    for tr in res.tasks:
        if tr.status != Status.SUCCESS:
            con.print(f"{tr.machine}: {tr.status}: {tr.message}")
    if res.status == Status.FAILED:
        reasons = "; ".join(f"{t.machine}: {t.message}" for t in res.tasks
                            if t.status == Status.FAILED)
        print(f"ferry retain: {spec.name}: Failed: {reasons}", file=sys.stderr)
    return res.exit_code


def _run_json_lines(spec: JobSpec, args: argparse.Namespace) -> int:
    """`ferry run --json-progress`: every engine event as a JSON line on stdout, then
    `{"message_type": "summary", ...}` with the `--json` keys. Lines are written whole
    (one lock) because events come from the run's threads."""
    import dataclasses
    import re
    import threading

    from engine.jsonout import line
    from engine.units import now, rfc3339

    lock = threading.Lock()

    def write(obj: dict[str, Any]) -> None:
        with lock:
            sys.stdout.write(line(obj) + "\n")
            sys.stdout.flush()

    def sink(e: ev.Event) -> None:
        kind = re.sub(r"(?<!^)(?=[A-Z])", "_", type(e).__name__).lower()
        write({"message_type": kind, "time": rfc3339(now()), **dataclasses.asdict(e)})

    res, interrupted = _run(spec, args, sink)
    write({"message_type": "summary", **res.to_json()})
    if interrupted:
        raise KeyboardInterrupt
    return res.exit_code


class _LiveRender:
    """Rich progress bars, one per machine, fed by engine events."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(TextColumn("{task.description:<16}"), BarColumn(),
                                 DownloadColumn(binary_units=True), TransferSpeedColumn(),
                                 TextColumn("{task.fields[state]}"), transient=True,
                                 console=Console(stderr=True))
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _LiveRender:
        self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.progress.stop()

    def sink(self, e: ev.Event) -> None:
        from engine import events as ev

        name = getattr(e, "machine", "")
        if isinstance(e, ev.TaskQueued):
            self.tasks[name] = self.progress.add_task(name, total=None, state="queued")
        tid = self.tasks.get(name)
        if tid is None:
            return
        if isinstance(e, ev.TaskStarted):
            self.progress.update(tid, total=e.total or None, state=e.kind)
        elif isinstance(e, ev.TaskProgress):
            self.progress.update(tid, completed=e.stats.read, state="running")
        elif isinstance(e, ev.TaskOnHold):
            self.progress.update(tid, state=f"on hold: {e.reason}")
        elif isinstance(e, ev.TaskResumed):
            self.progress.update(tid, state="resumed")
        elif isinstance(e, ev.TaskFinished):
            self.progress.update(tid, state=e.status)


def _print_session(res: SessionResult) -> None:
    from rich.console import Console  # only when a table is printed (~35 ms a start)
    from rich.table import Table

    con = Console()
    if res.dry_run:
        t = Table(title=f"{res.job}: dry run, nothing changed", title_justify="left")
        for col in ("machine", "would copy", "source point", "blocks", "bytes", "after dedup"):
            t.add_column(col, justify="right" if col in ("blocks", "bytes", "after dedup")
                         else "left")
        for tr in res.tasks:
            if not tr.plan:
                t.add_row(tr.machine, "nothing" if tr.status != Status.FAILED else tr.status,
                          "", "", "", "")
            for p in tr.plan:
                t.add_row(tr.machine, p["kind"], p["time"].replace("T", " ")[:16],
                          str(p["blocks"]), fmt_size(p["bytes"]),
                          fmt_size(p["bytes_after_dedup"]))
    else:
        t = Table(title=f"{res.job}: {res.status}", title_justify="left")
        for col in ("machine", "status", "kind", "read", "transferred", "time", "bottleneck"):
            t.add_column(col)
        for tr in res.tasks:
            s = tr.stats
            t.add_row(tr.machine, tr.status, tr.kind, fmt_size(s.read), fmt_size(s.transferred),
                      fmt_duration(tr.duration_s), tr.bottleneck)
    con.print(t)
    for tr in res.tasks:
        if tr.message:
            con.print(f"{tr.machine}: {tr.message}")
    for a in res.retention:
        con.print(f"retention: {a['machine']}: {a['action']} {a.get('detail', '')}")
    if res.message:
        con.print(res.message)


def _history_dbs(args: argparse.Namespace, stack: ExitStack) -> list[Path]:
    """The history databases to read; a bucket's is a temporary copy `stack` removes."""
    from engine.cli import UsageError
    from engine.history import history_path
    from engine.jobs.load import discover_jobs

    if args.repo:
        if is_s3_url(args.repo):
            from engine.objstore.history import fetch_history

            local = fetch_history(args.repo)
            stack.callback(local.unlink, missing_ok=True)
            return [local]
        if not args.repo.is_dir():
            raise UsageError(f"ferry history: repository not found: {args.repo}")
        return [args.repo / ".ferry" / "history.sqlite"]
    folder = args.jobs or default_jobs()
    if not folder.is_dir():
        raise UsageError(f"ferry history: jobs folder not found: {folder}")
    dbs = []
    for _, spec in discover_jobs(folder):
        if not isinstance(spec, Exception):
            p = history_path(spec)
            if p not in dbs:
                dbs.append(p)
    return dbs


def cmd_history(args: argparse.Namespace) -> int:
    from engine.history import History

    rows = []
    with ExitStack() as stack:
        for db in _history_dbs(args, stack):
            h = History(db)
            for s in h.sessions(args.job, args.limit):
                s["tasks"] = h.tasks(s["id"])
                rows.append(s)
    rows.sort(key=lambda s: s["started"], reverse=True)
    rows = rows[: args.limit]
    rpo = _rpo_verdicts(args)
    if args.json:
        for s in rows:
            s["started"], s["finished"] = rfc3339(s["started"]), rfc3339(s["finished"])
        emit({"sessions": rows, "rpo": [v.to_json(job) for job, v in rpo]})
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title="sessions", title_justify="left")
    for col in ("started", "job", "kind", "status", "duration", "processed", "transferred",
                "tasks"):
        t.add_column(col)
    for s in rows:
        t.add_row(s["started"].replace("T", " "), s["job"], s.get("kind") or "copy", s["status"],
                  fmt_duration(s["duration_s"] or 0), fmt_size(s["processed"] or 0),
                  fmt_size(s["transferred"] or 0),
                  ", ".join(f"{x['machine']} {x['status']}" for x in s["tasks"]))
    con = Console()
    con.print(t)
    for job, verdict in rpo:
        con.print(f"{'Warning' if verdict.late else 'RPO'} · {job}: {verdict.summary}",
                  style="yellow" if verdict.late else None, markup=False, highlight=False)
    return 0


def _rpo_verdicts(args: argparse.Namespace) -> list[tuple[str, RpoCheck]]:
    """The RPO monitor of each job with an `rpo` (jobs folder only: `--repo` has no job
    files, so no RPO to compare with)."""
    from engine.jobs.load import discover_jobs
    from engine.rpo import check_job

    if args.repo:
        return []
    out = []
    for _, spec in discover_jobs(args.jobs or default_jobs()):
        if isinstance(spec, Exception) or spec.schedule.rpo is None:
            continue
        if args.job and spec.name != args.job:
            continue
        out.append((spec.name, check_job(spec)))
    return out



def cmd_preview(args: argparse.Namespace) -> int:
    from engine.preview_cli import run_preview

    return run_preview(args, load(args.jobfile))


def cmd_inventory(args: argparse.Namespace) -> int:
    from engine.inventory.base import InventoryError, inventory_json, list_machines

    spec = load(args.jobfile)
    if not spec.inventory:
        raise CommandError(f"ferry inventory: {args.jobfile}: the job has no [inventory] table")
    settings = spec.inventory
    try:
        machines = list_machines(settings)
    except InventoryError as exc:
        raise CommandError(f"ferry inventory: {exc}", exc.exit_code) from None
    data = inventory_json(settings, machines)
    if args.json:
        emit(data)
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{data['kind']} {data['host']}", title_justify="left")
    for col in ("name", "id", "power", "disks"):
        t.add_column(col)
    for m in data["machines"]:
        t.add_row(m["name"], m["id"], m["power_state"],
                  ", ".join(f"{d['name']} {fmt_size(d['size'])}" for d in m["disks"]))
    Console().print(t)
    return 0


def cmd_daemon(args: argparse.Namespace) -> int:
    from engine.daemon import Daemon
    from engine.logs import to_stderr

    to_stderr()  # a service: its log is its output (sessions, errors, refusals)
    return Daemon(args.jobs, poll=args.poll).serve(once=args.once)


def cmd_key(args: argparse.Namespace) -> int:
    """`ferry key change JOBFILE`: old password from the job, new one from the options."""
    from engine.key_change import change_password
    from engine.keys import KeyRing
    from engine.objstore.open import target_repository
    from engine.password import PasswordSource, SourceKind

    spec = load(args.jobfile)
    if spec.storage.password_source is None:
        raise ValueError(f"{args.jobfile}: the job has no password source "
                         "([storage] password_env, password_file or password_command)")
    if spec.target.mover:
        raise ValueError(f"{args.jobfile}: the target is a remote mover; run the key change "
                         "with a job file that names the repository on its host")
    if args.new_password_file is not None:
        new = KeyRing(PasswordSource(SourceKind.FILE, str(args.new_password_file)))
    elif args.new_password_env:
        new = KeyRing(PasswordSource(SourceKind.ENV, args.new_password_env))
    else:
        new = KeyRing(password=_prompt_new_password())
    res = change_password(target_repository(spec), spec.name,
                          KeyRing(spec.storage.password_source), new)
    print(f"{spec.name}: {res.rewrapped} chain key(s) re-wrapped on {res.machines} machine(s)"
          + (f", {res.already} already had the new password" if res.already else "")
          + f"; now make {spec.storage.password_source.describe()} give the new password")
    return 0


def _prompt_new_password() -> Password:
    """The new password, typed twice without echo (only on a terminal)."""
    import getpass

    from engine.password import Password

    if not sys.stdin.isatty():
        raise ValueError("ferry key change: give --new-password-env NAME or "
                         "--new-password-file PATH (no terminal to ask on)")
    first = getpass.getpass("new password: ")
    if not first or first != getpass.getpass("new password again: "):
        raise ValueError("ferry key change: the passwords are empty or differ; nothing changed")
    return Password(first.encode())


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run, "retain": cmd_retain, "history": cmd_history, "preview": cmd_preview, "inventory": cmd_inventory,
    "daemon": cmd_daemon, "mover": cmd_mover, "key": cmd_key,
}

__all__ = ["COMMANDS", "add_commands"]
