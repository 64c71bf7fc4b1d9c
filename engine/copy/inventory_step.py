"""The inventory step at the start of a copy run (issue 6, step 2).

`Runner.run` calls `check_inventory` when the job has an `[inventory]` table.
It asks the hypervisor which of the job's machines exist, pairs them with the
chains the target repository already has by their stable id (so a VM renamed
on the host keeps its chain; names are only the fallback), and returns:

* `facts[machine]`: what the host says about the machine, stored by the target
  mover into that machine's metadata `facts` with the next point;
* `gone`: machines the host no longer has (for deleted-items retention);
* `warnings`: one line per problem; any warning ends the session as Warning.

Nothing here is fatal to the copy: an unreachable host, a refused login, a
timeout, a host answering nonsense or a bug in a backend all become one warning
and the run goes on from the repository's metadata. The step only reads (the
target's metadata included), so it is the same for a dry run. No secret ever
reaches a warning or a fact.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from engine.errors import one_line
from engine.inventory.base import InventoryError, InventorySettings, VmInfo, lookup, match_machines

if TYPE_CHECKING:
    from engine.jobs.schema import JobSpec
    from engine.model import MachineMeta

FALLBACK = "copying from repository metadata"
REASON_WORDS = {
    "unreachable": "unreachable",
    "login": "refused the login",
    "timeout": "did not answer in time",
    "protocol": "gave an unexpected answer",
}


@dataclass
class InventoryOutcome:
    warnings: list[str] = field(default_factory=list)
    facts: dict[str, dict[str, Any]] = field(default_factory=dict)  # machine -> JSON-serialisable facts
    gone: list[str] = field(default_factory=list)  # machines the host no longer has


class ChainReader(Protocol):
    """What the step reads of a target (a folder or an object storage repository)."""

    def try_load(self, job: str, machine: str) -> MachineMeta | None: ...


def check_inventory(spec: JobSpec, machines: list[str], target: ChainReader) -> InventoryOutcome:
    """Ask `spec.inventory`'s host about `machines` (the job's machine names).

    `target` is the target `Repository`: the stable id a previous run recorded
    (`facts["vm_id"]` in the machine's metadata) is what identifies a machine.
    """
    out = InventoryOutcome()
    settings = spec.inventory  # checked and filled by the job loader
    if settings is None:  # the runner calls this step for a job with [inventory] only
        return out
    host = settings.host
    scrub = _scrubber(settings)

    try:
        result = lookup(settings)
    except InventoryError as exc:  # "protocol": lookup lets it through, a run must not
        out.warnings.append(scrub(_unavailable(host, exc.reason, str(exc))))
        return out
    except Exception as exc:  # noqa: BLE001 - a backend bug must not fail the copy
        out.warnings.append(
            scrub(f"inventory: {host} could not be asked ({one_line(exc)}); {FALLBACK}")
        )
        return out
    if not result.ok:
        detail = result.detail or result.warning
        out.warnings.append(scrub(_unavailable(host, result.reason or "unreachable", detail)))
        return out

    known = {m: _known_id(target, spec.name, m) for m in machines}
    matched, missing = match_machines(known, result.machines)
    claimed = {id(vm) for vm in matched.values()}

    for m in machines:
        vm = matched.get(m)
        if vm is not None:
            out.facts[m] = _facts(settings, vm)
    for m in missing:
        twins = [vm for vm in result.machines if vm.name == m and id(vm) not in claimed]
        if len(twins) > 1:
            # Not gone: the host has several machines of that name and guessing
            # would mix two of them into one chain.
            out.warnings.append(
                scrub(
                    f"inventory: {m}: {len(twins)} machines named {m!r} on {host}; "
                    "none recorded for it"
                )
            )
            continue
        out.gone.append(m)
        out.facts[m] = {
            "inventory_kind": settings.kind,
            "inventory_host": settings.host,
            "inventory_missing": True,
        }
        out.warnings.append(scrub(f"inventory: {m} not found on {host}"))
    return out


def _unavailable(host: str, reason: str, detail: str) -> str:
    words = REASON_WORDS.get(reason, "not available")
    return f"inventory: {host} {words} ({' '.join(str(detail).split())}); {FALLBACK}"


def _known_id(target: ChainReader, job: str, machine: str) -> str:
    """The stable id a previous run recorded for the machine, or "" (never raises)."""
    try:
        meta = target.try_load(job, machine)
    except Exception:  # noqa: BLE001 - damaged metadata: the copy reports it, not us
        return ""
    if meta is None:
        return ""
    value = (meta.facts or {}).get("vm_id")
    return value if isinstance(value, str) else ""


def _facts(settings: InventorySettings, vm: VmInfo) -> dict[str, Any]:
    return {
        "vm_id": vm.id,
        "vm_name": vm.name,
        "power_state": vm.power_state,
        "host": vm.host,
        "folder": vm.folder,
        "moref": vm.moref,
        "inventory_kind": settings.kind,
        "inventory_host": settings.host,
        "inventory_missing": False,
        "disks": [{"name": d.name, "size": int(d.size)} for d in vm.disks],
    }


def _scrubber(settings: InventorySettings) -> Callable[[str], str]:
    """A function masking the password in a text, should a backend ever echo it."""
    secret = os.environ.get(settings.password_env, "") if settings.password_env else ""

    def scrub(text: str) -> str:
        return text.replace(secret, "***") if len(secret) >= 4 else text

    return scrub


__all__ = ["InventoryOutcome", "check_inventory"]
