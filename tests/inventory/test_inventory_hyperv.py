"""Hyper-V inventory: the real pywinrm client against a local WS-Man endpoint.

Only the Windows side is simulated (see wsman_server.py).
"""

from __future__ import annotations

import json
import time

import pytest

from engine.inventory.base import InventoryError, inventory_json, list_machines, lookup
from engine.inventory.hyperv import SCRIPT

from .wsman_server import FakeVm


def test_lists_vms_with_disks_in_one_command(wsman, hv_settings):
    machines = list_machines(hv_settings(wsman))

    by_name = {m.name: m for m in machines}
    assert sorted(by_name) == ["build", "db01", "web01"]
    web = by_name["web01"]
    assert web.id == "6f1c1ce2-6f3b-4d5e-9a41-0c2a3f6b7d10"
    assert web.power_state == "poweredOn" and web.host == "HV01"
    assert [(d.name, d.size) for d in web.disks] == [
        ("web01.vhdx", 40 * 2**30),
        ("web01-data.vhdx", 100 * 2**30),
    ]
    assert by_name["db01"].power_state == "poweredOff"
    assert by_name["build"].power_state == "suspended" and by_name["build"].disks == []
    assert by_name["build"].host == "HV02"
    # one PowerShell command, the inventory script, and the shell was closed afterwards
    assert wsman.scripts == [SCRIPT]
    assert wsman.open_shells == {}

    doc = json.loads(json.dumps(inventory_json(hv_settings(wsman), machines)))
    assert doc["kind"] == "hyperv" and len(doc["machines"]) == 3


def test_a_single_vm_printed_as_a_bare_object(wsman, hv_settings):
    wsman.vms = [
        FakeVm(
            "solo",
            "11111111-2222-3333-4444-555555555555",
            "Running",
            "HV01",
            [(r"C:\VMs\solo.vhdx", 2**30)],
        )
    ]
    wsman.single_object = True
    machines = list_machines(hv_settings(wsman))
    assert [(m.name, m.id, [d.size for d in m.disks]) for m in machines] == [
        ("solo", "11111111-2222-3333-4444-555555555555", [2**30])
    ]


def test_no_vms_at_all(wsman, hv_settings):
    wsman.vms = []
    assert list_machines(hv_settings(wsman)) == []


def test_many_vms_and_names_outside_ascii(wsman, hv_settings):
    wsman.vms = [
        FakeVm(
            f"vm-{i:03d}-Ünïcødé",
            f"00000000-0000-0000-0000-{i:012d}",
            "Off",
            "HV01",
            [(rf"D:\VMs\vm{i}\disk0.vhdx", i * 2**20)],
        )
        for i in range(200)
    ]
    machines = list_machines(hv_settings(wsman))  # ~30 KiB of JSON: several Receive rounds
    assert len(machines) == 200
    assert machines[7].name == "vm-007-Ünïcødé" and machines[7].disks[0].size == 7 * 2**20


def test_powershell_error_is_a_protocol_error_with_its_text(wsman, hv_settings):
    wsman.ps_error = (
        "Get-VM : You do not have the required permission to complete this task. "
        "Contact the administrator of the authorization policy for the computer 'HV01'."
    )
    settings = hv_settings(wsman)
    with pytest.raises(InventoryError) as err:
        list_machines(settings)
    assert err.value.reason == "protocol"
    assert "You do not have the required permission" in str(err.value)
    assert "CategoryInfo" not in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(InventoryError):
        lookup(settings)  # a host that answers with an error is not "unreachable"
    assert wsman.open_shells == {}


def test_wrong_credentials_are_a_login_error(wsman, hv_settings, monkeypatch):
    settings = hv_settings(wsman)
    monkeypatch.setenv(settings.password_env, "wrong")
    with pytest.raises(InventoryError) as err:
        list_machines(settings)
    assert err.value.reason == "login"
    result = lookup(settings)
    assert not result.ok and "login refused for user 'ferry'" in result.warning
    assert wsman.scripts == []  # nothing ran


def test_slow_host_times_out(wsman, hv_settings):
    wsman.delay = {"Create": 6.0}
    settings = hv_settings(wsman, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(InventoryError) as err:
        list_machines(settings)
    assert err.value.reason == "timeout"
    assert time.monotonic() - started < 4


def test_command_that_never_finishes_hits_the_deadline(wsman, hv_settings):
    wsman.hang = True  # every Receive ends in an operation-timeout fault, which pywinrm retries
    settings = hv_settings(wsman, timeout=0.5)
    started = time.monotonic()
    result = lookup(settings)
    assert not result.ok and "no answer" in result.warning
    assert time.monotonic() - started < 6


def test_host_down_is_unreachable(hv_settings, wsman, closed_port):
    result = lookup(hv_settings(wsman, port=closed_port))
    assert not result.ok
    assert f"127.0.0.1:{closed_port}" in result.warning and "refused" in result.warning


def test_lookup_filters_by_name_or_id(wsman, hv_settings):
    result = lookup(hv_settings(wsman), names=["db01", "a7d2e9f0-3c4b-4a1d-b6e8-9f0a1b2c3d4e"])
    assert result.ok and result.warning == ""
    assert sorted(m.name for m in result.machines) == ["build", "db01"]
