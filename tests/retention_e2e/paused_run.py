"""`ferry run` in a real process that stops at a chosen step inside a chain transform
and waits there for its kill -9 (the fault-injection point of the transform crash
tests: a kill lands inside the transform by construction, not by wall-clock luck).

    python paused_run.py OP STEP MARKER -- run JOBFILE --at TIME ...

OP is the `engine.copy.retain.ChainOps` entry to stop in ("merge" or "synthesize").
STEP is where: a number k (before the k-th block the transform writes: data of the
new state partly written), "commit" (the new file or header slot is durable, the
metadata does not name it yet) or "saved" (the metadata names the result, the file it
replaced is not deleted yet). On reaching it the process writes MARKER (atomically,
holding the step) and sleeps; nothing else is changed, and everything before the
step is the real engine's work.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time


def main(argv: list[str]) -> int:
    op_name, step, marker = argv[:3]
    if argv[3] != "--":
        raise SystemExit("usage: paused_run.py OP STEP MARKER -- FERRY ARGS")
    import engine.copy.retain as retain
    from engine.repository.container import ContainerWriter
    from engine.repository.repository import Repository

    inside: dict[int, int] = {}  # thread id -> blocks written in the transform so far

    def pause(where: str) -> None:
        tmp = f"{marker}.tmp"
        with open(tmp, "w") as f:
            f.write(where)
        os.rename(tmp, marker)
        time.sleep(600)  # the test kills the process here
        os._exit(99)

    real_put, real_commit, real_save = ContainerWriter.put, ContainerWriter.commit, \
        Repository.save

    def put(self, *args, **kwargs):
        tid = threading.get_ident()
        if tid in inside and step.isdigit():
            if inside[tid] == int(step):
                pause(f"{op_name} before block {step}")
            inside[tid] += 1
        return real_put(self, *args, **kwargs)

    def commit(self, *args, **kwargs):
        size = real_commit(self, *args, **kwargs)
        if threading.get_ident() in inside and step == "commit":
            pause(f"{op_name} committed, not named")
        return size

    def save(self, *args, **kwargs):
        real_save(self, *args, **kwargs)
        if threading.get_ident() in inside and step == "saved":
            pause(f"{op_name} saved, old file not deleted")

    real_op = getattr(retain.FILE_OPS, op_name)

    def op(*args, **kwargs):
        tid = threading.get_ident()
        inside[tid] = 0
        try:
            return real_op(*args, **kwargs)
        finally:
            inside.pop(tid, None)

    ContainerWriter.put, ContainerWriter.commit, Repository.save = put, commit, save
    retain.FILE_OPS = dataclasses.replace(retain.FILE_OPS, **{op_name: op})
    from engine.cli import main as ferry_main

    return ferry_main(argv[4:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
