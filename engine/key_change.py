"""`ferry key change JOBFILE`: re-wrap an encrypted job's chain keys with a new password.

Only the envelopes in each machine's metadata (and a partial point's resume
marker) change; no backup file is rewritten. Every envelope is first opened
with the old password, so a wrong one changes nothing; an envelope that already
opens with the new password (a change interrupted half way) is left as it is,
so running the change again finishes it. Each machine's metadata is replaced
atomically under its exclusive chain lock.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from engine.copy.target import RESUME
from engine.keys import KeyRing, WrongPassword
from engine.password import PasswordError
from engine.repository.repository import Repository

if TYPE_CHECKING:
    from engine.objstore.repo import S3Repository

log = logging.getLogger("ferry.keys")


@dataclass
class KeyChange:
    machines: int = 0
    rewrapped: int = 0
    already: int = 0


def change_password(repo: Repository | S3Repository, job: str, old: KeyRing, new: KeyRing) -> KeyChange:
    """Re-wrap every chain key of `job` in `repo` from `old` to `new`."""
    pairs = repo.machines(job)
    for j, m in pairs:  # check the old password everywhere before changing anything
        meta = repo.load(j, m)
        for kid, env in meta.keys.items():
            if not old.can_open(kid, env) and not new.can_open(kid, env):
                raise WrongPassword(f"wrong password: the job's password does not open the "
                                    f"chain key of {m}; nothing changed")
    res = KeyChange()
    for j, m in pairs:
        with repo.lock(j, m, exclusive=True):
            meta = repo.load(j, m)
            changed = False
            for kid, env in list(meta.keys.items()):
                if new.can_open(kid, env):
                    res.already += 1
                    continue
                meta.keys[kid] = new.wrap(old.open(kid, env))
                res.rewrapped += 1
                changed = True
            if changed:
                repo.save(meta)
            _rewrap_resume(repo, j, m, old, new)
            res.machines += bool(meta.keys)
    log.info("key change: job %s: %d chain key(s) re-wrapped on %d machine(s)", job,
             res.rewrapped, res.machines)
    return res


def _rewrap_resume(repo: Repository | S3Repository, job: str, machine: str, old: KeyRing,
                   new: KeyRing) -> None:
    """A partial point's key: re-wrapped too, so the next run resumes with the new password.
    (Object storage has no partial points: what a killed run uploaded is found by digest.)"""
    if not isinstance(repo, Repository):
        return
    marker = repo.machine_dir(job, machine) / RESUME
    try:
        data = json.loads(marker.read_text())
        kid, env = data["key"], data["envelope"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if not kid or new.can_open(kid, env):
        return
    try:
        data["envelope"] = new.wrap(old.open(kid, env))
    except (PasswordError, ValueError):
        marker.unlink(missing_ok=True)  # a partial nobody can open: the next run starts over
        return
    tmp = marker.with_name(RESUME + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, marker)
