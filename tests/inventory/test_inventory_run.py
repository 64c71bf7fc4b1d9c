"""Issue 6 steps 2 and 3 end to end: real copy runs asking a real inventory endpoint.

The source repository is built with the real source backup job; the machine
names are the simulator's VM names. Each run copies through the real runner and
target mover; facts land in the target metadata; a failing inventory ends the
run as Warning with the copy still done, byte for byte; the password goes
nowhere.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from pyVim.connect import Disconnect, SmartConnect
from pyVim.task import WaitForTask
from pyVmomi import vim

from engine.backup import take_backup
from engine.copy.inventory_step import check_inventory
from engine.copy.runner import run_job
from engine.inventory.base import InventorySettings, list_machines
from engine.jobs.load import load_job
from engine.repository.repository import Repository
from engine.restore import export_point

from .conftest import (
    HV_PASSWORD_ENV,
    HV_USER,
    VC_PASSWORD,
    VC_PASSWORD_ENV,
    VC_USER,
)

BS = 256 << 10
T0 = datetime(2026, 11, 1, 22, 0)
ROOT = Path(__file__).resolve().parents[2]
JOB = "DR copy"
SOURCE_JOB = "Daily"


class Lab:
    """A source repository whose machines carry hypervisor VM names, and a job file."""

    def __init__(self, root: Path, machines: list[str], seed: int = 6) -> None:
        self.root = root
        self.source = root / "primary"
        self.target = root / "dr"
        self.rng = random.Random(seed)
        self.disks: dict[str, bytearray] = {}
        self.states: dict[tuple[str, str], bytes] = {}  # (machine, source point) -> disk bytes
        for m in machines:
            self.disks[m] = bytearray(self.rng.randbytes(4 * BS + 1234))  # ~1 MiB, odd tail

    def backup(self, when: datetime) -> None:
        for m, data in self.disks.items():
            if self.states:  # change a little between points
                off = self.rng.randrange(len(data) - 64)
                data[off : off + 64] = self.rng.randbytes(64)
            disk = self.root / "disks" / m / "disk0.img"
            disk.parent.mkdir(parents=True, exist_ok=True)
            disk.write_bytes(data)
            r = take_backup(
                self.source, SOURCE_JOB, m, [disk], method="forward", keep=5, block_size=BS, at=when
            )
            self.states[(m, r.point.id)] = bytes(data)

    def job(self, inventory: str, name: str = "dr.toml") -> Path:
        path = self.root / name
        path.write_text(f"""name = "{JOB}"

[source]
repository = "{self.source}"
jobs = ["{SOURCE_JOB}"]

[target]
repository = "{self.target}"

[retention]
keep = 7

[transport]
retries = 0

[inventory]
{inventory}
""")
        return path

    def meta(self, machine: str):
        return Repository(self.target).load(JOB, machine)

    def assert_copied(self, out: Path) -> None:
        """Every machine's latest target point exports byte for byte as its source point."""
        for m in self.disks:
            last = self.meta(m).points[-1]
            dest = out / f"{m}-{last.id}"
            export_point(self.target, JOB, m, last.id, dest)
            assert (dest / "disk0.img").read_bytes() == self.states[(m, last.source_point)], m

    def leaks(self, secret: str) -> list[str]:
        """Files under the source, target and job folder whose bytes contain the secret."""
        needle = secret.encode()
        return [str(p) for p in self.root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def vsphere_table(port: int, *, protocol: str = "https", timeout: str = "5s") -> str:
    return f"""kind = "vsphere"
host = "127.0.0.1"
port = {port}
protocol = "{protocol}"
verify_tls = false
user = "{VC_USER}"
password_env = "{VC_PASSWORD_ENV}"
timeout = "{timeout}"
"""


def hyperv_table(port: int) -> str:
    return f"""kind = "hyperv"
host = "127.0.0.1"
port = {port}
user = "{HV_USER}"
password_env = "{HV_PASSWORD_ENV}"
timeout = 5
"""


def ferry(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_no_secret(lab: Lab, res, *secrets: str) -> None:
    doc = json.dumps(res.to_json())
    for s in secrets:
        assert s not in doc and s not in res.message
        assert lab.leaks(s) == []
    db = lab.target / ".ferry" / "history.sqlite"
    assert db.is_file() and db.stat().st_size > 0  # the history was written, and checked above


VPX_PAIR = ["DC0_H0_VM0", "DC0_H0_VM1"]


# -- vSphere -----------------------------------------------------------------------------


def test_vsphere_run_records_inventory_facts(tmp_path, vpx, vc_password, vc_settings):
    lab = Lab(tmp_path, VPX_PAIR)
    lab.backup(T0)
    spec = load_job(lab.job(vsphere_table(vpx.port)))
    assert spec.inventory.protocol == "https" and spec.inventory.timeout == 5.0

    res = run_job(spec, at=T0 + timedelta(hours=1))

    assert res.status == "Success", res.to_json()
    assert res.message == ""
    assert [t.kind for t in res.tasks] == ["full", "full"]
    truth = {m.name: m for m in list_machines(vc_settings(vpx))}
    for m in VPX_PAIR:
        facts = lab.meta(m).facts
        assert facts["vm_id"] == truth[m].id and facts["vm_id"]
        assert facts["vm_name"] == m
        assert facts["host"] == "DC0_H0" and facts["folder"] == "/DC0/vm"
        assert facts["inventory_kind"] == "vsphere" and facts["inventory_missing"] is False
        assert facts["disks"] == [{"name": d.name, "size": d.size} for d in truth[m].disks]
        assert facts["source_job"] == SOURCE_JOB  # the runner's own fact is kept
    assert lab.meta("DC0_H0_VM0").facts["power_state"] == "poweredOn"
    assert lab.meta("DC0_H0_VM1").facts["power_state"] == "poweredOff"
    lab.assert_copied(tmp_path / "out")
    assert_no_secret(lab, res, vc_password)


@pytest.mark.parametrize("failure", ["wrong-password", "unset-variable", "host-down"])
def test_vsphere_failure_warns_and_copies_from_metadata(
    tmp_path, vpx, vc_password, closed_port, monkeypatch, failure
):
    lab = Lab(tmp_path, VPX_PAIR)
    lab.backup(T0)
    port = closed_port if failure == "host-down" else vpx.port
    spec = load_job(lab.job(vsphere_table(port)))
    wrong = "not-the-Pa55word-either"
    if failure == "wrong-password":
        monkeypatch.setenv(VC_PASSWORD_ENV, wrong)
    elif failure == "unset-variable":
        monkeypatch.delenv(VC_PASSWORD_ENV)

    res = run_job(spec, at=T0 + timedelta(hours=1))

    assert res.status == "Warning", res.to_json()
    assert res.exit_code == 1
    assert all(t.status == "Success" and t.kind == "full" for t in res.tasks), res.to_json()
    assert res.message.startswith("inventory: 127.0.0.1 ")
    assert f"(vsphere 127.0.0.1:{port}: " in res.message  # the backend's reason, as it said it
    assert res.message.endswith("; copying from repository metadata")
    assert "\n" not in res.message
    expected = {
        "wrong-password": "refused the login",
        "unset-variable": VC_PASSWORD_ENV,
        "host-down": "unreachable",
    }[failure]
    assert expected in res.message
    if failure == "host-down":
        assert f"127.0.0.1:{closed_port}" in res.message
    lab.assert_copied(tmp_path / "out")
    for m in VPX_PAIR:  # nothing from the host: only what the copy itself knows
        assert "vm_id" not in lab.meta(m).facts
    assert_no_secret(lab, res, VC_PASSWORD, wrong)


def test_failure_keeps_the_facts_of_the_last_good_run(tmp_path, vpx, vc_password, monkeypatch):
    lab = Lab(tmp_path, VPX_PAIR)
    lab.backup(T0)
    spec = load_job(lab.job(vsphere_table(vpx.port)))
    assert run_job(spec, at=T0 + timedelta(hours=1)).status == "Success"
    before = {m: lab.meta(m).facts["vm_id"] for m in VPX_PAIR}

    lab.backup(T0 + timedelta(days=1))
    monkeypatch.setenv(VC_PASSWORD_ENV, "wrong-again")
    res = run_job(spec, at=T0 + timedelta(days=1, hours=1))

    assert res.status == "Warning" and "refused the login" in res.message
    assert [t.kind for t in res.tasks] == ["incremental", "incremental"]
    assert {m: lab.meta(m).facts["vm_id"] for m in VPX_PAIR} == before
    lab.assert_copied(tmp_path / "out")


def test_plain_http_esxi_job(tmp_path, esx, vc_password):
    lab = Lab(tmp_path, ["ha-host_VM0"])
    lab.backup(T0)
    spec = load_job(lab.job(vsphere_table(esx.port, protocol="http", timeout="2s")))
    assert spec.inventory.protocol == "http" and spec.inventory.timeout == 2.0

    res = run_job(spec, at=T0 + timedelta(hours=1))

    assert res.status == "Success", res.to_json()
    facts = lab.meta("ha-host_VM0").facts
    assert facts["folder"] == "/ha-datacenter/vm" and facts["power_state"] == "poweredOn"
    assert_no_secret(lab, res, vc_password)


def _rename_and_delete(sim, password: str, rename: tuple[str, str], delete: str) -> None:
    si = SmartConnect(
        host="127.0.0.1", port=sim.port, user=VC_USER, pwd=password, disableSslCertValidation=True
    )
    try:
        content = si.RetrieveContent()
        view = content.viewManager.CreateContainerView(
            content.rootFolder, [vim.VirtualMachine], True
        )
        vms = {vm.name: vm for vm in view.view}
        WaitForTask(vms[rename[0]].Rename_Task(rename[1]))
        WaitForTask(vms[delete].PowerOffVM_Task())
        WaitForTask(vms[delete].Destroy_Task())
        view.Destroy()
    finally:
        Disconnect(si)


def test_renamed_vm_keeps_its_chain_and_deleted_vm_is_gone(tmp_path, vcsim_factory, vc_password):
    sim = vcsim_factory("-mode", "vpx")  # its own simulator: this test changes the inventory
    lab = Lab(tmp_path, ["DC0_H0_VM0", "DC0_C0_RP0_VM1"])
    lab.backup(T0)
    spec = load_job(lab.job(vsphere_table(sim.port)))
    assert run_job(spec, at=T0 + timedelta(hours=1)).status == "Success"
    ids = {m: lab.meta(m).facts["vm_id"] for m in lab.disks}

    _rename_and_delete(sim, vc_password, ("DC0_H0_VM0", "web01-renamed"), "DC0_C0_RP0_VM1")

    outcome = check_inventory(spec, list(lab.disks), Repository(lab.target))
    assert outcome.gone == ["DC0_C0_RP0_VM1"]
    assert outcome.facts["DC0_H0_VM0"]["vm_name"] == "web01-renamed"
    assert outcome.warnings == ["inventory: DC0_C0_RP0_VM1 not found on 127.0.0.1"]

    # The source job still has a new point of both (its last one of the deleted VM).
    lab.backup(T0 + timedelta(days=1))
    res = run_job(spec, at=T0 + timedelta(days=1, hours=1))

    assert res.status == "Warning", res.to_json()
    assert res.message == "inventory: DC0_C0_RP0_VM1 not found on 127.0.0.1"
    assert [t.kind for t in res.tasks] == ["incremental", "incremental"]
    renamed = lab.meta("DC0_H0_VM0")
    assert len(renamed.points) == 2  # the same chain, not a new machine
    assert renamed.facts["vm_id"] == ids["DC0_H0_VM0"]
    assert renamed.facts["vm_name"] == "web01-renamed"
    assert not Repository(lab.target).has(JOB, "web01-renamed")
    gone = lab.meta("DC0_C0_RP0_VM1").facts
    assert gone["inventory_missing"] is True
    assert gone["vm_id"] == ids["DC0_C0_RP0_VM1"]  # the last known identity stays
    lab.assert_copied(tmp_path / "out")


def test_dry_run_asks_the_inventory_and_writes_nothing(tmp_path, vpx, vc_password, closed_port):
    lab = Lab(tmp_path, VPX_PAIR)
    lab.backup(T0)
    spec = load_job(lab.job(vsphere_table(closed_port)))

    res = run_job(spec, at=T0 + timedelta(hours=1), dry_run=True)

    assert res.status == "Warning" and "unreachable" in res.message
    assert not lab.target.exists()


# -- Hyper-V -----------------------------------------------------------------------------


def test_hyperv_run_records_facts_and_warns_on_refused_login(tmp_path, wsman, hv_password):
    lab = Lab(tmp_path, ["web01", "db01"])
    lab.backup(T0)
    spec = load_job(lab.job(hyperv_table(wsman.port)))
    assert spec.inventory.protocol == "http"

    res = run_job(spec, at=T0 + timedelta(hours=1))

    assert res.status == "Success", res.to_json()
    web, db = lab.meta("web01").facts, lab.meta("db01").facts
    assert web["vm_id"] == "6f1c1ce2-6f3b-4d5e-9a41-0c2a3f6b7d10"
    assert web["power_state"] == "poweredOn" and db["power_state"] == "poweredOff"
    assert web["host"] == "HV01" and web["inventory_kind"] == "hyperv"
    assert [d["size"] for d in web["disks"]] == [40 * 2**30, 100 * 2**30]
    lab.assert_copied(tmp_path / "out1")

    lab.backup(T0 + timedelta(days=1))
    wsman.password = "the-host-now-expects-another"
    res2 = run_job(spec, at=T0 + timedelta(days=1, hours=1))

    assert res2.status == "Warning", res2.to_json()
    assert res2.message.startswith("inventory: 127.0.0.1 refused the login (")
    assert [t.status for t in res2.tasks] == ["Success", "Success"]
    assert [t.kind for t in res2.tasks] == ["incremental", "incremental"]
    lab.assert_copied(tmp_path / "out2")
    assert_no_secret(lab, res, hv_password)
    assert_no_secret(lab, res2, hv_password, "the-host-now-expects-another")


def test_hyperv_host_down_warns_and_copies(tmp_path, closed_port, hv_password):
    lab = Lab(tmp_path, ["web01"])
    lab.backup(T0)
    spec = load_job(lab.job(hyperv_table(closed_port)))

    res = run_job(spec, at=T0 + timedelta(hours=1))

    assert res.status == "Warning" and "inventory: 127.0.0.1 unreachable (" in res.message
    assert res.tasks[0].status == "Success"
    lab.assert_copied(tmp_path / "out")


def test_hyperv_vm_missing_from_host(tmp_path, wsman, hv_password):
    lab = Lab(tmp_path, ["web01", "old-vm"])
    lab.backup(T0)
    spec = load_job(lab.job(hyperv_table(wsman.port)))

    res = run_job(spec, at=T0 + timedelta(hours=1))

    assert res.status == "Warning"
    assert res.message == "inventory: old-vm not found on 127.0.0.1"
    assert lab.meta("old-vm").facts["inventory_missing"] is True
    assert lab.meta("web01").facts["inventory_missing"] is False


# -- settings ----------------------------------------------------------------------------


def test_the_job_loader_gives_the_settings_the_backends_take(tmp_path):
    lab = Lab(tmp_path, ["x"])
    lab.source.mkdir()
    spec = load_job(lab.job(hyperv_table(5985)))
    s = spec.inventory
    assert isinstance(s, InventorySettings)
    assert (s.kind, s.host, s.effective_port, s.effective_protocol) == (
        "hyperv",
        "127.0.0.1",
        5985,
        "http",
    )
    assert (s.user, s.password_env, s.timeout, s.verify_tls) == (
        HV_USER,
        HV_PASSWORD_ENV,
        5.0,
        True,
    )
    bare = load_job(lab.job('kind = "vsphere"\nhost = "vc"\n', name="bare.toml")).inventory
    assert (bare.port, bare.protocol, bare.user, bare.password_env) == (443, "https", "", "")


def test_password_in_the_job_file_is_refused_without_echoing_it(tmp_path):
    lab = Lab(tmp_path, ["x"])
    lab.source.mkdir()
    path = lab.job(vsphere_table(443) + 'password = "in-the-file-S3cret"\n')
    proc = ferry("inventory", path, "--json")
    assert proc.returncode == 2
    assert "in-the-file-S3cret" not in proc.stderr + proc.stdout
    assert "password" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# -- CLI ---------------------------------------------------------------------------------


def test_cli_inventory_json_has_the_contract_shape(tmp_path, vpx, vc_password, vc_settings):
    lab = Lab(tmp_path, ["x"])
    lab.source.mkdir()
    proc = ferry("inventory", lab.job(vsphere_table(vpx.port)), "--json")

    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["kind"] == "vsphere" and doc["host"] == "127.0.0.1"
    truth = {m.name: m for m in list_machines(vc_settings(vpx))}
    assert {m["name"] for m in doc["machines"]} == set(truth)
    for m in doc["machines"]:
        assert {"name", "id", "power_state", "disks"} <= set(m)
        assert m["id"] == truth[m["name"]].id
        assert m["power_state"] == truth[m["name"]].power_state
        assert m["disks"] and all(set(d) == {"name", "size"} and d["size"] > 0 for d in m["disks"])
    assert vc_password not in proc.stdout + proc.stderr

    table = ferry("inventory", lab.job(vsphere_table(vpx.port)))
    assert table.returncode == 0 and "DC0_H0_VM1" in table.stdout and "poweredOff" in table.stdout


def test_cli_inventory_hyperv_json(tmp_path, wsman, hv_password):
    lab = Lab(tmp_path, ["x"])
    lab.source.mkdir()
    proc = ferry("inventory", lab.job(hyperv_table(wsman.port)), "--json")

    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["kind"] == "hyperv"
    assert [m["name"] for m in doc["machines"]] == ["build", "db01", "web01"]


@pytest.mark.parametrize("failure", ["wrong-password", "host-down"])
def test_cli_inventory_failure_is_one_line_exit_2(
    tmp_path, vpx, vc_password, closed_port, monkeypatch, failure
):
    lab = Lab(tmp_path, ["x"])
    lab.source.mkdir()
    wrong = "cli-wrong-Pa55word"
    if failure == "wrong-password":
        monkeypatch.setenv(VC_PASSWORD_ENV, wrong)
    port = closed_port if failure == "host-down" else vpx.port
    proc = ferry("inventory", lab.job(vsphere_table(port)), "--json")

    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ferry inventory: vsphere 127.0.0.1:")
    assert ("login refused" if failure == "wrong-password" else "refused") in lines[0]
    assert "Traceback" not in proc.stderr
    assert VC_PASSWORD not in proc.stderr and wrong not in proc.stderr


def test_cli_inventory_without_table_exit_2(tmp_path):
    lab = Lab(tmp_path, ["x"])
    lab.source.mkdir()
    path = lab.job("")
    path.write_text(path.read_text().replace("[inventory]\n", ""))
    proc = ferry("inventory", path)
    assert proc.returncode == 2 and "no [inventory] table" in proc.stderr


def test_cli_run_json_reports_the_warning(tmp_path, vpx, vc_password, monkeypatch):
    lab = Lab(tmp_path, VPX_PAIR)
    lab.backup(T0)
    monkeypatch.setenv(VC_PASSWORD_ENV, "cli-run-wrong")
    proc = ferry("run", lab.job(vsphere_table(vpx.port)), "--json", "--at", "2026-11-01T23:00")

    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "Warning" and "refused the login" in doc["message"]
    assert [t["status"] for t in doc["tasks"]] == ["Success", "Success"]
    assert "cli-run-wrong" not in proc.stdout + proc.stderr
    assert VC_PASSWORD not in proc.stdout + proc.stderr
    assert lab.leaks("cli-run-wrong") == [] and lab.leaks(VC_PASSWORD) == []


def test_host_answering_nonsense_warns_and_copies(tmp_path, vpx, vc_password):
    lab = Lab(tmp_path, ["DC0_H0_VM0"])
    lab.backup(T0)
    # plain http to the simulator's TLS port: the host answers, but not in any protocol we speak
    spec = load_job(lab.job(vsphere_table(vpx.port, protocol="http")))

    res = run_job(spec, at=T0 + timedelta(hours=1))

    assert res.status == "Warning", res.to_json()
    assert res.message.startswith("inventory: 127.0.0.1 gave an unexpected answer (vsphere ")
    assert res.tasks[0].status == "Success"
    lab.assert_copied(tmp_path / "out")


def test_a_backend_bug_is_a_warning_and_never_shows_the_password(
    tmp_path, vc_password, monkeypatch
):
    import engine.inventory.base as base

    def broken(settings):
        raise RuntimeError(f"backend bug while using {settings.password()}")

    monkeypatch.setattr(base, "list_machines", broken)
    lab = Lab(tmp_path, ["DC0_H0_VM0"])
    lab.backup(T0)
    spec = load_job(lab.job(vsphere_table(443)))

    res = run_job(spec, at=T0 + timedelta(hours=1))

    assert res.status == "Warning" and res.tasks[0].status == "Success"
    assert "could not be asked (RuntimeError: backend bug while using ***)" in res.message
    assert_no_secret(lab, res, vc_password)


def test_two_vms_of_one_name_are_not_guessed(tmp_path, monkeypatch):
    import engine.copy.inventory_step as step
    from engine.inventory.base import InventoryResult, VmInfo

    found = [
        VmInfo("app", "id-1", "poweredOn", folder="/DC0/vm/Prod"),
        VmInfo("app", "id-2", "poweredOff", folder="/DC0/vm/Test"),
        VmInfo("db", "id-3", "poweredOn"),
    ]
    monkeypatch.setattr(step, "lookup", lambda settings: InventoryResult(ok=True, machines=found))
    lab = Lab(tmp_path, ["x"])
    lab.source.mkdir()
    spec = load_job(lab.job(vsphere_table(443)))

    out = check_inventory(spec, ["app", "db"], Repository(lab.target))

    assert out.gone == [] and list(out.facts) == ["db"]
    assert out.warnings == [
        "inventory: app: 2 machines named 'app' on 127.0.0.1; none recorded for it"
    ]
