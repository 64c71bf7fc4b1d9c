"""What every hypervisor inventory has in common: settings, results, errors, matching.

The backends (`vsphere`, `hyperv`) only translate a host's answer into `VmInfo`;
everything a caller relies on (the JSON shape of `ferry inventory`, the
never-raise `lookup` used by copy runs, the rename-proof `match_machines`) lives
here so it behaves the same for every kind of host.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from engine.errors import FerryError

KINDS = ("vsphere", "hyperv")
REASONS = ("unreachable", "login", "timeout", "protocol")

# (kind, protocol) -> port used when the job file gives none.
DEFAULT_PORTS = {
    ("vsphere", "https"): 443,
    ("vsphere", "http"): 80,
    ("hyperv", "http"): 5985,
    ("hyperv", "https"): 5986,
}
DEFAULT_PROTOCOLS = {"vsphere": "https", "hyperv": "http"}
HYPERV_AUTHS = ("ntlm", "basic")  # ntlm: the default, sealed over http (WinRM encryption)


def insecure_reason(kind: str, protocol: str, auth: str, verify_tls: bool) -> tuple[str, str] | None:
    """(key, reason) when a Hyper-V setting would expose the password or trust any host;
    None when it is safe. Such a setting needs `allow_insecure = true` (a lab host):
    Basic over http sends the password in clear, and an unverified https host could be
    anyone (NTLM's answer to it can be cracked offline, Basic hands it over)."""
    if kind != "hyperv":
        return None
    if (protocol or DEFAULT_PROTOCOLS[kind]) == "http" and auth == "basic":
        return ("auth", 'Basic over http sends the password in clear; use auth = "ntlm" '
                "(the default, encrypted) or https, or set allow_insecure = true")
    if (protocol or DEFAULT_PROTOCOLS[kind]) == "https" and not verify_tls:
        return ("verify_tls", "an https host whose certificate is not verified could be "
                "anyone; give its CA in ca_file, or set allow_insecure = true")
    return None


@dataclass
class InventorySettings:
    """How to reach one hypervisor host: the `[inventory]` table of a job file.

    The password itself is never stored here (so it cannot leak through a repr,
    a log line or a saved job): only the *name* of the environment variable
    holding it, read at connect time by `password()`.
    """

    kind: str  # "vsphere" | "hyperv"
    host: str
    port: int | None = None  # None: 443 vsphere, 5985 hyperv (5986 for hyperv over https)
    verify_tls: bool = True
    user: str = ""
    password_env: str = ""
    timeout: float = 10.0
    # "" means the kind's usual protocol: https for vSphere, http (WinRM 5985) for Hyper-V.
    # vSphere "http" exists only for the lab simulator.
    protocol: str = ""
    # Hyper-V only: "ntlm" ("" too; sealed by WinRM message encryption over http) or
    # "basic"; the CA bundle (PEM) that signed the host's https certificate; and the
    # opt-in for what `insecure_reason` refuses.
    auth: str = ""
    ca_file: str = ""
    allow_insecure: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"inventory kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.protocol not in ("", "http", "https"):
            raise ValueError(f"inventory protocol must be http or https, not {self.protocol!r}")
        if self.timeout <= 0:
            raise ValueError("inventory timeout must be positive")
        if self.auth not in ("", *HYPERV_AUTHS):
            raise ValueError(f"inventory auth must be one of {', '.join(HYPERV_AUTHS)}, "
                             f"not {self.auth!r}")

    @property
    def effective_auth(self) -> str:
        return self.auth or "ntlm"

    @property
    def effective_protocol(self) -> str:
        return self.protocol or DEFAULT_PROTOCOLS[self.kind]

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return DEFAULT_PORTS[(self.kind, self.effective_protocol)]

    @property
    def address(self) -> str:
        """host:port, for messages (never carries credentials)."""
        return f"{self.host}:{self.effective_port}"

    def password(self) -> str:
        """The secret, read from the environment only when connecting."""
        if not self.password_env:
            return ""
        value = os.environ.get(self.password_env)
        if value is None:
            raise InventoryError(
                "login",
                f"{self.kind} {self.address}: environment variable {self.password_env} "
                "(password_env) is not set",
            )
        return value


@dataclass
class VmDisk:
    """One virtual disk as the hypervisor reports it (name and logical size in bytes)."""

    name: str
    size: int


@dataclass
class VmInfo:
    """One machine on the host. `id` is the stable identity that survives a rename
    (vSphere instance UUID, Hyper-V VM Id); `name` is what people see."""

    name: str
    id: str
    # vSphere words for every kind: poweredOn | poweredOff | suspended (others passed through)
    power_state: str
    host: str = ""  # ESXi host / Hyper-V computer the VM runs on
    folder: str = ""  # vSphere inventory path of the VM's folder, e.g. /DC0/vm/Prod
    moref: str = ""  # vSphere managed object id (vm-42); changes on re-register, unlike `id`
    disks: list[VmDisk] = field(default_factory=list)


class InventoryError(FerryError):
    """A host could not be asked. `reason` is one of REASONS; the message is one
    line naming the host and never the password."""

    def __init__(self, reason: str, message: str) -> None:
        if reason not in REASONS:
            raise ValueError(f"unknown inventory error reason {reason!r}")
        self.reason = reason
        super().__init__(" ".join(message.split()))  # one line, whatever the backend said

    def __reduce__(self) -> tuple[type[InventoryError], tuple[str, str]]:
        # keeps (reason, message) through pickling, e.g. from a worker process
        return (type(self), (self.reason, str(self)))


@dataclass
class InventoryResult:
    """What a copy run needs: the machines, or why there are none (`warning`)."""

    ok: bool
    machines: list[VmInfo] = field(default_factory=list)
    warning: str = ""
    reason: str = ""  # when not ok: one of REASONS (never "protocol": that raises)
    detail: str = ""  # when not ok: the error's one-line message (host, no password)


def list_machines(settings: InventorySettings) -> list[VmInfo]:
    """Ask the host which machines exist; raises InventoryError on any failure."""
    if settings.kind == "vsphere":
        from engine.inventory.vsphere import list_vsphere

        machines = list_vsphere(settings)
    else:
        from engine.inventory.hyperv import list_hyperv

        machines = list_hyperv(settings)
    return sorted(machines, key=lambda m: (m.name, m.id))


def lookup(settings: InventorySettings, names: list[str] | None = None) -> InventoryResult:
    """`list_machines` for copy runs: an unreachable host, a refused login or a
    timeout is not fatal (the run goes on from repository metadata), so they come
    back as ok=False with a one-line warning. Protocol errors (a host that answers
    nonsense) still raise.

    `names` keeps only machines whose name or stable id is listed.
    """
    try:
        machines = list_machines(settings)
    except InventoryError as exc:
        if exc.reason == "protocol":
            raise
        return InventoryResult(
            ok=False,
            machines=[],
            warning=f"inventory not available: {exc}",
            reason=exc.reason,
            detail=str(exc),
        )
    if names is not None:
        wanted = set(names)
        machines = [m for m in machines if m.name in wanted or (m.id and m.id in wanted)]
    return InventoryResult(ok=True, machines=machines, warning="")


def inventory_json(settings: InventorySettings, machines: list[VmInfo]) -> dict[str, Any]:
    """The `ferry inventory --json` document (CONTRACT.md); no secrets, no port."""
    return {
        "kind": settings.kind,
        "host": settings.host,
        "machines": [
            {
                "name": m.name,
                "id": m.id,
                "power_state": m.power_state,
                "disks": [{"name": d.name, "size": d.size} for d in m.disks],
                "host": m.host,
                "folder": m.folder,
                "moref": m.moref,
            }
            for m in machines
        ],
    }


def match_machines(
    known: dict[str, str], found: list[VmInfo]
) -> tuple[dict[str, VmInfo], list[str]]:
    """Pair the machines a repository knows with the machines the host has.

    `known` maps machine name (as in the repository) to its stable id ("" when
    never seen by an inventory). A stable id match wins, so a VM renamed on the
    host keeps its chain; the rest match by name, but only against VMs not
    already claimed by id and only when the name is unambiguous (vSphere allows
    two VMs of one name in different folders; guessing would mix two machines
    into one chain). Returns (machine name -> VmInfo, names not found on the host).
    """
    by_id: dict[str, VmInfo] = {}
    for vm in found:
        if vm.id:
            by_id.setdefault(vm.id, vm)

    matched: dict[str, VmInfo] = {}
    claimed: set[int] = set()
    for name, stable_id in known.items():
        hit = by_id.get(stable_id) if stable_id else None
        if hit is not None and id(hit) not in claimed:
            matched[name] = hit
            claimed.add(id(hit))

    by_name: dict[str, list[VmInfo]] = {}
    for vm in found:
        if id(vm) not in claimed:
            by_name.setdefault(vm.name, []).append(vm)

    gone: list[str] = []
    for name in known:
        if name in matched:
            continue
        candidates = by_name.get(name, [])
        if len(candidates) == 1 and id(candidates[0]) not in claimed:
            matched[name] = candidates[0]
            claimed.add(id(candidates[0]))
        else:
            gone.append(name)
    return matched, gone
