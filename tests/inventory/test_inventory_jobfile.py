"""The Hyper-V keys of a job's `[inventory]` (issue 12 item 6): auth, ca_file and
allow_insecure, refused with one line `file:line: key: reason` where they would expose
the password, and `ferry inventory` end to end over verified https."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.jobs.load import JobFileError, load_job
from engine.jobs.save import job_to_dict, save_job

from .conftest import HV_PASSWORD_ENV, HV_USER

ROOT = Path(__file__).resolve().parents[2]
JOB = """\
name = "DR copy"

[source]
repository = "../primary"
jobs = ["Daily"]

[target]
repository = "../dr"

[inventory]
kind = "{kind}"
host = "127.0.0.1"
user = "{user}"
password_env = "{env}"
timeout = 5
"""


@pytest.fixture
def jobs(tmp_path: Path) -> Path:
    (tmp_path / "primary").mkdir()
    (tmp_path / "jobs").mkdir()
    return tmp_path / "jobs"


def job(folder: Path, extra: str, kind: str = "hyperv") -> Path:
    path = folder / "job.toml"
    path.write_text(JOB.format(kind=kind, user=HV_USER, env=HV_PASSWORD_ENV) + extra)
    return path


def refusal(path: Path) -> str:
    with pytest.raises(JobFileError) as err:
        load_job(path)
    return str(err.value)


def line_of(path: Path, marker: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if marker in line)


def test_hyperv_defaults_to_ntlm_and_nothing_insecure(jobs):
    inv = load_job(job(jobs, "")).inventory
    assert inv is not None and inv.effective_auth == "ntlm"
    assert (inv.auth, inv.ca_file, inv.allow_insecure) == ("", "", False)
    assert "auth" not in job_to_dict(load_job(job(jobs, "")))["inventory"]
    assert "allow_insecure" not in job_to_dict(load_job(job(jobs, "")))["inventory"]


def test_basic_over_http_is_refused_on_its_line(jobs):
    path = job(jobs, 'auth = "basic"\n')
    text = refusal(path)
    assert text.startswith(f"{path}:{line_of(path, 'auth =')}: inventory.auth: ")
    assert "Basic over http sends the password in clear" in text
    assert "allow_insecure = true" in text and "\n" not in text


def test_basic_over_http_with_allow_insecure(jobs):
    spec = load_job(job(jobs, 'auth = "basic"\nallow_insecure = true\n'))
    assert spec.inventory is not None and spec.inventory.allow_insecure
    again = save_job(spec)
    assert again == spec and "allow_insecure = true" in spec.path.read_text()


def test_unverified_https_is_refused_on_verify_tls(jobs):
    path = job(jobs, 'protocol = "https"\nverify_tls = false\n')
    text = refusal(path)
    assert text.startswith(f"{path}:{line_of(path, 'verify_tls')}: inventory.verify_tls: ")
    assert "ca_file" in text and "allow_insecure" in text


def test_ca_file_is_resolved_and_kept_relative(jobs):
    (jobs / "certs").mkdir()
    (jobs / "certs" / "hv01.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    spec = load_job(job(jobs, 'protocol = "https"\nca_file = "certs/hv01.pem"\n'))
    assert spec.inventory is not None
    assert spec.inventory.ca_file == str(jobs / "certs" / "hv01.pem")
    assert job_to_dict(spec)["inventory"]["ca_file"] == "certs/hv01.pem"
    moved = save_job(spec, jobs.parent / "elsewhere.toml")
    assert moved.inventory is not None and moved.inventory.ca_file == spec.inventory.ca_file
    assert 'ca_file = "jobs/certs/hv01.pem"' in (jobs.parent / "elsewhere.toml").read_text()


@pytest.mark.parametrize(("extra", "key", "words"), [
    ('protocol = "https"\nca_file = "nowhere.pem"\n', "ca_file", "file not found"),
    ('ca_file = "job.toml"\n', "ca_file", 'for protocol = "https" only'),
    ('auth = "kerberos"\n', "auth", "expected one of ntlm, basic"),
    ('allow_insecure = "yes"\n', "allow_insecure", "expected true or false"),
])
def test_bad_hyperv_keys(jobs, extra, key, words):
    path = job(jobs, extra)
    text = refusal(path)
    assert f": inventory.{key}: " in text and words in text


@pytest.mark.parametrize("extra", ['auth = "ntlm"\n', "allow_insecure = true\n",
                                   'ca_file = "job.toml"\n'])
def test_hyperv_keys_are_refused_for_vsphere(jobs, extra):
    text = refusal(job(jobs, extra, kind="vsphere"))
    assert "is for a Hyper-V host" in text


def test_ferry_inventory_over_verified_https(jobs, wsman_factory, hv_password):
    fake, ca = wsman_factory("ntlm", tls=True)
    path = job(jobs, f'protocol = "https"\nport = {fake.port}\nca_file = "{ca}"\n')
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "inventory", str(path), "--json"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["kind"] == "hyperv" and len(doc["machines"]) == 3
    assert fake.logins == [HV_USER] and hv_password not in proc.stdout + proc.stderr
