"""`ferry mover`: serve a target repository to remote copy jobs (TLS or an SSH forced
command), and the admin's commands on the mover host (init, token add|list|revoke,
retain). Its own module: the mover host runs these, never a copy job."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.errors import CommandError, ExitCode
from engine.jsonout import emit
from engine.units import duration_between, int_between, rfc3339


def add_mover_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `ferry mover` and its actions on the main parser's sub-parsers."""
    from engine.cli import arg_type

    m = sub.add_parser("mover", help="serve a target repository to remote copy jobs")
    m.add_argument("--listen", metavar="HOST:PORT", help="serve TLS (after `ferry mover init`)")
    m.add_argument("--plain", action="store_true",
                   help="with --listen on a loopback address: no TLS, no tokens")
    m.add_argument("--stdio", action="store_true",
                   help="serve one stream on stdin/stdout (an SSH forced command)")
    m.add_argument("--repo", type=Path, help="the target repository the mover serves")
    m.add_argument("--job", help="--stdio: the only job this stream may touch")
    m.add_argument("--append-only", action="store_true",
                   help="--stdio: add points only, never merge or delete")
    m.add_argument("--min-points", type=arg_type(int_between(2, 9999)), default=2,
                   help="retention floor: points a client can never go below (>= 2)")
    m.add_argument("--immutable-days", type=arg_type(int_between(0, 36500)), default=0,
                   metavar="N", help="immutability floor: every point committed here stays "
                   "immutable at least N days, whatever the client asks [0 = the client's]")
    m.add_argument("--idle-timeout", type=arg_type(duration_between(1, 86400, "from 1s to 1d")),
                   default="10m", metavar="DURATION",
                   help="a connection silent this long is closed")
    m.add_argument("--max-connections", type=arg_type(int_between(1, 1024)), default=16,
                   help="streams served at once (more wait)")
    msub = m.add_subparsers(dest="mover_command", metavar="ACTION")
    mi = msub.add_parser("init", help="create the mover's TLS key and certificate")
    mi.add_argument("--repo", type=Path, required=True, dest="sub_repo",
                    help="the repository the mover serves")
    mt = msub.add_parser("token", help="job tokens of a TLS mover")
    tsub = mt.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    ta = tsub.add_parser("add", help="a new token for a job (printed once)")
    ta.add_argument("--repo", type=Path, required=True, dest="sub_repo",
                    help="the repository the mover serves")
    ta.add_argument("--job", required=True, dest="sub_job", help="the copy job the token is for")
    ta.add_argument("--append-only", action="store_true", dest="sub_append_only",
                    help="the token adds points only, never merges or deletes")
    tl = tsub.add_parser("list", help="the tokens (never their values)")
    tl.add_argument("--repo", type=Path, required=True, dest="sub_repo",
                    help="the repository the mover serves")
    tl.add_argument("--json", action="store_true", help="print JSON")
    tr = tsub.add_parser("revoke", help="revoke a token by its id")
    tr.add_argument("--repo", type=Path, required=True, dest="sub_repo",
                    help="the repository the mover serves")
    tr.add_argument("id", help="the token's id (from `token list`)")
    mr = msub.add_parser("retain", help="run a job's retention on the mover host")
    mr.add_argument("--repo", type=Path, required=True, dest="sub_repo",
                    help="the repository the mover serves")
    mr.add_argument("--job", required=True, dest="sub_job", help="the copy job")
    mr.add_argument("--min-points", type=arg_type(int_between(2, 9999)), default=2,
                    dest="sub_min_points",
                    help="retention floor: points never to go below (>= 2)")
    mr.add_argument("--immutable-days", type=arg_type(int_between(0, 36500)), default=0,
                    dest="sub_immutable_days", metavar="N",
                    help="immutability floor: points younger than N days stay")


def cmd_mover(args: argparse.Namespace) -> int:
    from engine.copy import moverauth
    from engine.copy.guard import Floor
    from engine.copy.server import serve_mover, serve_stdio

    sub = getattr(args, "mover_command", None)
    try:
        if sub is not None:
            return _mover_admin(args, sub)
        if args.min_points < 2:
            raise ValueError("--min-points must be at least 2")
        floor = Floor(args.min_points, args.immutable_days)
        if args.repo is None:
            raise ValueError("ferry mover: --repo DIR is needed")
        if args.stdio:
            return serve_stdio(args.repo, job=args.job, append_only=args.append_only,
                               idle=args.idle_timeout, floor=floor)
        if not args.listen:
            raise ValueError("ferry mover: give --listen HOST:PORT or --stdio")
        return serve_mover(args.listen, args.repo, plain=args.plain, idle=args.idle_timeout,
                           max_connections=max(1, args.max_connections), floor=floor)
    except moverauth.AuthError as exc:
        raise CommandError(f"ferry mover: {exc}") from None


def _mover_admin(args: argparse.Namespace, sub: str) -> int:
    """init, token add|list|revoke, retain: run by the admin on the mover host."""
    from engine.copy import moverauth
    from engine.copy.guard import Floor, retain_job
    from engine.copy.server import setup_logging
    from engine.repository.repository import Repository

    repo = args.sub_repo
    if sub == "init":
        print(moverauth.init(repo))
        return 0
    if sub == "retain":
        setup_logging(repo)
        done = retain_job(Repository(repo), args.sub_job,
                          Floor(max(2, args.sub_min_points), args.sub_immutable_days))
        for a in done:
            print(f"{a['machine']}: {a['action']} {a.get('point', '')} {a.get('detail', '')}"
                  .rstrip())
        return ExitCode.WARNING if any(a["action"] == "refused" for a in done) else ExitCode.OK
    cmd = args.token_command
    if cmd == "add":
        tid, token = moverauth.add_token(repo, args.sub_job, args.sub_append_only)
        print(token)
        print(f"token {tid} for job {args.sub_job}{' (append-only)' if args.sub_append_only else ''}"
              f": shown once, only its hash is kept", file=sys.stderr)
        return 0
    if cmd == "list":
        rows = moverauth.list_tokens(repo)
        if args.json:
            emit([{**r, "created": rfc3339(r["created"])} for r in rows])
        for r in rows if not args.json else []:
            print(f"{r['id']}  {r['job']}  {'append-only' if r['append_only'] else 'full'}  "
                  f"{r['created']}")
        return 0
    if not moverauth.revoke_token(repo, args.id):
        raise CommandError(f"ferry mover token revoke: no token {args.id}")
    print(f"token {args.id} revoked")
    return 0
