"""The remote-mover part of bench/copy_bench.py: copies through TLS and SSH on loopback,
the CPU each side spends, and the transports' own ceilings.

Both ends and ssh share this machine's cores, so wall time alone hides where the
time goes: each copy also records the CPU seconds of the source side (`ferry run`
and, for ssh://, the ssh client it starts and reaps) and of the target side (the
`ferry mover --listen` process; for ssh://, the sshd session and the `ferry mover
--stdio` under it, which the sshd listener reaps: its cutime+cstime).

Ceilings, on the bytes the TLS copy transferred:
* SSH: `ssh ... cat > /dev/null` through a second sshd on 127.0.0.1 whose forced
  command is that `cat`, with ssh's default cipher and with aes128-gcm;
* TLS: Python `ssl` sendall in 1 MiB writes to a Python `ssl` sink (recv_into),
  both TLS 1.3 with the mover's own certificate, one process each.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from benchjob import ROOT, T0, backup, ferry, job_file
from ceilings import MB, run_measured

from sample_repos import vmdata

TOKEN_ENV = "FERRY_BENCH_TOKEN"
TICK = os.sysconf("SC_CLK_TCK")
CIPHERS = {"default": None, "aes128-gcm": "aes128-gcm@openssh.com"}


def proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds of a process (all threads), or of its reaped children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    i = 13 if children else 11  # utime stime (14, 15) / cutime cstime (16, 17), 1-based
    return (int(fields[i]) + int(fields[i + 1])) / TICK


def wait_no_children(pid: int, timeout: float = 20.0) -> None:
    """Until the sshd listener has reaped its sessions (their CPU is then counted)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = "".join(p.read_text() for p in Path(f"/proc/{pid}/task").glob("*/children"))
        if not kids.strip():
            return
        time.sleep(0.02)


class Remotes:
    """A TLS mover (subprocess) and, where possible, an sshd with a forced command, both
    on 127.0.0.1, serving one repository each; `targets` maps a label to its [target]
    lines, `target_cpu(label)` the CPU seconds that target side has spent so far."""

    def __init__(self, work: Path):
        self.work = work
        self.targets: dict[str, str] = {}
        self.repos: dict[str, Path] = {}
        self.procs: list[subprocess.Popen] = []
        self.sshd = None
        self.sink_sshd = None
        tls_repo = work / "mover-tls"
        self.tls_repo = tls_repo
        fp = subprocess.run(ferry("mover", "init", "--repo", tls_repo), check=True, cwd=ROOT,
                            capture_output=True, text=True).stdout.strip()
        token = subprocess.run(ferry("mover", "token", "add", "--repo", tls_repo, "--job",
                                     "Cfull_tls"), check=True, cwd=ROOT, capture_output=True,
                               text=True).stdout.strip()
        os.environ[TOKEN_ENV] = token
        port = free_port()
        proc = subprocess.Popen(ferry("mover", "--listen", f"127.0.0.1:{port}", "--repo",
                                      tls_repo), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
        self.procs.append(proc)
        self.tls_pid = proc.pid
        proc.stdout.readline()  # "listening": the port is open
        self.targets["full_tls"] = (f'mover = "tls://127.0.0.1:{port}"\nfingerprint = "{fp}"\n'
                                    f'token_env = "{TOKEN_ENV}"\n')
        self.repos["full_tls"] = tls_repo
        sys.path.insert(0, str(ROOT / "tests"))
        from mover import sshd  # the tests' throw-away sshd

        self.ssh_skipped = sshd.why_not()
        if self.ssh_skipped is None:
            ssh_repo = work / "mover-ssh"
            # from ROOT, so the far mover runs this checkout (a snapshot's code, not
            # whatever the editable install points at)
            self.sshd = sshd.start(work / "sshd", f"cd {ROOT} && {sys.executable} -m "
                                   f"engine.cli mover --stdio --repo {ssh_repo}")
            self.ssh_env = f"ssh -F {self.sshd.config}"
            os.environ["FERRY_SSH"] = self.ssh_env
            self.targets["full_ssh"] = (f'mover = "ssh://{self.sshd.user}@127.0.0.1:'
                                        f'{self.sshd.port}{ssh_repo}"\n')
            self.repos["full_ssh"] = ssh_repo
            self.sink_sshd = sshd.start(work / "sshd-sink", "cat > /dev/null")

    def target_cpu(self, label: str) -> float:
        if label == "full_tls":
            return proc_cpu(self.tls_pid)
        assert self.sshd is not None
        wait_no_children(self.sshd.pid)
        return proc_cpu(self.sshd.pid, children=True)

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
            p.wait(timeout=30)
        for s in (self.sshd, self.sink_sshd):
            if s is not None:
                s.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def remote_copy(work: Path, src: Path, size: int, label: str, remotes: Remotes) -> dict:
    """One full copy through a remote mover: wall time, CPU of both sides."""
    job = job_file(work / f"{label}.toml", f"C{label}", src, work / f"local-{label}",
                   "auto", target=remotes.targets[label])
    cpu0 = remotes.target_cpu(label)
    m = run_measured(ferry("run", job, "--json", "--at", (T0 + timedelta(hours=1)).isoformat()))
    if m.returncode:
        raise SystemExit(m.stdout.decode() + m.stderr.decode())
    task = json.loads(m.stdout)["tasks"][0]
    out = {"s": m.wall_s, "rss": m.rss_mib, "mbps": size / m.wall_s / MB, "cpu": m.cpu_s,
           "target_cpu": remotes.target_cpu(label) - cpu0,
           "transferred": task["transferred"], "bottleneck": task["bottleneck"]}
    shutil.rmtree(remotes.repos[label] / f"C{label}")
    shutil.rmtree(work / f"local-{label}", ignore_errors=True)
    return out


def local_full(work: Path, src: Path, size: int, run: int) -> dict:
    """The in-process full (the remote copies' reference), its target folder removed."""
    dst = work / f"dr-full_auto-{run}"
    job = job_file(work / "full_auto.toml", "Cfull_auto", src, dst, "auto")
    m = run_measured(ferry("run", job, "--json", "--at", (T0 + timedelta(hours=1)).isoformat()))
    if m.returncode:
        raise SystemExit(m.stderr.decode())
    task = json.loads(m.stdout)["tasks"][0]
    shutil.rmtree(dst)
    return {"s": m.wall_s, "rss": m.rss_mib, "mbps": size / m.wall_s / MB, "cpu": m.cpu_s,
            "target_cpu": 0.0, "transferred": task["transferred"],
            "bottleneck": task["bottleneck"]}


def bench_remote(size: int, runs: int, work: Path, with_ceilings: bool) -> list[dict]:
    """`--only-remote`: per run the in-process full and each remote copy, in a rotating
    order (a drift in the machine's load does not favour one), then the transport
    ceilings on the bytes the TLS copy transferred."""
    work.mkdir(parents=True, exist_ok=True)
    disk = work / "disk.img"
    vmdata.write_disk(disk, size, "bench-copy", "bench-os")
    src = work / "src"
    backup(src, disk, T0)
    remotes = Remotes(work)
    out = []
    try:
        labels = ["full_auto", *remotes.targets]
        for r in range(runs):
            res = {}
            for label in labels[r % len(labels):] + labels[:r % len(labels)]:
                res[label] = (local_full(work, src, size, r) if label == "full_auto"
                              else remote_copy(work, src, size, label, remotes))
            if with_ceilings:
                res["ceilings"] = ceilings(remotes, res["full_tls"]["transferred"])
            out.append(res)
    finally:
        remotes.close()
    if remotes.ssh_skipped:
        print(f"ssh:// not measured: {remotes.ssh_skipped}")
    return out


_FEED = r"""
import os, sys
n, chunk = int(sys.argv[1]), os.urandom(1 << 20)
out = sys.stdout.buffer
while n > 0:
    out.write(chunk[:n]); n -= len(chunk)
"""


def ssh_ceiling(remotes: Remotes, nbytes: int, cipher: str | None) -> dict:
    """`feed | ssh ... cat > /dev/null` of `nbytes`: wall, client and server CPU."""
    s = remotes.sink_sshd
    assert s is not None
    cmd = ["ssh", "-F", str(s.config), "-p", str(s.port), "-o", "Compression=no",
           *(["-c", cipher] if cipher else []), f"{s.user}@127.0.0.1", "sink"]
    wait_no_children(s.pid)
    srv0 = proc_cpu(s.pid, children=True)
    t0 = time.perf_counter()
    feed = subprocess.Popen([sys.executable, "-c", _FEED, str(nbytes)], stdout=subprocess.PIPE)
    ssh = subprocess.Popen(cmd, stdin=feed.stdout)
    feed.stdout.close()
    _, st_feed, ru_feed = os.wait4(feed.pid, 0)
    _, st_ssh, ru_ssh = os.wait4(ssh.pid, 0)
    wall = time.perf_counter() - t0
    wait_no_children(s.pid)
    if st_ssh:
        raise SystemExit(f"ssh ceiling failed: {cmd}")
    return {"s": wall, "client_cpu": ru_ssh.ru_utime + ru_ssh.ru_stime,
            "feed_cpu": ru_feed.ru_utime + ru_feed.ru_stime,
            "server_cpu": proc_cpu(s.pid, children=True) - srv0}


_SINK = r"""
import socket, sys
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from engine.copy import moverauth
ctx = moverauth.server_context(Path(sys.argv[1]))
ls = socket.create_server(("127.0.0.1", 0))
print(ls.getsockname()[1], flush=True)
conn, _ = ls.accept()
s = ctx.wrap_socket(conn, server_side=True)
buf, total = bytearray(1 << 20), 0
while n := s.recv_into(buf):
    total += n
print(total, flush=True)
s.close()
"""

_SEND = r"""
import os, socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))))
n, chunk = int(sys.argv[2]), os.urandom(1 << 20)
while n > 0:
    s.sendall(chunk[:n]); n -= len(chunk)
s.shutdown(socket.SHUT_WR)  # then wait for the sink: closing with its session tickets
try:                        # unread would reset the connection and lose data in flight
    while s.recv(1 << 16):
        pass
except (ssl.SSLError, OSError):
    pass
s.close()
"""


def tls_ceiling(remotes: Remotes, nbytes: int) -> dict:
    """Python ssl to Python ssl on loopback, `nbytes` in 1 MiB sendall calls."""
    sink = subprocess.Popen([sys.executable, "-c", _SINK, str(remotes.tls_repo), str(ROOT)],
                            stdout=subprocess.PIPE, text=True)
    port = int(sink.stdout.readline())
    t0 = time.perf_counter()
    send = subprocess.Popen([sys.executable, "-c", _SEND, str(port), str(nbytes)])
    _, st, ru_send = os.wait4(send.pid, 0)
    got = int(sink.stdout.readline())
    wall = time.perf_counter() - t0
    _, _, ru_sink = os.wait4(sink.pid, 0)
    if st or got != nbytes:
        raise SystemExit(f"TLS ceiling failed: sent {nbytes}, got {got}")
    return {"s": wall, "client_cpu": ru_send.ru_utime + ru_send.ru_stime,
            "server_cpu": ru_sink.ru_utime + ru_sink.ru_stime}


def ceilings(remotes: Remotes, nbytes: int) -> dict:
    out = {"tls": tls_ceiling(remotes, nbytes)}
    if remotes.sink_sshd is not None:
        for name, cipher in CIPHERS.items():
            out[f"ssh_{name}"] = ssh_ceiling(remotes, nbytes, cipher)
    return out


GIB = 1 << 30


def report(runs: list[dict], size: int, med, mb: float) -> None:
    """The remote lines: each transport's share of the in-process full (same runs), the
    CPU per GiB of each side, and the ceilings next to them."""
    fa = med([r["full_auto"]["s"] for r in runs])
    gib = size / GIB
    print(f"\nremote movers on loopback, {len(runs)} runs (median); in-process full "
          f"{mb / fa:,.0f} MB/s {fa:.2f} s, CPU {med([r['full_auto']['cpu'] for r in runs]) / gib:.2f}"
          f" s/GiB")
    for label, what in (("full_tls", "TLS mover (tls://, pinned cert, token)"),
                        ("full_ssh", "SSH mover (ssh://, forced command)")):
        if label not in runs[0]:
            continue
        t = med([r[label]["s"] for r in runs])
        shares = ", ".join(f"{r['full_auto']['s'] / r[label]['s']:.0%}" for r in runs)
        src = med([r[label]["cpu"] for r in runs]) / gib
        dst = med([r[label]["target_cpu"] for r in runs]) / gib
        print(f"  full through a {what}: {mb / t:8,.0f} MB/s  {t:.2f} s  = {fa / t:.0%} of "
              f"the in-process full (goal >= 70 %; per run {shares}); bottleneck "
              f"{runs[0][label]['bottleneck']}; CPU s/GiB source {src:.2f} + target {dst:.2f}")
    ceil = [r["ceilings"] for r in runs if "ceilings" in r]
    if not ceil:
        return
    nbytes = runs[0]["full_tls"]["transferred"]
    print(f"  transport ceilings, the {nbytes / 2**20:,.0f} MiB the copy transferred "
          f"(as logical MB/s of the {size / 2**30:.1f} GiB image; share of the in-process full):")
    for name, what in (("tls", "Python ssl -> ssl sink"),
                       ("ssh_default", "ssh | cat >/dev/null, default cipher"),
                       ("ssh_aes128-gcm", "ssh | cat >/dev/null, aes128-gcm")):
        if name not in ceil[0]:
            continue
        s = med([c[name]["s"] for c in ceil])
        cc = med([c[name]["client_cpu"] for c in ceil]) / gib
        sc = med([c[name]["server_cpu"] for c in ceil]) / gib
        print(f"    {what:38s} {mb / s:8,.0f} MB/s {s:.2f} s = {fa / s:.0%}; CPU s/GiB "
              f"client {cc:.2f} + server {sc:.2f}")
