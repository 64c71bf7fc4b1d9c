"""A throw-away OpenSSH server on 127.0.0.1 (Debian openssh-server) for the SSH transport.

Its own host key, client key, authorized_keys with a forced command, known_hosts
and client config, all in one temp folder; stopped by its pid file. sshd wants
root here (privilege separation) and the absolute path /usr/sbin/sshd. Sessions get
HOME set to an empty folder of its own, so the login shell reads no start files of
this machine's account (root's pyenv init here cost 0.17 s of every session, also in
the bench's copies and its `ssh | cat` ceiling: a measure of this box, not of Ferry).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"


def why_not() -> str | None:
    """The reason sshd cannot run here, or None."""
    if not Path(SSHD).exists() or shutil.which("ssh") is None:
        return "openssh-server/openssh-client not installed (.ci/run installs them)"
    if os.geteuid() != 0:
        return "sshd needs root for its privilege separation here"
    return None


@dataclass
class Sshd:
    dir: Path
    port: int
    user: str
    config: Path  # client config: key, known_hosts, BatchMode, StrictHostKeyChecking
    pid: int

    def stop(self) -> None:
        try:
            cmdline = Path(f"/proc/{self.pid}/cmdline").read_bytes()
            if str(self.dir).encode() in cmdline:  # only our listener
                os.kill(self.pid, signal.SIGTERM)
        except OSError:
            pass


def start(folder: Path, forced: str) -> Sshd:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "home").mkdir(exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    user = getpass.getuser()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f",
                        str(folder / name)], check=True, timeout=30)
    pub = (folder / "client.pub").read_text().strip()
    auth = folder / "authorized_keys"
    auth.write_text(f'command="{forced}",restrict {pub}\n')
    auth.chmod(0o600)
    (folder / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {folder}/host
AuthorizedKeysFile {auth}
PidFile {folder}/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowUsers {user}
MaxStartups 20:30:60
LogLevel VERBOSE
SetEnv HOME={folder}/home
""")
    host_key = " ".join((folder / "host.pub").read_text().split()[:2])
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key}\n")
    config = folder / "ssh_config"
    config.write_text(f"""Host *
    IdentityFile {folder}/client
    IdentitiesOnly yes
    UserKnownHostsFile {folder}/known_hosts
    StrictHostKeyChecking yes
    BatchMode yes
    LogLevel ERROR
""")
    subprocess.run([SSHD, "-t", "-f", str(folder / "sshd_config")], check=True, timeout=30)
    subprocess.run([SSHD, "-f", str(folder / "sshd_config"), "-E", str(folder / "sshd.log")],
                   check=True, timeout=30)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"sshd did not listen: {(folder / 'sshd.log').read_text()}") from None
            time.sleep(0.05)
    pid = int((folder / "sshd.pid").read_text())
    return Sshd(folder, port, user, config, pid)
