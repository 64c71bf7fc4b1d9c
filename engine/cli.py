"""`ferry ...` sub-commands (CONTRACT.md). Bad input: one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, cast

from engine.errors import CommandError, ExitCode, exit_code, one_line
from engine.jsonout import emit
from engine.objstore.location import is_s3_url, parse_s3_url
from engine.units import fmt_size, int_between, parse_size, parse_time, rfc3339

if TYPE_CHECKING:
    from engine.keys import KeyRing

EXIT_OK, EXIT_FAILED = ExitCode.OK, ExitCode.FAILED
MAX_KEEP = 9999  # as a job file's keep (engine.jobs.schema.MAX_KEEP)


class UsageError(CommandError):
    """Bad input found by the CLI itself (exit 2, like a Failed run: CONTRACT)."""


class _Help(argparse.HelpFormatter):
    """Appends `(default: X)` to an option's help when it has a real default to show."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        # argparse asks shutil.get_terminal_size() for every formatter: the same answer
        # here without importing shutil (with bz2 and lzma: ~1.5 ms of every start)
        super().__init__(prog, indent_increment, max_help_position,
                         _columns() - 2 if width is None else width)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS) and action.option_strings
        if shown and "default" not in text:
            value = action.default
            text += f" (default: {value if not isinstance(value, float) else f'{value:g}'})"
        return text


class _Parser(argparse.ArgumentParser):
    """One line on a usage error (exit 2, no usage dump); every option's help shows its default."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: usage: {message}")


def _columns() -> int:
    """The terminal's width as shutil.get_terminal_size() says it ($COLUMNS, stdout's
    terminal, else 80)."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("ferry")
    except PackageNotFoundError:  # running from a source tree without an install
        return "unknown"


class _Version(argparse.Action):
    """`--version`, looked up only when asked (importlib.metadata costs ~0.1 s a start)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        print(f"ferry {version()}")
        parser.exit()


def repo_arg(text: str) -> str | Path:
    """argparse type for --repo: s3:// URLs stay strings (Path would fold the //)."""
    if is_s3_url(text):
        parse_s3_url(text)  # refuse a bad URL at parse time
        return text
    return Path(text)


def repo_option(parser: argparse.ArgumentParser, required: bool = True) -> None:
    """`--repo DIR`, defaulting to $FERRY_REPO (then not required)."""
    default = os.environ.get("FERRY_REPO")
    parser.add_argument("--repo", type=arg_type(repo_arg),
                        default=repo_arg(default) if default else None,
                        required=required and not default,
                        help="the repository: a folder or s3://bucket/prefix (default: $FERRY_REPO)")


def repo_missing(repo: Path | str) -> bool:
    """A folder repository that is not there (object storage is checked on first use)."""
    return isinstance(repo, Path) and not repo.is_dir()


def password_options(parser: argparse.ArgumentParser) -> None:
    """How a read path of an encrypted chain gets the password (never on the command line)."""
    from engine.password import DEFAULT_ENV

    g = parser.add_mutually_exclusive_group()
    g.add_argument("--password-env", metavar="NAME", default=None,
                   help=f"environment variable holding the password (default {DEFAULT_ENV})")
    g.add_argument("--password-file", metavar="PATH", type=Path, default=None,
                   help="file holding the password (mode 0600)")


def key_ring(args: argparse.Namespace) -> KeyRing:
    """The KeyRing of a read path's --password-env/--password-file (read only if needed)."""
    from engine.keys import KeyRing
    from engine.password import cli_source

    return KeyRing(cli_source(args.password_env, args.password_file))


def arg_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse type from a parser that raises ValueError with a user-facing message."""
    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = parse.__name__
    return convert


_time = arg_type(parse_time)
_size = arg_type(parse_size)


class _Sink:
    """Stands in for the parser of a sub-command that is not being run: takes every
    add_argument/add_parser/... call and does nothing."""

    def __getattr__(self, name: str) -> Callable[..., _Sink]:
        return lambda *args, **kwargs: self


class _Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Sub-commands; with `only` set, just that one is built (each parser costs argparse's
    gettext look-ups, ~27 of them were a few ms of every start)."""

    only: str | None = None

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser:
        if self.only is not None and name != self.only:
            return cast(argparse.ArgumentParser, _Sink())
        return super().add_parser(name, **kwargs)  # type: ignore[no-any-return]


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `ferry` parser; `command` (the first word of the command line): build only
    that sub-command's parser, or all of them when there is no such command (so --help
    and a mistyped command list every one)."""
    from engine.blockio import LEVELS
    from engine.model import Method

    p = _Parser(prog="ferry", description="Backup copy jobs for VM restore points.")
    p.add_argument("--version", action=_Version, nargs=0, help="show Ferry's version and exit")
    sub: argparse._SubParsersAction[argparse.ArgumentParser] = p.add_subparsers(
        dest="command", parser_class=_Parser, metavar="COMMAND", action=_Commands)
    assert isinstance(sub, _Commands)
    sub.only = command
    # handled by console.entry before this parser runs; listed so --help names them
    sub.add_parser("console", help="the operations console (Textual): ferry console [--jobs DIR]")
    sub.add_parser("serve", help="the console in a browser page on 127.0.0.1")
    sub.add_parser("samples", help="build the sample repositories and open the console on "
                                   "them: ferry samples [--out DIR] [--no-console]")

    b = sub.add_parser("backup", help="take one restore point of a machine (source backup job)")
    repo_option(b)
    b.add_argument("--job", required=True, help="the source backup job's name")
    b.add_argument("--machine", required=True, help="the machine's name")
    b.add_argument("--disk", required=True, action="append", type=Path,
                   help="a raw disk image (repeat for more disks)")
    b.add_argument("--method", default=Method.FORWARD.value, choices=[m.value for m in Method],
                   help="chain method")
    b.add_argument("--active-full", action="store_true", help="start a new chain (forward)")
    b.add_argument("--keep", type=arg_type(int_between(1, MAX_KEEP)), default=14,
                   help="restore points to keep")
    b.add_argument("--block-size", type=_size, default=None,
                   help="block size, e.g. 1MiB (default: the chain's, 1MiB for a new chain)")
    b.add_argument("--compression", default="optimal",
                   choices=[lvl for lvl in LEVELS if lvl != "auto"], help="compression level")
    b.add_argument("--at", type=_time, help="take the point as if the clock showed TIME")
    b.add_argument("--json", action="store_true", help="print the result as JSON")

    e = sub.add_parser("export", help="write a restore point's disks as raw images")
    repo_option(e)
    e.add_argument("--job", required=True, help="the job whose chain holds the point")
    e.add_argument("--machine", required=True, help="the machine")
    e.add_argument("--point", default="latest", help="latest, a point id or a TIME")
    e.add_argument("--out", required=True, type=Path, help="folder for the disk images")
    password_options(e)

    c = sub.add_parser("chain", help="list the chains in a repository")
    repo_option(c)
    c.add_argument("--job", help="only this job")
    c.add_argument("--machine", help="only this machine")
    c.add_argument("--json", action="store_true", help="print JSON")

    k = sub.add_parser("check", help="health check: re-hash stored blocks")
    repo_option(k, required=False)
    k.add_argument("--repair", metavar="JOBFILE", type=Path,
                   help="check the copy job's target and re-fetch what is damaged from its "
                        "source now (otherwise the job's next run does it)")
    k.add_argument("--rebuild", action="store_true",
                   help="rewrite damaged metadata (.fbm) from its copy, or rebuild it from "
                        "the backup files")
    k.add_argument("--job", help="only this job")
    k.add_argument("--machine", help="only this machine")
    k.add_argument("--all", action="store_true", help="every point, not only the latest")
    k.add_argument("--json", action="store_true", help="print JSON")
    k.add_argument("--deep", action="store_true",
                   help="encrypted points: also authenticate and decrypt (needs the password)")
    password_options(k)

    from engine import cli_copy  # the copy-job commands live in their own module

    cli_copy.add_commands(sub, _time, _size)
    from engine import cli_live

    cli_live.add_commands(sub)
    if command is not None and command not in sub.choices:
        return build_parser()
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        parser = build_parser(argv[0] if argv and not argv[0].startswith("-") else None)
        args = parser.parse_args(argv)
        if not args.command:
            parser.print_help()
            return EXIT_OK
        handler: Callable[[argparse.Namespace], int] = COMMANDS.get(args.command) or (
            _copy_handler(args.command))
        return handler(args)
    except KeyboardInterrupt as exc:
        print("ferry: interrupted", file=sys.stderr)
        # CPython 3.11: a KeyboardInterrupt that passed through exec() of a string (e.g.
        # a dataclass built by a lazy import when Ctrl-C came) is marked unhandled, and
        # the interpreter would then end by SIGINT, not with 130; an exec resets the mark
        exec("")  # noqa: S102 - no input: only the interpreter's flag is reset
        return exit_code(exc)
    except BrokenPipeError:
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the one-line promise holds for surprises too
        # a CommandError names its command already; everything else gets "ferry:"
        print(str(exc) if isinstance(exc, CommandError) else f"ferry: {one_line(exc)}",
              file=sys.stderr)
        return exit_code(exc)


def _copy_handler(name: str) -> Callable[[argparse.Namespace], int]:
    from engine import cli_copy, cli_live

    return cli_live.COMMANDS.get(name) or cli_copy.COMMANDS[name]


def cmd_backup(args: argparse.Namespace) -> int:
    from engine.backup import take_backup

    res = take_backup(args.repo, args.job, args.machine, args.disk, method=args.method,
                      active_full=args.active_full, keep=args.keep, block_size=args.block_size,
                      compression=args.compression, at=args.at)
    p = res.point
    if args.json:
        emit({"point": p.id, "time": rfc3339(p.time), "kind": p.kind.value,
              "file": p.file, "read": res.read, "written": res.written, "removed": res.removed})
    else:
        print(f"{args.machine}: {p.kind.value} {p.id} at {p.time:%Y-%m-%d %H:%M:%S}, "
              f"read {fmt_size(res.read)}, wrote {fmt_size(res.written)}"
              + (f", retention removed {len(res.removed)}" if res.removed else ""))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from engine.restore import export_point

    paths = export_point(args.repo, args.job, args.machine, args.point, args.out,
                         key_ring(args))
    for p in paths:
        print(p)
    return EXIT_OK


def chain_json(repo_path: Path | str, job: str | None, machine: str | None) -> dict[str, Any]:
    from engine.objstore.open import open_repository
    from engine.repository.damage import damaged_points

    repo = open_repository(repo_path)
    chains = []
    for j, m in repo.machines(job):
        if machine and m != machine:
            continue
        meta = repo.load(j, m)
        folder = Path(j) / m
        imm = meta.facts.get("immutable_until")
        imm = imm if isinstance(imm, dict) else {}
        damaged = damaged_points(meta)
        chains.append({"job": meta.job, "machine": meta.machine, "method": meta.method.value,
                       "block_size": meta.block_size, "points": [
                           {"id": p.id, "time": rfc3339(p.time), "kind": p.kind.value,
                            "file": str(folder / p.file), "size": p.size, "gfs": p.gfs,
                            "source_point": p.source_point, "encrypted": p.encrypted,
                            "logical_size": p.logical_size,
                            **({"immutable_until": _when(imm[p.id])} if p.id in imm else {}),
                            **({"damaged": True, "damaged_blocks": [
                                {k: b[k] for k in ("disk", "block", "file", "reason")}
                                for b in damaged[p.id]]} if p.id in damaged else {})}
                           for p in meta.points]})
    return {"repository": str(repo_path), "chains": chains}


def _when(text: object) -> str | None:
    """A stored time for JSON (RFC 3339); a damaged value is shown as stored."""
    try:
        return rfc3339(str(text))
    except ValueError:
        return str(text)


def cmd_chain(args: argparse.Namespace) -> int:
    if repo_missing(args.repo):
        raise UsageError(f"ferry chain: repository not found: {args.repo}")
    data = chain_json(args.repo, args.job, args.machine)
    if args.json:
        emit(data)
        return EXIT_OK
    from rich.console import Console  # only for a table: rich costs ~35 ms a start
    from rich.table import Table

    con = Console()
    for ch in data["chains"]:
        t = Table(title=f"{ch['job']} / {ch['machine']} ({ch['method']})", title_justify="left")
        for col in ("time", "kind", "size", "GFS", "encrypted", "id", "health"):
            t.add_column(col)
        for p in ch["points"]:
            health = f"DAMAGED ({len(p['damaged_blocks'])} blocks)" if p.get("damaged") else ""
            t.add_row(p["time"][:19].replace("T", " "), p["kind"], fmt_size(p["size"]),
                      "".join(p["gfs"]), "yes" if p["encrypted"] else "", p["id"], health)
        con.print(t)
    if not data["chains"]:
        con.print("no chains")
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    from engine.cli_check import cmd_check as run

    return run(args)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "backup": cmd_backup, "export": cmd_export, "chain": cmd_chain, "check": cmd_check,
}

if __name__ == "__main__":
    sys.exit(main())
