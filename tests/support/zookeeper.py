"""Start real ZooKeeper servers (Debian's package) for tests, the demo and the lab.

The Debian classpath has no logging binding, so the server is started directly with
log4j on the classpath. Each server gets its own data directory
and log file; `log_tail()` is what fixtures print when a test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

CLASSPATH = ":".join(
    [
        "/usr/share/java/zookeeper.jar",
        "/usr/share/java/slf4j-log4j12.jar",
        "/usr/share/java/log4j-1.2.jar",
    ]
)
JVM_FLAGS = ["-Xms16m", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]
LOG4J = """log4j.rootLogger=INFO, FILE
log4j.appender.FILE=org.apache.log4j.FileAppender
log4j.appender.FILE.File={log}
log4j.appender.FILE.layout=org.apache.log4j.PatternLayout
log4j.appender.FILE.layout.ConversionPattern=%d{{ISO8601}} %-5p [%t] %c{{1}}: %m%n
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def four_letter(
    host: str, port: int, word: str = "srvr", timeout: float = 1.0, netns: str | None = None
) -> str:
    """Send a ZooKeeper four-letter word; '' when the server does not answer.

    `netns` names a network namespace (the chaos lab) to connect from; only the
    calling thread switches, and only while the socket is created and connected.
    """
    try:
        if netns is None:
            s = socket.create_connection((host, port), timeout=timeout)
        else:
            from chaos.lab.netns import inside

            with inside(netns):
                s = socket.create_connection((host, port), timeout=timeout)
        with s:
            s.sendall(word.encode())
            chunks = []
            while data := s.recv(4096):
                chunks.append(data)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


def server_mode(host: str, port: int, netns: str | None = None) -> str | None:
    """'leader', 'follower', 'standalone', or None when not serving."""
    for line in four_letter(host, port, netns=netns).splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


@dataclass
class ZooKeeperServer:
    """One server; `peers` (id -> "host:quorum:election") makes it an ensemble member."""

    workdir: Path
    client_port: int
    client_host: str = "127.0.0.1"
    server_id: int = 1
    peers: dict[int, str] = field(default_factory=dict)
    tick_ms: int = 250
    # Leader-loss detection is sync_limit x tick_ms (1.25 s). A follower counts
    # from the leader's last ping, sent every tick/2, so a leader stall of P looks
    # like P + up to tick/2 to it. The lab's T is 2 s and a stall under T/2 must
    # never fail over (scenario 20 pauses the leader 0.9 s): 4 ticks (1.0 s) gave
    # 0.9 + 0.125 > 1.0, an election, and the active's lease ran out mid-election
    # (scenario 20 failed, 2026-11-28). 5 ticks leave 0.225 s of slack.
    # tests/chaos/unit/test_zookeeper_timing.py checks the rule here and in zoo.cfg.
    sync_limit: int = 5
    min_session_ms: int = 1000
    max_session_ms: int = 30000
    # Prefix for the java command, e.g. ["ip", "netns", "exec", "zk1"] in the lab.
    wrap: Sequence[str] = ()
    proc: subprocess.Popen[bytes] | None = None
    # The network namespace client_host lives in (the lab), for mode() probes.
    netns: str | None = None
    # Extra zoo.cfg lines (the lab bounds election and sync timing with them).
    extra_config: Sequence[str] = ()
    # A server-side JAAS file's text (the `Server` section of SASL DIGEST-MD5, as
    # deploy/zookeeper/README.md sets up): written next to zoo.cfg and passed as
    # -Djava.security.auth.login.config.
    jaas: str | None = None

    @property
    def log_path(self) -> Path:
        return self.workdir / "zookeeper.log"

    @property
    def address(self) -> str:
        return f"{self.client_host}:{self.client_port}"

    def _write_config(self) -> Path:
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        lines = [
            f"tickTime={self.tick_ms}",
            "initLimit=10",
            f"syncLimit={self.sync_limit}",
            f"dataDir={data}",
            f"clientPort={self.client_port}",
            f"clientPortAddress={self.client_host}",
            f"minSessionTimeout={self.min_session_ms}",
            f"maxSessionTimeout={self.max_session_ms}",
            "admin.enableServer=false",
            "4lw.commands.whitelist=*",
            "maxClientCnxns=0",
            # Snapshots and logs of a test server are throw-away.
            "forceSync=no",
            # See deploy/zookeeper/zoo.cfg: the election's notification back-off
            # otherwise grows to 60 s over repeated partitions, and the lab's
            # minority case waited up to 25 s for two live servers to elect.
            "fastleader.maxNotificationInterval=1000",
            *self.extra_config,
        ]
        if self.peers:
            lines.append("quorumListenOnAllIPs=true")
            lines += [f"server.{i}={spec}" for i, spec in sorted(self.peers.items())]
            (data / "myid").write_text(f"{self.server_id}\n")
        cfg = self.workdir / "zoo.cfg"
        cfg.write_text("\n".join(lines) + "\n")
        (self.workdir / "log4j.properties").write_text(LOG4J.format(log=self.log_path))
        return cfg

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self._write_config()
        cmd = [
            *self.wrap,
            "java",
            *JVM_FLAGS,
            "-cp",
            f"{CLASSPATH}:{self.workdir}",
            f"-Dlog4j.configuration=file:{self.workdir / 'log4j.properties'}",
            f"-Dzookeeper.log.dir={self.workdir}",
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            str(cfg),
        ]
        if self.jaas is not None:
            jaas = self.workdir / "jaas.conf"
            jaas.write_text(self.jaas)
            cmd[len(self.wrap) + 1 : len(self.wrap) + 1] = [
                f"-Djava.security.auth.login.config={jaas}"
            ]
        out = open(self.workdir / "stdout.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()

    def wait_serving(self, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"zookeeper exited early:\n{self.log_tail()}")
            mode = server_mode(self.client_host, self.client_port, self.netns)
            if mode:
                return mode
            time.sleep(0.05)
        raise TimeoutError(
            f"zookeeper at {self.address} not serving after {timeout}s:\n{self.log_tail()}"
        )

    def mode(self) -> str | None:
        return server_mode(self.client_host, self.client_port, self.netns)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)

    def pause(self) -> None:
        self.signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    kill = stop

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no zookeeper log)"
        return "\n".join(text[-lines:])


@dataclass
class Ensemble:
    servers: list[ZooKeeperServer]

    @classmethod
    def on_loopback(cls, workdir: Path, size: int = 3, tick_ms: int = 250) -> Ensemble:
        ports = [(free_port(), free_port(), free_port()) for _ in range(size)]
        peers = {i + 1: f"127.0.0.1:{q}:{e}" for i, (_, q, e) in enumerate(ports)}
        servers = [
            ZooKeeperServer(
                workdir / f"zk{i + 1}", c, server_id=i + 1, peers=peers, tick_ms=tick_ms
            )
            for i, (c, _, _) in enumerate(ports)
        ]
        return cls(servers)

    @property
    def hosts(self) -> str:
        return ",".join(s.address for s in self.servers)

    def start(self, timeout: float = 30.0) -> None:
        for s in self.servers:
            s.start()
        for s in self.servers:
            s.wait_serving(timeout)

    def leader(self) -> ZooKeeperServer | None:
        return next((s for s in self.servers if s.mode() == "leader"), None)

    def stop(self) -> None:
        for s in self.servers:
            s.stop()

    def log_tail(self) -> str:
        return "\n".join(f"--- {s.address}\n{s.log_tail(30)}" for s in self.servers)
