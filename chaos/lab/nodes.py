"""One mail node of the lab: its failoverd config, sshd, keys and processes.

The config: the VIP and the lab's SMTP service (chaos/services/toy_smtp.py) as
resources, ssh then the lab's power switch (`python -m chaos power-off`) as
fencing; the real mail node's (`--mail postfix`) is chaos/lab/postfix_node.py. The
node's sshd (port 22 in its namespace) only lets the per-run fence key run the
forced command `failoverd -c CFG fence-self --from-ssh` (through `ssh/fence-self.sh`,
which also keeps fence-self's log lines in `<node>/fence-self.log`). Processes are started
with `ip netns exec`, their output goes to the run folder.

The real mail node is one machine = one network namespace + one mount namespace:
a holder process (`sleep`) is started with `ip netns exec` and every process of
the node (sshd, failoverd, and so every resource and fence-self) joins both of
its namespaces with nsenter. Otherwise ssh fence-self would run in sshd's own
mount namespace, find the store "not mounted" there, report success, and leave
Postfix running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from chaos.lab import netns
from chaos.lab.network import Lab
from chaos.lab.postfix_node import mail_config
from chaos.layout import MAIL_HOSTS, PREFIXLEN, VIP, ZK_HOSTS, address
from chaos.services.toy_smtp import Paths
from tests.support.access import state_dir_for, write_credential, zk_auth
from tests.support.checkout import REPO

SESSION_TIMEOUT = "2s"
PATH = f"{Path(sys.executable).parent}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SSHD_CONFIG = """Port 22
ListenAddress 0.0.0.0
HostKey {dir}/host_ed25519
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
PermitRootLogin forced-commands-only
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
MaxStartups 50
LogLevel VERBOSE
SetEnv SHLVL=1
"""
# sshd's forced command for the fence key. fence-self's log lines (its stderr) go back
# to the fencer as always, and are also kept on the fenced node: the benchmark reads
# how long each stop took there (chaos/bench/phases.py). The wait for tee keeps its
# last bytes ahead of the exit status on the ssh channel.
FENCE_SELF_SH = """#!/bin/bash
{fence_self} 2> >(tee -a {log} >&2)
rc=$?
wait $!
exit $rc
"""
FENCE_LOG = "fence-self.log"  # chaos/bench/phases.py reads it
# SetEnv SHLVL=1: the lab fences as root, whose login shell (bash) runs ~/.bashrc for
# a command sent over ssh, and root's .bashrc on this machine runs `pyenv init`
# (~90 ms of CPU per login, measured). A production fence user has no such rc file;
# bash skips it when SHLVL says it is not the first shell.


def installed(script: str) -> str:
    """The absolute path of an installed console script (sshd's PATH does not know pyenv)."""
    here = Path(sys.executable).parent / script
    found = str(here) if here.exists() else shutil.which(script)
    if not found:
        raise RuntimeError(f"{script} is not installed: pip install -e .")
    return found


def keygen(path: Path, comment: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return Path(f"{path}.pub").read_text().strip()


@dataclass
class MailNode:
    lab: Lab
    name: str
    priority: int
    fenced_store: bool = False
    daemon: subprocess.Popen[bytes] | None = None
    sshd: subprocess.Popen[bytes] | None = None
    mail: str | None = None  # "postfix": the real mail node (chaos/services/postfix.py)
    holder: subprocess.Popen[bytes] | None = None  # its mount namespace (mail only)

    @property
    def dir(self) -> Path:
        return self.lab.run_dir / self.name

    @property
    def config_path(self) -> Path:
        return self.dir / "failoverd.yaml"

    @property
    def ns(self) -> str:
        return self.lab.ns(self.name)

    @property
    def unhealthy_flag(self) -> Path:
        """While it exists the node fails its health check (scenario 10's fault), and
        the toy service answers 421: one file, named by the service's Paths."""
        return Paths(self.lab.run_dir, self.name).unhealthy

    def service_argv(self, action: str) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "chaos.services.toy_smtp",
            action,
            "--lab",
            str(self.lab.run_dir),
        ]
        argv += ["--node", self.name]
        return argv + (["--fenced-store"] if self.fenced_store and action == "start" else [])

    def config(self) -> dict[str, Any]:
        run = self.lab.run_dir
        keys = run / "keys"
        cfg: dict[str, Any] = {
            "cluster": "lab",
            "node": {
                "name": self.name,
                "address": address(self.name),
                "priority": self.priority,
                "state_dir": str(state_dir_for(self.lab.run_dir, self.name)),
            },
            "peers": {p: {"address": address(p)} for p in MAIL_HOSTS if p != self.name},
            "zookeeper": {
                "hosts": ",".join(f"{address(z)}:2181" for z in ZK_HOSTS),
                "session_timeout": SESSION_TIMEOUT,
                "root": "/failoverd",
                # The default, closed setup: one digest credential for the nodes.
                "auth": zk_auth(keys / "zk.secret"),
            },
            "health": {
                "interval": "1s",  # x fall 3 = 3s > T: a brief stall is not a failover
                "rise": 2,
                "fall": 3,
                "checks": [
                    # Could this node serve? The store is there and writable and the
                    # fault flag is absent: judged on every node, inside the daemon
                    # (a forked Python check every second, ~33 ms of CPU each, kept
                    # scenario 29's 5 % quota throttled past the lease).
                    {"type": "path", "path": str(run / "store"), "writable": True},
                    {"type": "path", "path": str(self.unhealthy_flag), "absent": True},
                    # The daemon's own SMTP probe, judged only while active.
                    {"type": "smtp", "host": "127.0.0.1", "port": 25, "timeout": "1500ms"},
                ],
            },
            "resources": [
                {"type": "vip", "address": f"{VIP}/{PREFIXLEN}", "interface": "eth0"},
                {
                    "type": "command",
                    "start": self.service_argv("start"),
                    "stop": self.service_argv("stop"),
                    "status": self.service_argv("status"),
                    "timeout": "8s",
                },
            ],
            "fencing": [
                {
                    "type": "ssh",
                    "user": "root",
                    "key_file": str(keys / "fence_key"),
                    "known_hosts": str(keys / "known_hosts"),
                    "port": 22,
                    "timeout": "3s",
                    "verify_ports": [25],
                },
                {
                    "type": "command",
                    "argv": [
                        sys.executable,
                        "-m",
                        "chaos",
                        "power-off",
                        "--lab",
                        str(run),
                        "{node}",
                    ],
                    "check_argv": [
                        sys.executable,
                        "-m",
                        "chaos",
                        "power-status",
                        "--lab",
                        str(run),
                        "{node}",
                    ],
                    "timeout": "10s",
                },
            ],
            "switchover": {"timeout": "10s"},
            # A short back-off so that a takeover refused for want of fencing is
            # retried soon after fencing works again (scenario 14's heal).
            "flap": {"max_failovers": 3, "window": "10m", "backoff": "5s"},
            "log": {"format": "json", "level": "info"},
        }
        if self.mail:
            cfg = mail_config(cfg, run, self.name, self.unhealthy_flag, self.mail)
        return cfg

    def prepare(self, fence_pub: str) -> str:
        """Write config, sshd config, host key and authorized_keys; return the host key."""
        ssh = self.dir / "ssh"
        secret = self.lab.run_dir / "keys" / "zk.secret"
        if not secret.exists():  # one credential shared by the lab's nodes
            write_credential(secret)
        host_pub = keygen(ssh / "host_ed25519", f"{self.name}@lab")
        (ssh / "sshd_config").write_text(SSHD_CONFIG.format(dir=ssh))
        fence_self = (
            f"/usr/bin/env PATH={PATH} PYTHONPATH={REPO} PYTHONUNBUFFERED=1 "
            f"{installed('failoverd')} "
            f"-c {self.config_path} fence-self --from-ssh"
        )
        forced = ssh / "fence-self.sh"
        forced.write_text(FENCE_SELF_SH.format(fence_self=fence_self, log=self.dir / FENCE_LOG))
        forced.chmod(0o755)
        (ssh / "authorized_keys").write_text(f'command="{forced}",restrict {fence_pub}\n')
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        return host_pub

    def _spawn(self, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
        env = {**os.environ, "PATH": PATH, "PYTHONUNBUFFERED": "1"}
        if self.mail:
            wrapped = self.machine_argv(argv)  # one mount namespace for the whole node
        else:
            wrapped = netns.exec_argv(self.ns, argv)
        with open(log, "ab") as out:
            return subprocess.Popen(
                wrapped,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )

    def machine_argv(self, argv: list[str]) -> list[str]:
        """argv run inside the node's machine (its holder's network and mount namespaces)."""
        if self.holder is None or self.holder.poll() is not None:
            self.holder = subprocess.Popen(
                netns.exec_argv(self.ns, ["sleep", "infinity"]),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            _wait_entered(self.holder, self.ns)
        return ["nsenter", "-t", str(self.holder.pid), "-m", "-n", "--", *argv]

    def start_sshd(self) -> None:
        ssh = self.dir / "ssh"
        self.sshd = self._spawn(
            ["/usr/sbin/sshd", "-D", "-e", "-f", str(ssh / "sshd_config")], self.dir / "sshd.log"
        )

    def start_daemon(self) -> None:
        argv = [installed("failoverd"), "-c", str(self.config_path)]
        self.daemon = self._spawn(argv, self.dir / "failoverd.log")
        self.lab.record("daemon_started", node=self.name, pid=self.daemon.pid)

    def daemon_alive(self) -> bool:
        return self.daemon is not None and self.daemon.poll() is None

    def signal_daemon(self, sig: int) -> None:
        if self.daemon_alive():
            assert self.daemon is not None
            os.kill(self.daemon.pid, sig)
            self.lab.record("daemon_signal", node=self.name, signal=signal.Signals(sig).name)

    def wait_daemon(self, timeout: float) -> bool:
        if self.daemon is None:
            return True
        try:
            self.daemon.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def ctl(self, *args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        argv = netns.exec_argv(self.ns, [installed("failoverctl"), "-c", str(self.config_path)])
        return subprocess.run(
            [*argv, *args], capture_output=True, text=True, timeout=timeout, env={**os.environ}
        )

    def reap(self) -> None:
        for p in (self.daemon, self.sshd, self.holder):
            if p is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=2)


def _wait_entered(holder: subprocess.Popen[bytes], ns: str, timeout: float = 15.0) -> None:
    """Until `ip netns exec` has exec'd sleep (then its namespaces are the node's).

    A holder that dies meanwhile was killed by the power switch (the runner's
    repair can race a power-fence): then the node is off, and what is started in
    it fails as it would on a machine without power — not a lab error.
    """
    want = os.stat(f"/run/netns/{ns}").st_ino
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if holder.poll() is not None:
            return
        with contextlib.suppress(OSError):
            if os.stat(f"/proc/{holder.pid}/ns/net").st_ino == want and "sleep" in Path(
                f"/proc/{holder.pid}/cmdline"
            ).read_text(errors="replace"):
                return
        time.sleep(0.01)
    raise RuntimeError(f"mount-namespace holder of {ns} did not start in {timeout:g}s")
