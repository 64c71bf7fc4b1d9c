"""The project's throw-away Ceph cluster: one monitor, one memstore OSD, one RADOS gateway.

Started by `ceph_single_node.sh` (from ../shared/research/ceph, with its pitfalls fixed:
auth none needs `ms_mon_client_mode = crc` for radosgw, `paxos_propose_interval = 0.01`
or start-up takes 11 s, SIGKILL teardown). Everything lives in one temp folder and
listens on 127.0.0.1 only. The daemons outlive the script, so the test process makes
itself a child subreaper first: they are re-parented to it and reaped at teardown
instead of lingering as zombies. Every wait is bounded.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

SCRIPT = Path(__file__).with_name("ceph_single_node.sh")
BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool")
PR_SET_CHILD_SUBREAPER = 36
UP_TIMEOUT = 180.0
DOWN_TIMEOUT = 60.0


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]


def become_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _reap(pids: list[int], timeout: float) -> None:
    end = time.monotonic() + timeout
    for pid in pids:
        while True:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break  # not our child (or already reaped)
            if done or time.monotonic() > end:
                break
            time.sleep(0.02)


def up(base: Path | None = None) -> dict[str, str]:
    """Start a cluster (about 2 s); returns CEPH_LAB_DIR, S3_ENDPOINT, S3_ACCESS_KEY, ..."""
    env = dict(os.environ, WITH_MGR="0")  # RGW does not need the mgr: -300 MiB, -4 CPU-s
    args = [str(SCRIPT), "up"] + ([str(base)] if base else [])
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=UP_TIMEOUT)
    if p.returncode != 0:
        _reap([int(x) for x in re.findall(r"started \S+ pid (\d+)", p.stderr)], 10)
        raise RuntimeError(f"ceph bring-up failed (exit {p.returncode}):\n{p.stderr[-4000:]}")
    info = dict(line.split("=", 1) for line in p.stdout.splitlines() if "=" in line)
    run = Path(info["CEPH_LAB_DIR"]) / "run"
    info["PIDS"] = " ".join(f.read_text().strip() for f in sorted(run.glob("*.pid")))
    return info


def down(info: dict[str, str]) -> None:
    """SIGKILL the daemons (memstore would write everything out on SIGTERM), reap, rm -rf."""
    pids = [int(x) for x in info.get("PIDS", "").split()]
    subprocess.run([str(SCRIPT), "down", info["CEPH_LAB_DIR"]], check=False,
                   timeout=DOWN_TIMEOUT, capture_output=True)
    _reap(pids, 10)
