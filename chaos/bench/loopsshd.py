"""A node's sshd on loopback for the footprint benchmark: the fencing target of its
peer, so that the idle daemons probe a real ssh fencing path (fence readiness)
and the failover fences over ssh, as in production.

Like the lab's (chaos/lab/nodes.py): its own host key, only the fence key, whose
forced command is `failoverd -c NODE.yaml fence-self --from-ssh`.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from chaos.lab.nodes import PATH, SSHD_CONFIG, installed, keygen
from tests.support.zookeeper import free_port


@dataclass
class LoopSshd:
    dir: Path
    config_path: Path  # the failoverd config of the node this sshd fences
    fence_pub: str
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start it; returns its known_hosts line."""
        self.port = self.port or free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        host_pub = keygen(self.dir / "host_ed25519", "footprint@loopback")
        conf = SSHD_CONFIG.format(dir=self.dir).replace("Port 22\nListenAddress 0.0.0.0", "")
        conf = f"Port {self.port}\nListenAddress 127.0.0.1\n" + conf
        (self.dir / "sshd_config").write_text(conf)
        forced = (
            f"/usr/bin/env PATH={PATH} {installed('failoverd')} "
            f"-c {self.config_path} fence-self --from-ssh"
        )
        (self.dir / "authorized_keys").write_text(f'command="{forced}",restrict {self.fence_pub}\n')
        with open(self.dir / "sshd.log", "ab") as out:
            self.proc = subprocess.Popen(
                ["/usr/sbin/sshd", "-D", "-e", "-f", str(self.dir / "sshd_config")],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 5
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"sshd did not start; see {self.dir}/sshd.log") from None
                time.sleep(0.02)
        kind, key = host_pub.split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {key}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
