"""Real endpoints for the inventory tests.

vSphere: govmomi's simulator (tools/vcsim/main.go), built once and cached by
the hash of its source, then started per model on a free 127.0.0.1 port.
Hyper-V: a local WS-Man server (wsman_server.py) answering the real pywinrm
client; only the Windows side is simulated.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.inventory.base import InventorySettings

from .wsman_server import FakeHyperV, FakeVm, make_tls

REPO = Path(__file__).resolve().parents[2]
VCSIM_SRC = REPO / "tools" / "vcsim"
GOPATH = "/usr/share/gocode"  # Debian's golang-github-vmware-govmomi-dev lives here

VC_USER = "ferry@vsphere.local"
VC_PASSWORD = "vc-Pa55word-0f-the-lab"  # never expected in any message or document
VC_PASSWORD_ENV = "FERRY_TEST_VSPHERE_PASSWORD"
HV_USER = "ferry"
HV_PASSWORD = "hv-Pa55word-0f-the-lab"
HV_PASSWORD_ENV = "FERRY_TEST_HYPERV_PASSWORD"


def _cache_root() -> Path:
    configured = os.environ.get("FERRY_VCSIM_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ferry-vcsim"


@pytest.fixture(scope="session")
def vcsim_binary() -> Path:
    """Build tools/vcsim once per source version (~16 s cold, then cached)."""
    digest = hashlib.sha256()
    for path in sorted(VCSIM_SRC.glob("*.go")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    target_dir = _cache_root() / digest.hexdigest()[:16]
    binary = target_dir / "vcsim"
    if binary.exists():
        return binary
    go = shutil.which("go")
    if go is None:
        pytest.fail("`go` not found: apt-get install golang-go golang-github-vmware-govmomi-dev")
    target_dir.mkdir(parents=True, exist_ok=True)
    with open(target_dir / ".lock", "w") as lock:  # parallel workers build once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            tmp = target_dir / f"vcsim.{os.getpid()}.tmp"
            env = {**os.environ, "GOPATH": GOPATH, "GO111MODULE": "off", "GOPROXY": "off"}
            env.setdefault("GOCACHE", str(_cache_root() / "go-build"))
            build = subprocess.run(
                [go, "build", "-o", str(tmp), "."],
                cwd=VCSIM_SRC,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if build.returncode != 0:
                pytest.fail(f"building tools/vcsim failed:\n{build.stderr[-3000:]}")
            os.replace(tmp, binary)
    return binary


@dataclass
class Vcsim:
    """One running simulator process."""

    proc: subprocess.Popen[str]
    url: str
    port: int
    tls: bool
    log: Path

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: the program removes its model's temp folders
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log.unlink(missing_ok=True)


def start_vcsim(binary: Path, *args: str, tls: bool = True, ready_timeout: float = 30.0) -> Vcsim:
    """Start the simulator on a free port and wait for its READY line."""
    log = Path(tempfile.mkstemp(prefix="vcsim-", suffix=".log")[1])
    env = {**os.environ, "VCSIM_PASSWORD": VC_PASSWORD}
    cmd = [
        str(binary),
        "-listen",
        "127.0.0.1:0",
        f"-tls={'true' if tls else 'false'}",
        "-username",
        VC_USER,
        *args,
    ]
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env=env)
    assert proc.stdout is not None
    deadline = time.monotonic() + ready_timeout
    line = ""
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 0.1)
        if ready:
            line = proc.stdout.readline()
            break
    if not line.startswith("READY "):
        proc.kill()
        proc.wait()
        text = log.read_text()[-2000:]
        log.unlink(missing_ok=True)
        pytest.fail(f"vcsim did not start ({' '.join(args)}): {text}")
    url = line.split()[1]
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    return Vcsim(proc=proc, url=url, port=port, tls=tls, log=log)


@pytest.fixture(scope="session")
def vcsim_factory(vcsim_binary: Path) -> Iterator:
    """start(*flags, tls=True) -> Vcsim; every simulator started is stopped at the end."""
    started: list[Vcsim] = []

    def start(*args: str, tls: bool = True) -> Vcsim:
        sim = start_vcsim(vcsim_binary, *args, tls=tls)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


@pytest.fixture(scope="session")
def vpx(vcsim_factory) -> Vcsim:
    """The default vCenter model (4 VMs, one of them powered off), over TLS."""
    return vcsim_factory("-mode", "vpx", "-poweroff", "DC0_H0_VM1")


@pytest.fixture(scope="session")
def esx(vcsim_factory) -> Vcsim:
    """A standalone ESXi host, over plain http."""
    return vcsim_factory("-mode", "esx", tls=False)


@pytest.fixture
def vc_password(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(VC_PASSWORD_ENV, VC_PASSWORD)
    return VC_PASSWORD


@pytest.fixture
def hv_password(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(HV_PASSWORD_ENV, HV_PASSWORD)
    return HV_PASSWORD


def sample_vms() -> list[FakeVm]:
    return [
        FakeVm(
            "web01",
            "6f1c1ce2-6f3b-4d5e-9a41-0c2a3f6b7d10",
            "Running",
            "HV01",
            [
                (r"D:\Hyper-V\web01\web01.vhdx", 40 * 2**30),
                (r"D:\Hyper-V\web01\web01-data.vhdx", 100 * 2**30),
            ],
        ),
        FakeVm(
            "db01",
            "0b3e8d4a-1f27-4c39-8e55-2a9d6c1e4f02",
            "Off",
            "HV01",
            [(r"E:\VMs\db01.vhdx", 60 * 2**30)],
        ),
        FakeVm("build", "a7d2e9f0-3c4b-4a1d-b6e8-9f0a1b2c3d4e", "Saved", "HV02", []),
    ]


@pytest.fixture
def wsman() -> Iterator[FakeHyperV]:
    """A fresh fake Hyper-V host on a free port, with three VMs."""
    fake = FakeHyperV(sample_vms(), user=HV_USER, password=HV_PASSWORD).start()
    yield fake
    fake.stop()


@pytest.fixture
def wsman_factory(tmp_path: Path) -> Iterator:
    """start(auth="ntlm"|"basic", tls=False) -> (FakeHyperV, CA file or None); a
    Hyper-V host over https has a fresh self-signed certificate for 127.0.0.1."""
    started: list[FakeHyperV] = []

    def start(auth: str = "ntlm", tls: bool = False) -> tuple[FakeHyperV, Path | None]:
        context, der, ca = make_tls(tmp_path) if tls else (None, b"", None)
        fake = FakeHyperV(sample_vms(), user=HV_USER, password=HV_PASSWORD, auth=auth,
                          tls=context, cert_der=der).start()
        started.append(fake)
        return fake, ca

    yield start
    for fake in reversed(started):
        fake.stop()


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def vc_settings(vc_password: str):
    """settings(sim, **overrides) -> InventorySettings for a simulator, password in the env."""

    def make(sim: Vcsim, **overrides) -> InventorySettings:
        values = dict(
            kind="vsphere",
            host="127.0.0.1",
            port=sim.port,
            verify_tls=False,
            user=VC_USER,
            password_env=VC_PASSWORD_ENV,
            timeout=5.0,
            protocol="https" if sim.tls else "http",
        )
        values.update(overrides)
        return InventorySettings(**values)

    return make


@pytest.fixture
def hv_settings(hv_password: str):
    """settings(fake, **overrides) -> InventorySettings for the fake Hyper-V host."""

    def make(fake: FakeHyperV, **overrides) -> InventorySettings:
        values = dict(
            kind="hyperv",
            host="127.0.0.1",
            port=fake.port,
            user=HV_USER,
            password_env=HV_PASSWORD_ENV,
            timeout=5.0,
        )
        values.update(overrides)
        return InventorySettings(**values)

    return make
