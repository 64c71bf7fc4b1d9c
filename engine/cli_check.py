"""`ferry check`: verify, record what is damaged, repair it from the source, rebuild metadata.

What a check finds in a file repository is recorded in each machine's metadata
(`facts["damaged"]`), so the copy job's next run re-fetches those blocks from
its source; `--repair JOBFILE` checks the job's target and does that at once;
`--rebuild` rebuilds damaged `.fbm` files from their copy or the backup files.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from engine.cli import EXIT_FAILED, EXIT_OK, UsageError, key_ring, repo_missing
from engine.jsonout import emit

if TYPE_CHECKING:
    from engine.jobs.load import JobSpec


def cmd_check(args: argparse.Namespace) -> int:
    from engine.health import check_repository

    spec = None
    if args.repair is not None:
        from engine.jobs.load import load_job

        spec = load_job(args.repair)
        if args.job and args.job != spec.name:
            raise UsageError(f"ferry check: --job {args.job} is not the job of {args.repair}")
        args.job = spec.name
        args.repo = args.repo or spec.target.repository
    if args.repo is None:
        raise UsageError("ferry check: --repo DIR (or --repair JOBFILE) is required")
    if repo_missing(args.repo):
        raise UsageError(f"ferry check: repository not found: {args.repo}")
    rebuilt: list[str] = []
    if getattr(args, "rebuild", False):
        from engine.repository.rebuild import rebuild_repository

        rebuilt = rebuild_repository(args.repo, args.job, args.machine)
    results = check_repository(args.repo, args.job, args.machine, args.all,
                               key_ring(args) if args.deep else None, record=True)
    if not results and (args.job or args.machine):
        raise UsageError(f"ferry check: no machine matches --job {args.job or '*'} "
                         f"--machine {args.machine or '*'} in {args.repo}")
    repaired = _repair(spec, args) if spec is not None and any(r.corrupt for r in results) \
        else {}
    if repaired:  # check again: what is left after the repair is what is reported
        results = check_repository(args.repo, args.job, args.machine, args.all,
                                   key_ring(args) if args.deep else None, record=True)
    bad = [r for r in results if not r.ok]
    if args.json:
        emit({"repository": str(args.repo), "ok": not bad, "machines": [
            {"job": r.job, "machine": r.machine, "points": r.points, "blocks": r.blocks,
             "errors": r.errors, "corrupt": [c.__dict__ for c in r.corrupt],
             **({"repair": repaired[r.machine]} if r.machine in repaired else {})}
            for r in results], **({"rebuilt": rebuilt} if rebuilt else {})})
    else:
        for line in rebuilt:
            print(line)
        for r in results:
            state = "ok" if r.ok else "CORRUPT"
            print(f"{r.job}/{r.machine}: {state}, {len(r.points)} point(s), {r.blocks} blocks")
            if r.machine in repaired:
                print(f"  repair: {repaired[r.machine]}")
            for c in r.corrupt:
                print(f"  corrupt block {c.block} of disk {c.disk} in {c.file}: {c.reason}")
            for e in r.errors:
                print(f"  {e}")
    for r in bad:
        for c in r.corrupt:
            print(f"ferry check: {r.job}/{r.machine}: disk {c.disk} block {c.block} in {c.file}: "
                  f"{c.reason}", file=sys.stderr)
        for e in r.errors:
            print(f"ferry check: {r.job}/{r.machine}: {e}", file=sys.stderr)
    return EXIT_FAILED if bad else EXIT_OK


def _repair(spec: JobSpec, args: argparse.Namespace) -> dict[str, str]:
    """Run the job's repair exchange now (no copy, no retention); machine -> outcome."""
    from engine.copy.runner import run_job

    res = run_job(spec, repair_only=True, machine=args.machine)
    return {t.machine: (t.message or t.status) for t in res.tasks}
