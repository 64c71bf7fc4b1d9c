"""`ferry backup` in a real process that stops at a named step and waits there for its
kill -9 (the fault-injection point of the backup crash test: a kill lands at that step by
construction, not by wall-clock luck).

    python paused_backup.py STEP MARKER -- backup --repo ... (ferry's own arguments)

STEP is one of
  put:K          before the K-th block (0-based) the new point writes
  commit:N       right after the N-th container commit of the new point (1-based: a
                 reverse backup commits its rollback, then the full's new header slot)
  save:N         right after the N-th metadata save (1: the new point is named;
                 2: retention's first save, its files not deleted yet)
  retain-put:K   before the K-th block retention writes (a forever-forward merge)
  retain-commit  right after retention's container commit (the merged full's new header
                 slot is durable, the metadata does not name it yet)
On reaching it the process writes MARKER (atomically, holding the step) and sleeps;
everything before the step is the real engine's work.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any


def main(argv: list[str]) -> int:
    step, marker = argv[:2]
    if argv[2:3] != ["--"]:
        raise SystemExit("usage: paused_backup.py STEP MARKER -- FERRY ARGS")
    import engine.backup as backup
    from engine.repository.container import ContainerWriter
    from engine.repository.repository import Repository

    kind, _, arg = step.partition(":")
    counts = {"put": 0, "commit": 0, "save": 0, "retain-put": 0}
    retaining = [False]

    def pause() -> None:
        tmp = f"{marker}.tmp"
        with open(tmp, "w") as f:
            f.write(step)
        os.rename(tmp, marker)
        time.sleep(600)  # the test kills the process here
        os._exit(99)

    def before_block() -> None:
        name = "retain-put" if retaining[0] else "put"
        if kind == name and counts[name] == int(arg):
            pause()
        counts[name] += 1

    real_put, real_entry = ContainerWriter.put, ContainerWriter.put_entry
    real_commit, real_save, real_retain = ContainerWriter.commit, Repository.save, \
        backup._retain

    def put(self: ContainerWriter, *args: Any, **kwargs: Any) -> Any:
        before_block()
        return real_put(self, *args, **kwargs)

    def put_entry(self: ContainerWriter, *args: Any, **kwargs: Any) -> Any:
        if retaining[0]:  # a block the merge keeps by reference: a write of its index
            before_block()
        return real_entry(self, *args, **kwargs)

    def commit(self: ContainerWriter, *args: Any, **kwargs: Any) -> Any:
        size = real_commit(self, *args, **kwargs)
        if retaining[0]:
            if kind == "retain-commit":
                pause()
        else:
            counts["commit"] += 1
            if kind == "commit" and counts["commit"] == int(arg):
                pause()
        return size

    def save(self: Repository, *args: Any, **kwargs: Any) -> Any:
        result = real_save(self, *args, **kwargs)
        counts["save"] += 1
        if kind == "save" and counts["save"] == int(arg):
            pause()
        return result

    def retain(*args: Any, **kwargs: Any) -> Any:
        retaining[0] = True
        return real_retain(*args, **kwargs)

    ContainerWriter.put, ContainerWriter.put_entry = put, put_entry  # type: ignore[method-assign]
    ContainerWriter.commit, Repository.save = commit, save  # type: ignore[method-assign]
    backup._retain = retain
    from engine.cli import main as ferry_main

    return ferry_main(argv[3:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
