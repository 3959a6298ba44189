"""The lab cluster on top of the network: ZooKeeper ensemble, mail nodes, client.

Each mail node (chaos/lab/nodes.py) runs, inside its namespace, a private sshd (the
fencing target) and `failoverd -c RUN/<node>/failoverd.yaml`. Every process
writes its log into the run folder; every process lives in a lab namespace, so
killing a namespace's processes (power-off, teardown, cleanup) leaves nothing.
Who serves is read from the services' own records, never from a daemon.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from chaos.lab import netns, store_image
from chaos.lab.network import Lab
from chaos.lab.nodes import MailNode, keygen
from chaos.layout import MAIL_HOSTS, VIP, ZK_HOSTS, address
from chaos.records import read_records
from chaos.services import postfix
from tests.support.zookeeper import ZooKeeperServer, four_letter


@dataclass
class Cluster:
    lab: Lab
    fenced_store: bool = False
    mail: str | None = None  # "postfix": Postfix + Dovecot on a loop-device store
    zk: dict[str, ZooKeeperServer] = field(default_factory=dict)
    nodes: dict[str, MailNode] = field(default_factory=dict)
    client: subprocess.Popen[bytes] | None = None

    @property
    def run_dir(self) -> Path:
        return self.lab.run_dir

    # -- ZooKeeper ------------------------------------------------------------------

    def start_zookeeper(self, timeout: float = 60.0) -> float:
        """Start the ensemble and wait for a leader and two followers; return the seconds taken."""
        t0 = time.monotonic()
        peers = {i + 1: f"{address(z)}:2888:3888" for i, z in enumerate(ZK_HOSTS)}
        for i, z in enumerate(ZK_HOSTS):
            self.zk[z] = ZooKeeperServer(
                self.run_dir / z,
                2181,
                client_host=address(z),
                server_id=i + 1,
                peers=peers,
                wrap=netns.exec_argv(self.lab.ns(z), []),
                netns=self.lab.ns(z),
            )
            self.zk[z].start()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            modes = sorted(str(s.mode()) for s in self.zk.values())
            if modes == ["follower", "follower", "leader"]:
                return time.monotonic() - t0
            for s in self.zk.values():
                if s.proc is not None and s.proc.poll() is not None:
                    raise RuntimeError(f"zookeeper {s.address} exited:\n{s.log_tail()}")
            time.sleep(0.1)
        raise TimeoutError(f"no ZooKeeper quorum after {timeout}s: {modes}")

    def zk_leader(self) -> str | None:
        return next((z for z, s in self.zk.items() if s.mode() == "leader"), None)

    def zk_server_of(self, node: str) -> str | None:
        """The ZooKeeper server that `node`'s session is connected to (from `cons`)."""
        for z, s in self.zk.items():
            if f"/{address(node)}:" in four_letter(s.client_host, 2181, "cons", netns=s.netns):
                return z
        return None

    # -- mail nodes -------------------------------------------------------------------

    def prepare_nodes(self) -> None:
        keys = self.run_dir / "keys"
        fence_pub = keygen(keys / "fence_key", "failoverd-fence@lab")
        (self.run_dir / "store").mkdir(parents=True, exist_ok=True)
        (self.run_dir / "flags").mkdir(parents=True, exist_ok=True)
        known = []
        if self.mail:
            store_image.create(self.lab)
            postfix.prepare_cluster(self.run_dir, self.mail)
        for prio, name in enumerate(MAIL_HOSTS):
            node = MailNode(self.lab, name, prio, self.fenced_store, mail=self.mail)
            self.nodes[name] = node
            known.append(f"{address(name)} {node.prepare(fence_pub)}")
        (keys / "known_hosts").write_text("\n".join(known) + "\n")
        os.chmod(keys / "known_hosts", 0o600)

    def start_nodes(self, names: tuple[str, ...] = MAIL_HOSTS) -> None:
        for name in names:
            self.nodes[name].start_sshd()
        self.wait_port([(n, 22) for n in names], timeout=10)
        for name in names:  # back to back: both daemons start at once
            self.nodes[name].start_daemon()

    def power_on(self, name: str) -> None:
        """Boot a powered-off node: network back, then sshd and failoverd as at start."""
        self.nodes[name].reap()
        self.lab.power_on(name)
        self.start_nodes((name,))

    def repair(self) -> list[str]:
        """Bring every mail node back to normal: power on, restart a dead daemon, SIGCONT."""
        done = []
        for name, node in self.nodes.items():
            if self.lab.is_powered_off(name):
                self.power_on(name)
                done.append(f"powered on {name}")
            elif not node.daemon_alive():
                node.reap()
                node.start_daemon()
                done.append(f"restarted failoverd on {name}")
            elif node.daemon is not None:
                os.kill(node.daemon.pid, signal.SIGCONT)
        return done

    def wait_port(self, targets: list[tuple[str, int]], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for host, port in targets:
            while not self.probe(host, address(host), port):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{host}:{port} not listening after {timeout}s")
                time.sleep(0.05)

    def probe(self, from_host: str, to: str, port: int, timeout: float = 0.5) -> bytes | None:
        """Connect from inside a lab host; the first bytes the server sends, or None."""
        try:
            with netns.inside(self.lab.ns(from_host)):
                s = socket.create_connection((to, port), timeout=timeout)
            with s:
                s.settimeout(timeout)
                return s.recv(128) or b""
        except OSError:
            return None

    # -- who serves -----------------------------------------------------------------------

    def serving(self) -> set[str]:
        """Nodes whose service is up, from the services' own records and the power switch."""
        last: dict[str, tuple[float, str]] = {}
        for name in self.nodes:
            for r in read_records(self.run_dir / "events" / f"{name}-service.jsonl", []):
                last[name] = max(last.get(name, (0.0, "")), (r["t"], r["event"]))
        for r in read_records(self.lab.events_path, []):
            if r["event"] == "power_off" and r.get("node") in self.nodes:
                name = r["node"]
                last[name] = max(last.get(name, (0.0, "")), (r["t"], "power_off"))
        return {n for n, (_, event) in last.items() if event == "service_up"}

    def vip_answers(self) -> bool:
        banner = self.probe("client", VIP, 25, timeout=1.0)
        return bool(banner and banner.startswith(b"220"))

    def wait_single_active(self, timeout: float, stable: float = 1.0) -> str | None:
        """Wait until exactly one node serves and the VIP answers, for `stable` seconds."""
        deadline = time.monotonic() + timeout
        since: float | None = None
        while time.monotonic() < deadline:
            s = self.serving()
            if len(s) == 1 and self.vip_answers():
                since = since or time.monotonic()
                if time.monotonic() - since >= stable:
                    return next(iter(s))
            else:
                since = None
            time.sleep(0.2)
        return None

    def status(self, node: str = "mail1") -> str:
        try:
            p = self.nodes[node].ctl("status", "--json", timeout=10)
            return p.stdout or p.stderr
        except (subprocess.TimeoutExpired, OSError) as e:
            return f"failoverctl status: {e}"

    # -- the client ---------------------------------------------------------------------

    def start_client(self, interval: float = 0.05, timeout: float = 3.0) -> None:
        self.lab.record("observation_start")
        argv = [
            sys.executable,
            "-m",
            "chaos.services.client",
            "--out",
            str(self.run_dir / "client.jsonl"),
        ]
        argv += ["--interval", str(interval), "--timeout", str(timeout)]
        with open(self.run_dir / "client.log", "ab") as out:
            self.client = subprocess.Popen(
                netns.exec_argv(self.lab.ns("client"), argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop_client(self) -> None:
        if self.client is not None and self.client.poll() is None:
            self.client.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.client.wait(timeout=8)
        self.lab.record("observation_end")

    # -- the end ------------------------------------------------------------------------

    def teardown(self) -> None:
        """Kill everything and delete the namespaces. Safe to call twice, or half-built."""
        self.lab.teardown()
        for p in [self.client, *(s.proc for s in self.zk.values())]:
            if p is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=2)
        for node in self.nodes.values():
            node.reap()
        if self.mail:
            # The processes are dead, so are their mount namespaces: detach the store.
            store_image.release(store_image.image_path(self.run_dir))
            store_image.remove_short_dir(self.lab.prefix)
