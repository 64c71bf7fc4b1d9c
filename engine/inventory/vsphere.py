"""vCenter / ESXi inventory through pyvmomi.

Two choices here are deliberate:

* The API version is discovered by our own GET of `/sdk/vimServiceVersions.xml`
  with a timeout, then pyvmomi's `Connect` is called with that version.
  `SmartConnect` does the same discovery with a socket that has *no* timeout,
  so a host that accepts TCP and never answers would hang a copy run forever.
* Everything is fetched with one PropertyCollector query over a container view
  (VMs, hosts, folders, datacenters) instead of attribute access, which costs a
  round trip per property: hundreds of VMs list in a fraction of a second.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import xml.etree.ElementTree as ET
from typing import Any

from pyVim.connect import Connect, Disconnect
from pyVmomi import VmomiSupport, vim, vmodl

from engine.inventory.base import InventoryError, InventorySettings, VmDisk, VmInfo

SDK_PATH = "/sdk"
PAGE_SIZE = 500  # objects per RetrievePropertiesEx page

VM_PROPERTIES = [
    "name",
    "config.instanceUuid",
    "config.hardware.device",
    "runtime.powerState",
    "runtime.host",
    "parent",
]


def list_vsphere(settings: InventorySettings) -> list[VmInfo]:
    """Every VM the vCenter or standalone ESXi host knows, with disks."""
    password = settings.password()
    context = _ssl_context(settings)
    version = _api_version(settings, context)
    si = _login(settings, password, version, context)
    log_out = True
    try:
        return _collect(si)
    except Exception as exc:  # noqa: BLE001 - every failure becomes one classified line
        error = _classify(settings, exc)
        log_out = error.reason not in ("timeout", "unreachable")  # don't wait on a dead host twice
        raise error from exc
    finally:
        _disconnect(si, log_out)


def _disconnect(si: Any, log_out: bool) -> None:
    """Always end the session (vCenter keeps idle sessions for a long time) and
    close the sockets; skip the logout round trips when the host stopped answering."""
    try:
        if log_out:
            Disconnect(si)  # type: ignore[no-untyped-call]  # pyvmomi ships py.typed but no annotations
        else:
            si._stub.DropConnections()
    except Exception:  # noqa: BLE001 - a failed logout must not mask the result
        pass


def _ssl_context(settings: InventorySettings) -> ssl.SSLContext | None:
    if settings.effective_protocol != "https":
        return None
    if settings.verify_tls:
        return ssl.create_default_context()
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _api_version(settings: InventorySettings, context: ssl.SSLContext | None) -> str:
    """The newest vim25 API version both pyvmomi and the host speak."""
    conn: http.client.HTTPConnection
    if context is not None:
        conn = http.client.HTTPSConnection(
            settings.host, settings.effective_port, timeout=settings.timeout, context=context
        )
    else:
        conn = http.client.HTTPConnection(
            settings.host, settings.effective_port, timeout=settings.timeout
        )
    try:
        conn.request("GET", SDK_PATH + "/vimServiceVersions.xml")
        response = conn.getresponse()
        body = response.read()
        status = response.status
    except Exception as exc:  # noqa: BLE001
        raise _classify(settings, exc) from exc
    finally:
        conn.close()
    if status != 200:
        raise InventoryError(
            "protocol",
            f"vsphere {settings.address}: not a vSphere endpoint "
            f"(HTTP {status} for {SDK_PATH}/vimServiceVersions.xml)",
        )
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise InventoryError(
            "protocol", f"vsphere {settings.address}: unreadable vimServiceVersions.xml ({exc})"
        ) from exc
    offered: set[str] = set()
    for namespace in root.findall("namespace"):
        if namespace.findtext("name") != "urn:vim25":
            continue
        offered.add(namespace.findtext("version") or "")
        offered.update(v.text or "" for v in namespace.findall("priorVersions/version"))
    # pyvmomi ships py.typed but no annotations: say what it returns
    ours: list[str] = VmomiSupport.GetServiceVersions("vim25")  # type: ignore[no-untyped-call]
    for candidate in ours:
        if VmomiSupport.versionIdMap.get(candidate) in offered:
            return candidate
    raise InventoryError(
        "protocol",
        f"vsphere {settings.address}: no API version in common "
        f"(host offers {', '.join(sorted(offered)) or 'none'})",
    )


def _login(
    settings: InventorySettings, password: str, version: str, context: ssl.SSLContext | None
) -> Any:
    port = settings.effective_port
    try:
        return Connect(  # type: ignore[no-untyped-call]  # pyvmomi ships py.typed but no annotations
            host=settings.host,
            port=port if context is not None else -port,  # pyvmomi: negative port = plain http
            user=settings.user,
            pwd=password,
            version=version,
            path=SDK_PATH,
            sslContext=context,
            disableSslCertValidation=not settings.verify_tls,
            httpConnectionTimeout=settings.timeout,
        )
    except Exception as exc:  # noqa: BLE001
        # from None: the login request carried the password; keep it out of tracebacks.
        raise _classify(settings, exc) from None


def _classify(settings: InventorySettings, exc: BaseException) -> InventoryError:
    """One reason and one line for whatever pyvmomi, ssl or the socket raised."""
    where = f"vsphere {settings.address}"
    if isinstance(exc, InventoryError):
        return exc
    if isinstance(exc, vim.fault.InvalidLogin | vim.fault.NotAuthenticated):
        return InventoryError("login", f"{where}: login refused for user {settings.user!r}")
    if isinstance(exc, vim.fault.HostConnectFault):
        # pyvmomi wraps socket errors met during login in HostConnectFault(msg=str(error)).
        inner = exc.__cause__ or exc.__context__
        if inner is not None and not isinstance(inner, vmodl.MethodFault):
            return _classify(settings, inner)
    if isinstance(exc, vim.fault.NoPermission):
        return InventoryError(
            "login", f"{where}: user {settings.user!r} may not read the inventory"
        )
    if isinstance(exc, vmodl.MethodFault):
        text = getattr(exc, "msg", "") or type(exc).__name__
        return InventoryError("protocol", f"{where}: {type(exc).__name__}: {text}")
    if isinstance(exc, TimeoutError | socket.timeout):
        return InventoryError("timeout", f"{where}: no answer within {settings.timeout:g} s")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return InventoryError(
            "unreachable",
            f"{where}: TLS certificate not trusted ({exc.verify_message}); "
            "set verify_tls = false only for lab hosts",
        )
    if isinstance(exc, ssl.SSLError):
        return InventoryError("protocol", f"{where}: TLS handshake failed ({exc.reason or exc})")
    if isinstance(exc, socket.gaierror):
        return InventoryError("unreachable", f"{where}: unknown host ({exc.strerror})")
    if isinstance(exc, OSError):
        text = exc.strerror or type(exc).__name__
        return InventoryError("unreachable", f"{where}: {text}")
    if isinstance(exc, http.client.HTTPException):
        return InventoryError("protocol", f"{where}: bad HTTP answer ({type(exc).__name__})")
    return InventoryError("protocol", f"{where}: {type(exc).__name__}: {exc}")


def _collect(si: Any) -> list[VmInfo]:
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(
        content.rootFolder, [vim.VirtualMachine, vim.HostSystem, vim.Folder, vim.Datacenter], True
    )
    try:
        objects = _retrieve(content.propertyCollector, view)
    finally:
        view.Destroy()

    hosts: dict[str, str] = {}
    parents: dict[str, tuple[str, str]] = {}  # folder/datacenter moid -> (name, parent moid)
    vms: list[tuple[str, dict[str, Any]]] = []
    for obj, props in objects:
        moid = obj._moId
        if isinstance(obj, vim.VirtualMachine):
            vms.append((moid, props))
        elif isinstance(obj, vim.HostSystem):
            hosts[moid] = props.get("name", "")
        else:
            parent = props.get("parent")
            parents[moid] = (props.get("name", ""), parent._moId if parent is not None else "")

    machines = []
    for moid, props in vms:
        host = props.get("runtime.host")
        parent = props.get("parent")
        machines.append(
            VmInfo(
                name=props.get("name", ""),
                id=props.get("config.instanceUuid") or "",
                power_state=str(props.get("runtime.powerState") or "unknown"),
                host=hosts.get(host._moId, "") if host is not None else "",
                folder=_folder_path(parent._moId, parents) if parent is not None else "",
                moref=moid,
                disks=_disks(props.get("config.hardware.device") or []),
            )
        )
    return machines


def _retrieve(collector: Any, view: Any) -> list[tuple[Any, dict[str, Any]]]:
    """All objects of the view with their properties, following result pages."""
    # pyvmomi makes its managed types at run time; its py.typed carries no annotations
    pc: Any = vmodl.query.PropertyCollector
    traversal = pc.TraversalSpec(name="view", type=vim.view.ContainerView, path="view", skip=False)
    spec = pc.FilterSpec(
        objectSet=[pc.ObjectSpec(obj=view, skip=True, selectSet=[traversal])],
        propSet=[
            pc.PropertySpec(type=vim.VirtualMachine, pathSet=VM_PROPERTIES),
            pc.PropertySpec(type=vim.HostSystem, pathSet=["name"]),
            pc.PropertySpec(type=vim.Folder, pathSet=["name", "parent"]),
            pc.PropertySpec(type=vim.Datacenter, pathSet=["name", "parent"]),
        ],
    )
    out: list[tuple[Any, dict[str, Any]]] = []
    result = collector.RetrievePropertiesEx([spec], pc.RetrieveOptions(maxObjects=PAGE_SIZE))
    while result is not None:
        for item in result.objects:
            out.append((item.obj, {p.name: p.val for p in item.propSet or []}))
        if not result.token:
            break
        result = collector.ContinueRetrievePropertiesEx(result.token)
    return out


def _folder_path(moid: str, parents: dict[str, tuple[str, str]]) -> str:
    """Inventory path of a folder as govc prints it, e.g. /DC0/vm/Prod.

    Walks up to the root folder (absent from the view, so the walk stops there);
    VMs inside a vApp have no folder parent and get "".
    """
    names: list[str] = []
    seen: set[str] = set()
    while moid in parents and moid not in seen:
        seen.add(moid)
        name, moid = parents[moid]
        names.append(name)
    return "/" + "/".join(reversed(names)) if names else ""


def _disks(devices: list[Any]) -> list[VmDisk]:
    disks = []
    for device in devices:
        if not isinstance(device, vim.vm.device.VirtualDisk):
            continue
        label = device.deviceInfo.label if device.deviceInfo is not None else ""
        size = device.capacityInBytes or (device.capacityInKB or 0) * 1024
        disks.append(VmDisk(name=label or f"disk-{device.key}", size=int(size)))
    return disks
