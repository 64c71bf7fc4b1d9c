"""vSphere inventory against govmomi's simulator, through the real pyvmomi client."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import vim

from engine.inventory import base
from engine.inventory.base import (
    InventoryError,
    inventory_json,
    list_machines,
    lookup,
    match_machines,
)

VPX_VMS = {"DC0_H0_VM0", "DC0_H0_VM1", "DC0_C0_RP0_VM0", "DC0_C0_RP0_VM1"}


def direct_view(sim, password: str) -> dict[str, dict]:
    """What pyvmomi's plain attribute access says, to cross-check our property query."""
    si = SmartConnect(
        host="127.0.0.1",
        port=sim.port,
        user="ferry@vsphere.local",
        pwd=password,
        protocol="https" if sim.tls else "http",
        disableSslCertValidation=True,
    )
    try:
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(
            content.rootFolder, [vim.VirtualMachine], True
        )
        out = {}
        for vm in view.view:
            disks = [
                d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)
            ]
            out[vm.name] = {
                "id": vm.config.instanceUuid,
                "power": str(vm.runtime.powerState),
                "host": vm.runtime.host.name,
                "moref": vm._moId,
                "disks": [
                    (d.deviceInfo.label, (d.capacityInBytes or d.capacityInKB * 1024))
                    for d in disks
                ],
            }
        view.Destroy()
        return out
    finally:
        Disconnect(si)


def test_vcenter_lists_every_vm_with_ids_power_and_disks(vpx, vc_settings, vc_password):
    machines = list_machines(vc_settings(vpx))

    assert {m.name for m in machines} == VPX_VMS
    truth = direct_view(vpx, vc_password)
    for m in machines:
        assert str(uuid.UUID(m.id)) == m.id
        assert m.id == truth[m.name]["id"]
        assert m.power_state == truth[m.name]["power"]
        assert m.host == truth[m.name]["host"]
        assert m.moref == truth[m.name]["moref"]
        assert [(d.name, d.size) for d in m.disks] == truth[m.name]["disks"]
        assert len(m.disks) == 1 and m.disks[0].size > 0
        assert m.folder == "/DC0/vm"
    states = {m.name: m.power_state for m in machines}
    assert states["DC0_H0_VM1"] == "poweredOff"
    assert states["DC0_H0_VM0"] == "poweredOn"
    assert {m.host for m in machines if m.name.startswith("DC0_H0_")} == {"DC0_H0"}
    assert len({m.id for m in machines}) == len(machines)


def test_inventory_json_has_the_contract_shape(vpx, vc_settings):
    settings = vc_settings(vpx)
    doc = json.loads(json.dumps(inventory_json(settings, list_machines(settings))))

    assert doc["kind"] == "vsphere" and doc["host"] == "127.0.0.1"
    assert len(doc["machines"]) == 4
    for m in doc["machines"]:
        assert {"name", "id", "power_state", "disks"} <= set(m)
        assert m["power_state"] in ("poweredOn", "poweredOff")
        assert all(set(d) == {"name", "size"} and d["size"] > 0 for d in m["disks"])


def test_standalone_esxi_over_plain_http(esx, vc_settings):
    machines = list_machines(vc_settings(esx))

    assert [m.name for m in machines] == ["ha-host_VM0", "ha-host_VM1"]
    for m in machines:
        assert uuid.UUID(m.id)
        assert m.folder == "/ha-datacenter/vm"
        assert m.host and m.disks and m.power_state == "poweredOn"


def test_wrong_password_is_a_login_error(vpx, vc_settings, monkeypatch):
    settings = vc_settings(vpx)
    monkeypatch.setenv(settings.password_env, "not-the-password")

    with pytest.raises(InventoryError) as err:
        list_machines(settings)
    assert err.value.reason == "login"
    assert "login refused" in str(err.value)

    result = lookup(settings)
    assert not result.ok and result.machines == []
    assert "login refused" in result.warning and "\n" not in result.warning


def test_unset_password_variable_is_a_login_error(vpx, vc_settings, monkeypatch):
    settings = vc_settings(vpx, password_env="FERRY_TEST_UNSET_VARIABLE")
    monkeypatch.delenv("FERRY_TEST_UNSET_VARIABLE", raising=False)
    with pytest.raises(InventoryError) as err:
        list_machines(settings)
    assert err.value.reason == "login"
    assert "FERRY_TEST_UNSET_VARIABLE" in str(err.value)


def test_host_down_is_unreachable_and_lookup_warns(vc_settings, vpx, closed_port):
    settings = vc_settings(vpx, port=closed_port)
    with pytest.raises(InventoryError) as err:
        list_machines(settings)
    assert err.value.reason == "unreachable"
    assert f"127.0.0.1:{closed_port}" in str(err.value)

    result = lookup(settings)
    assert result.ok is False
    assert "refused" in result.warning.lower()


def test_self_signed_certificate_is_refused_when_verifying(vpx, vc_settings):
    with pytest.raises(InventoryError) as err:
        list_machines(vc_settings(vpx, verify_tls=True))
    assert err.value.reason == "unreachable"
    assert "certificate" in str(err.value)


def test_plain_http_to_a_tls_port_is_a_protocol_error_and_lookup_raises(vpx, vc_settings):
    settings = vc_settings(vpx, protocol="http")
    with pytest.raises(InventoryError) as err:
        lookup(settings)
    assert err.value.reason == "protocol"


def test_slow_host_times_out(vcsim_factory, vc_settings):
    slow = vcsim_factory("-mode", "esx", "-delay", "1500", tls=False)
    settings = vc_settings(slow, timeout=0.5)

    started = time.monotonic()
    with pytest.raises(InventoryError) as err:
        list_machines(settings)
    assert err.value.reason == "timeout"
    assert time.monotonic() - started < 2.5
    assert lookup(settings).ok is False


def test_timeout_after_login_does_not_wait_for_logout(vcsim_factory, vc_settings):
    # Login answers at once; the inventory query and the logout hang.
    slow = vcsim_factory(
        "-mode", "esx", "-method-delay", "RetrievePropertiesEx=2000,Logout=2000", tls=False
    )
    settings = vc_settings(slow, timeout=1.0)

    started = time.monotonic()
    with pytest.raises(InventoryError) as err:
        list_machines(settings)
    assert err.value.reason == "timeout"
    assert time.monotonic() - started < 1.6  # one timeout, no logout round trip after it


def test_three_hundred_vms(vcsim_factory, vc_settings):
    big = vcsim_factory("-mode", "vpx", "-vm", "100", "-standalone-host", "2")

    started = time.monotonic()
    machines = list_machines(vc_settings(big))
    elapsed = time.monotonic() - started

    assert len(machines) == 300
    assert len({m.id for m in machines}) == 300
    assert all(m.disks and m.host and m.folder == "/DC0/vm" for m in machines)
    # one property-collector pass, not a round trip per VM: about 1 s idle, so a wide
    # margin that a loaded 2-core machine still meets, but 300 sequential calls do not
    assert elapsed < 60, f"listing 300 VMs took {elapsed:.1f} s"
    assert lookup(vc_settings(big), names=["DC0_H1_VM42", "nope"]).machines[0].name == "DC0_H1_VM42"


def test_renamed_vm_keeps_its_chain_and_deleted_vm_is_gone(vcsim_factory, vc_settings, vc_password):
    sim = vcsim_factory("-mode", "vpx")
    settings = vc_settings(sim)
    before = list_machines(settings)
    known = {m.name: m.id for m in before}
    known["legacy-no-id"] = ""  # seen before inventories recorded ids: matched by name only

    si = SmartConnect(
        host="127.0.0.1",
        port=sim.port,
        user="ferry@vsphere.local",
        pwd=vc_password,
        disableSslCertValidation=True,
    )
    try:
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(
            content.rootFolder, [vim.VirtualMachine], True
        )
        vms = {vm.name: vm for vm in view.view}
        WaitForTask(vms["DC0_H0_VM0"].Rename_Task("web01-renamed"))
        WaitForTask(vms["DC0_C0_RP0_VM1"].PowerOffVM_Task())
        WaitForTask(vms["DC0_C0_RP0_VM1"].Destroy_Task())
        view.Destroy()
    finally:
        Disconnect(si)

    after = list_machines(settings)
    mapping, gone = match_machines(known, after)

    assert mapping["DC0_H0_VM0"].name == "web01-renamed"
    assert mapping["DC0_H0_VM0"].id == known["DC0_H0_VM0"]
    assert mapping["DC0_H0_VM1"].name == "DC0_H0_VM1"
    assert sorted(gone) == ["DC0_C0_RP0_VM1", "legacy-no-id"]
    assert "web01-renamed" not in mapping  # the renamed VM is not also a new machine


def test_settings_defaults_follow_the_kind():
    assert base.InventorySettings(kind="vsphere", host="vc").effective_port == 443
    assert base.InventorySettings(kind="hyperv", host="hv").effective_port == 5985
    assert base.InventorySettings(kind="hyperv", host="hv", protocol="https").effective_port == 5986
    assert base.InventorySettings(kind="vsphere", host="vc", port=8443).effective_port == 8443
    with pytest.raises(ValueError):
        base.InventorySettings(kind="xen", host="x")
