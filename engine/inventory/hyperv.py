"""Hyper-V inventory through WinRM (pywinrm) and one PowerShell script.

One script gathers VMs and their disks in a single WinRM command (five SOAP
round trips), printing JSON. We drive pywinrm's Protocol ourselves instead of
`Session.run_ps` for two reasons: `run_ps` retries a Receive that the server
answers with "operation timeout" forever, so a hung Hyper-V service would hang
a copy run (here the whole command has a deadline); and we open the shell with
the UTF-8 code page so VM names outside ASCII survive.

Authentication is what a stock Windows host accepts: NTLM, with WinRM message
encryption over http (every SOAP body sealed with the NTLM session key) or over
https with the host's certificate verified (`ca_file`). Basic over http, or https
without verification, expose the password and need `allow_insecure = true`
(`transport_options`).
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import time
import xml.etree.ElementTree as ET
from typing import Any

import requests
import winrm
from winrm.exceptions import (
    AuthenticationError,
    WinRMError,
    WinRMOperationTimeoutError,
    WinRMTransportError,
    WSManFaultError,
)

from engine.inventory.base import (
    InventoryError,
    InventorySettings,
    VmDisk,
    VmInfo,
    insecure_reason,
)

# The whole command (not one request) may take this many times settings.timeout:
# Get-VHD per disk on a big host takes a while, but never forever.
COMMAND_BUDGET_FACTOR = 6
UTF8_CODEPAGE = 65001

# Prints a JSON array of {Name, Id, State, ComputerName, Disks: [{Name, Path, Size}]}.
# -InputObject (not a pipeline) keeps a one-VM result an array; the parser still
# accepts a bare object, which is what `... | ConvertTo-Json` prints for one VM.
SCRIPT = r"""
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
[Console]::OutputEncoding = [Text.Encoding]::UTF8
$vms = @(Get-VM | ForEach-Object {
    $vm = $_
    $disks = @(Get-VMHardDiskDrive -VM $vm | ForEach-Object {
        $size = 0
        if ($_.Path) {
            $vhd = Get-VHD -Path $_.Path -ErrorAction SilentlyContinue
            if ($vhd) { $size = $vhd.Size }
        }
        [pscustomobject]@{
            Name = $(if ($_.Path) { Split-Path -Leaf $_.Path } else { "passthrough-$($_.ControllerType)$($_.ControllerNumber)-$($_.ControllerLocation)" })
            Path = [string]$_.Path
            Size = [int64]$size
        }
    })
    [pscustomobject]@{
        Name = $vm.Name
        Id = $vm.Id.ToString()
        State = $vm.State.ToString()
        ComputerName = $vm.ComputerName
        Disks = $disks
    }
})
ConvertTo-Json -InputObject $vms -Depth 4 -Compress
"""

# Hyper-V VMState -> the vSphere words the rest of Ferry uses.
POWER_STATES = {
    "running": "poweredOn",
    "off": "poweredOff",
    "saved": "suspended",
    "paused": "suspended",
}
VMSTATE_NUMBERS = {2: "Running", 3: "Off", 6: "Saved", 9: "Paused"}


def list_hyperv(settings: InventorySettings) -> list[VmInfo]:
    """Every VM of the Hyper-V host, with its VHD(X) disks."""
    stdout, stderr, code = _run_powershell(settings, SCRIPT)
    where = f"hyperv {settings.address}"
    if code != 0:
        text = _clixml_text(stderr) or f"exit code {code}"
        raise InventoryError("protocol", f"{where}: PowerShell failed: {text}")
    return parse_vms(stdout, where)


def _timeouts(settings: InventorySettings) -> tuple[int, int]:
    """(read, operation) seconds: pywinrm wants integers with read > operation."""
    read = max(2, math.ceil(settings.timeout))
    return read, read - 1


def transport_options(settings: InventorySettings) -> dict[str, Any]:
    """pywinrm's transport options for the settings, or InventoryError for a setting
    that would expose the password without `allow_insecure` (`insecure_reason`).

    NTLM over http: every SOAP body sealed with the NTLM session key ("always": a host
    that cannot seal is refused, never talked to in clear). NTLM over https: TLS
    protects the bodies, NTLM carries the certificate's channel binding. The
    certificate is checked against `ca_file`, else the requests variables, else the
    system's CAs.
    """
    where = f"hyperv {settings.address}"
    https = settings.effective_protocol == "https"
    auth = settings.effective_auth
    problem = insecure_reason(settings.kind, settings.effective_protocol, auth,
                              settings.verify_tls)
    if problem is not None and not settings.allow_insecure:
        raise InventoryError("protocol", f"{where}: {problem[0]}: {problem[1]}")
    return {
        "transport": auth,
        "message_encryption": "never" if auth == "basic" else ("auto" if https else "always"),
        "server_cert_validation": "validate" if settings.verify_tls else "ignore",
        # a private CA bundle: the job's ca_file, else (pywinrm's deprecated default,
        # said explicitly) the usual requests variables, else the system's
        "ca_trust_path": settings.ca_file or os.environ.get("REQUESTS_CA_BUNDLE")
        or os.environ.get("CURL_CA_BUNDLE") or None,
    }


def _run_powershell(settings: InventorySettings, script: str) -> tuple[bytes, bytes, int]:
    where = f"hyperv {settings.address}"
    read_timeout, operation_timeout = _timeouts(settings)
    url = f"{settings.effective_protocol}://{settings.host}:{settings.effective_port}/wsman"
    options = transport_options(settings)
    password = settings.password()
    try:
        session = winrm.Session(
            url,
            auth=(settings.user, password),
            read_timeout_sec=read_timeout,
            operation_timeout_sec=operation_timeout,
            **options,
        )
    except Exception as exc:  # noqa: BLE001 - a bad URL or option; never echo the password
        raise InventoryError("protocol", f"{where}: {type(exc).__name__}") from None
    protocol = session.protocol
    encoded = base64.b64encode(script.encode("utf-16-le")).decode("ascii")
    command = f"powershell -NoProfile -NonInteractive -encodedcommand {encoded}"
    deadline = time.monotonic() + settings.timeout * COMMAND_BUDGET_FACTOR

    shell_id = None
    clean_up = True
    try:
        shell_id = protocol.open_shell(codepage=UTF8_CODEPAGE)
        command_id = protocol.run_command(shell_id, command)
        out: list[bytes] = []
        err: list[bytes] = []
        while True:
            try:
                stdout, stderr, code, done = protocol.get_command_output_raw(shell_id, command_id)
            except WinRMOperationTimeoutError:
                # The server held the Receive for operation_timeout with no output: still running.
                if time.monotonic() > deadline:
                    raise TimeoutError from None
                continue
            out.append(stdout)
            err.append(stderr)
            if done:
                break
            if time.monotonic() > deadline:
                raise TimeoutError
        protocol.cleanup_command(shell_id, command_id)
        return b"".join(out), b"".join(err), code
    except Exception as exc:  # noqa: BLE001 - every failure becomes one classified line
        error = _classify(settings, exc)
        clean_up = error.reason not in ("timeout", "unreachable")  # don't wait on a dead host twice
        raise error from None
    finally:
        try:
            if shell_id is not None and clean_up:
                protocol.close_shell(shell_id)  # also closes the HTTP session
            else:
                protocol.transport.close_session()
        except Exception:  # noqa: BLE001 - the shell idles out on the host anyway
            pass


def _classify(settings: InventorySettings, exc: BaseException) -> InventoryError:
    """One reason and one line for whatever pywinrm or requests raised."""
    where = f"hyperv {settings.address}"
    if isinstance(exc, InventoryError):
        return exc
    if isinstance(exc, AuthenticationError):
        return InventoryError("login", f"{where}: login refused for user {settings.user!r}")
    if isinstance(exc, TimeoutError | requests.exceptions.Timeout):
        return InventoryError("timeout", f"{where}: no answer within {settings.timeout:g} s")
    if isinstance(exc, requests.exceptions.SSLError):
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return InventoryError(
                "unreachable",
                f"{where}: TLS certificate not trusted; give the CA that signed it in "
                "ca_file (verify_tls = false needs allow_insecure, for lab hosts only)",
            )
        return InventoryError("protocol", f"{where}: TLS handshake failed")
    if isinstance(exc, requests.exceptions.ConnectionError):
        return InventoryError("unreachable", f"{where}: {_connection_reason(exc)}")
    if isinstance(exc, WSManFaultError):
        return InventoryError("protocol", f"{where}: WS-Man fault: {exc.reason}")
    if isinstance(exc, WinRMTransportError):
        return InventoryError("protocol", f"{where}: HTTP {exc.code} from the WinRM service")
    if isinstance(exc, WinRMError):
        return InventoryError("protocol", f"{where}: {type(exc).__name__}: {exc}")
    return InventoryError("protocol", f"{where}: unexpected WinRM answer ({type(exc).__name__})")


def _connection_reason(exc: requests.exceptions.ConnectionError) -> str:
    """'Connection refused' and friends, without requests' long repr chain."""
    text = str(exc)
    for known in (
        "Connection refused",
        "Name or service not known",
        "No route to host",
        "Network is unreachable",
        "Connection reset",
        "Remote end closed",
    ):
        if known in text:
            return known
    return "connection failed"


def _clixml_text(stderr: bytes) -> str:
    """The error lines of PowerShell's CLIXML stderr, as plain text.

    PowerShell serialises the error stream as `#< CLIXML` followed by <S S="Error">
    elements whose control characters are escaped as _xHHHH_.
    """
    raw = stderr.decode("utf-8", errors="replace").lstrip("\ufeff")
    if not raw.startswith("#< CLIXML"):
        return raw.strip().splitlines()[0] if raw.strip() else ""
    body = raw.split("\n", 1)[1] if "\n" in raw else ""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return "unreadable error output"
    lines = [
        (el.text or "")
        for el in root.iter()
        if el.tag.rsplit("}", 1)[-1] == "S" and el.get("S", "").lower() == "error"
    ]
    text = re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), "".join(lines))
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return first


def parse_vms(stdout: bytes, where: str = "hyperv") -> list[VmInfo]:
    """VMs from the script's JSON: an array, a bare object (one VM) or nothing (none)."""
    text = stdout.decode("utf-8", errors="replace").lstrip("\ufeff").strip()
    if not text:
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InventoryError(
            "protocol", f"{where}: Get-VM output is not JSON ({exc.msg})"
        ) from None
    items = data if isinstance(data, list) else [data]
    machines = []
    for item in items:
        if not isinstance(item, dict) or not item.get("Name"):
            raise InventoryError("protocol", f"{where}: unexpected Get-VM entry {str(item)[:60]!r}")
        machines.append(
            VmInfo(
                name=str(item["Name"]),
                id=_vm_id(item.get("Id")),
                power_state=_power_state(item.get("State")),
                host=str(item.get("ComputerName") or ""),
                disks=_disks(item.get("Disks")),
            )
        )
    return machines


def _vm_id(value: Any) -> str:
    if isinstance(value, dict):  # a Guid serialised as an object by older hosts
        value = value.get("Guid") or value.get("value") or ""
    return str(value or "").lower()


def _power_state(value: Any) -> str:
    if isinstance(value, int):
        value = VMSTATE_NUMBERS.get(value, f"state-{value}")
    state = str(value or "unknown")
    base = state.lower().removesuffix("critical")  # RunningCritical etc.: storage trouble
    return POWER_STATES.get(base, state)


def _disks(value: Any) -> list[VmDisk]:
    if value is None:
        return []
    items = value if isinstance(value, list) else [value]
    disks: list[VmDisk] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, dict):
            continue
        name = str(item.get("Name") or "disk")
        unique, n = name, 2
        while unique in seen:  # two VHDs of one file name in different folders
            unique, n = f"{name} ({n})", n + 1
        seen.add(unique)
        disks.append(VmDisk(name=unique, size=int(item.get("Size") or 0)))
    return disks
