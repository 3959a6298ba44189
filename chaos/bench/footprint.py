"""Footprint: what one daemon costs, idle and during a failover, on loopback.

Two real daemons (`mail1` priority 0, `mail2`) on a three-server loopback
ensemble, configured like a production node: a toy SMTP service as the
`command` resource, an `smtp` health check on it (judged on the active) and a
`command` check (`/bin/true`, like a spool check, judged everywhere) every
second, ssh fencing to the peer's own loopback sshd (chaos/bench/loopsshd.py), probed
by fence readiness every check_interval, then the local fencer
(tests/support/localfence.py runs the target's fence-self), and `metrics.listen`.

Measured over an idle window (after start-up has settled):
* RSS (VmRSS) and CPU share (utime+stime over the window, percent of one core)
  of the active and of the standby; the health-check children's CPU separately;
* ZooKeeper requests per second per daemon, twice: the daemon's own counter
  `failoverd_zookeeper_requests_total` (requests it waited for: lease round
  trips, lock/control/member reads; not kazoo's pings, not the fire-and-forget
  status writes) and the server side packet count of its connection from
  `cons` (everything, pings included).

Then SIGKILL the active daemon (its service keeps running) and measure the
standby from the kill until it is active: CPU seconds and share, peak RSS.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError

from chaos.bench.common import (
    ProcSample,
    cons_packets,
    cpu_share,
    log,
    ports_of,
    reap,
    sample,
    start_ensemble,
    wait_until,
)
from chaos.bench.loopsshd import LoopSshd
from chaos.lab.nodes import keygen
from failoverd.zk.znodes import LockData, MemberStatus, ZnodeError
from tests.support.access import state_dir_for, write_credential, zk_auth
from tests.support.zookeeper import Ensemble, four_letter, free_port

NODES = ("mail1", "mail2")
CLUSTER = "footprint"


class Footprint:
    def __init__(self, workdir: Path, session_timeout: float):
        self.workdir = workdir
        self.session_timeout = session_timeout
        self.ensemble: Ensemble | None = None
        self.svc = workdir / "service"
        self.svc_ports = {n: free_port() for n in NODES}
        self.metric_ports = {n: free_port() for n in NODES}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.zk: KazooClient | None = None
        # Each node's sshd, which its peer fences it through (and probes every
        # check_interval: fence readiness is part of the idle footprint).
        self.sshds = {
            n: LoopSshd(workdir / n / "sshd", workdir / n / "failoverd.yaml", "") for n in NODES
        }
        for sshd in self.sshds.values():
            sshd.port = free_port()

    @property
    def ens(self) -> Ensemble:
        assert self.ensemble is not None, "start() first"
        return self.ensemble

    def toy(self, action: str, node: str) -> list[str]:
        return [sys.executable, "-m", "chaos.services.loopback_smtp", action, "--name", node]

    def config(self, node: str, priority: int) -> dict[str, Any]:
        svc = ["--dir", str(self.svc), "--port", str(self.svc_ports[node])]
        peer = next(p for p in NODES if p != node)
        return {
            "cluster": CLUSTER,
            "node": {
                "name": node,
                "address": "127.0.0.1",
                "priority": priority,
                "state_dir": str(state_dir_for(self.workdir, node)),
            },
            "peers": {p: {"address": "127.0.0.1"} for p in NODES if p != node},
            "zookeeper": {
                "hosts": self.ens.hosts,
                "session_timeout": f"{self.session_timeout}s",
                "auth": zk_auth(self.workdir / "zk.secret"),
            },
            "health": {
                "interval": "1s",
                "rise": 2,
                "fall": 3,
                "checks": [
                    {"type": "smtp", "host": "127.0.0.1", "port": self.svc_ports[node]},
                    {"type": "command", "argv": ["/bin/true"], "timeout": "2s"},
                ],
            },
            "resources": [
                {
                    "type": "command",
                    "start": [*self.toy("start", node), *svc],
                    "stop": [*self.toy("stop", node), *svc],
                    "status": [*self.toy("status", node), *svc],
                    "timeout": "10s",
                }
            ],
            "fencing": [
                {
                    "type": "ssh",
                    "user": "root",
                    "key_file": str(self.workdir / "fence_key"),
                    "known_hosts": str(self.workdir / node / "known_hosts"),
                    "port": self.sshds[peer].port,
                    "timeout": "3s",
                    "verify_ports": [self.svc_ports[peer]],
                },
                {
                    "type": "command",
                    "argv": [
                        sys.executable,
                        "-m",
                        "tests.support.localfence",
                        str(self.workdir),
                        "{node}",
                    ],
                    "timeout": "10s",
                },
            ],
            "metrics": {"listen": f"127.0.0.1:{self.metric_ports[node]}"},
            "log": {"format": "json", "level": "info"},
        }

    def start(self) -> str:
        self.ensemble = start_ensemble(self.workdir)
        self.credential = write_credential(self.workdir / "zk.secret")
        self.svc.mkdir(parents=True, exist_ok=True)
        fence_pub = keygen(self.workdir / "fence_key", "failoverd-fence@footprint")
        for node, sshd in self.sshds.items():
            sshd.fence_pub = fence_pub
            host_line = sshd.start()
            peer = next(p for p in NODES if p != node)
            (self.workdir / peer).mkdir(parents=True, exist_ok=True)
            (self.workdir / peer / "known_hosts").write_text(host_line + "\n")
        for prio, node in enumerate(NODES):
            (self.workdir / node).mkdir(parents=True, exist_ok=True)
            path = self.workdir / node / "failoverd.yaml"
            path.write_text(yaml.safe_dump(self.config(node, prio), sort_keys=False))
            with open(self.workdir / node / "failoverd.log", "ab") as out:
                self.procs[node] = subprocess.Popen(
                    [sys.executable, "-m", "failoverd.main", "-c", str(path)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        logging.getLogger("kazoo").setLevel(logging.ERROR)
        self.zk = KazooClient(
            hosts=self.ens.hosts, timeout=10.0, auth_data=[("digest", self.credential)]
        )
        self.zk.start(timeout=15)
        active = wait_until(lambda: self.active(), 60)
        if active is None:
            raise RuntimeError(f"footprint: no active daemon; see {self.workdir}/*/failoverd.log")
        return str(active)

    def active(self, other_than: str | None = None) -> str | None:
        """The lease holder, once it reports itself active."""
        assert self.zk is not None
        base = f"/failoverd/{CLUSTER}"
        try:
            holder = LockData.decode(self.zk.get(f"{base}/lock")[0]).node
            role = MemberStatus.decode(self.zk.get(f"{base}/members/{holder}")[0]).role
        except (NoNodeError, ZnodeError, KazooException):
            return None
        return holder if role == "active" and holder != other_than else None

    def zk_requests(self, node: str) -> float | None:
        url = f"http://127.0.0.1:{self.metric_ports[node]}/metrics"
        try:
            text = urllib.request.urlopen(url, timeout=2).read().decode()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("failoverd_zookeeper_requests_total "):
                return float(line.split()[1])
        return None

    def server_packets(self) -> dict[int, tuple[int, int]]:
        out: dict[int, tuple[int, int]] = {}
        for s in self.ens.servers:
            out.update(cons_packets(four_letter(s.client_host, s.client_port, "cons")))
        return out

    def idle(self, window: float) -> dict[str, Any]:
        zk_ports = {s.client_port for s in self.ens.servers}
        pids = {n: p.pid for n, p in self.procs.items()}
        conns = {n: ports_of(pid, zk_ports) for n, pid in pids.items()}
        sshd_pids = {n: x.proc.pid for n, x in self.sshds.items() if x.proc is not None}
        sshd0 = {n: sample(pid) for n, pid in sshd_pids.items()}
        first = {n: sample(pid) for n, pid in pids.items()}
        req0 = {n: self.zk_requests(n) for n in NODES}
        pk0 = self.server_packets()
        peak = {n: 0 for n in NODES}
        end = time.monotonic() + window
        while time.monotonic() < end:
            for n, pid in pids.items():
                if s := sample(pid):
                    peak[n] = max(peak[n], s.rss_kb)
            time.sleep(min(0.5, max(0.0, end - time.monotonic())))
        last = {n: sample(pid) for n, pid in pids.items()}
        sshd1 = {n: sample(pid) for n, pid in sshd_pids.items()}
        req1 = {n: self.zk_requests(n) for n in NODES}
        pk1 = self.server_packets()
        out: dict[str, Any] = {}
        for n in NODES:
            a, b = first[n], last[n]
            if a is None or b is None:
                raise RuntimeError(f"footprint: {n}'s daemon died during the idle window")
            dt = b.t - a.t
            pkts = [
                (pk1[p][0] - pk0[p][0], pk1[p][1] - pk0[p][1])
                for p in conns[n]
                if p in pk0 and p in pk1
            ]
            r0, r1 = req0[n], req1[n]
            out[n] = {
                "rss_mb": round(b.rss_kb / 1024, 1),
                "rss_peak_mb": round(peak[n] / 1024, 1),
                "rss_anon_mb": round(b.rss_anon_kb / 1024, 1),
                "cpu_pct": round(cpu_share(a, b), 3),
                "children_cpu_pct": round(100 * (b.children_cpu - a.children_cpu) / dt, 3),
                "zk_requests_per_s": None if r0 is None or r1 is None else round((r1 - r0) / dt, 2),
                "zk_packets_in_per_s": round(sum(x for x, _ in pkts) / dt, 2) if pkts else None,
                "zk_packets_out_per_s": round(sum(y for _, y in pkts) / dt, 2) if pkts else None,
                "window_s": round(dt, 1),
                # What the peer's readiness probes cost on this node: its sshd's
                # sessions (sshd, the forced fence-self --dry-run), reaped by sshd.
                "probed_cpu_pct": _children_pct(sshd0.get(n), sshd1.get(n)),
            }
        return out

    def failover(self, active: str) -> dict[str, Any]:
        standby = next(n for n in NODES if n != active)
        pid = self.procs[standby].pid
        before = sample(pid)
        peak = before.rss_kb if before else 0
        t0 = time.monotonic()
        self.procs[active].send_signal(signal.SIGKILL)
        last: ProcSample | None = before
        while time.monotonic() - t0 < 30 and self.active(other_than=active) is None:
            if s := sample(pid):
                peak, last = max(peak, s.rss_kb), s
            time.sleep(0.1)
        took = time.monotonic() - t0
        after = sample(pid) or last
        if before is None or after is None or self.active(other_than=active) is None:
            raise RuntimeError(f"footprint: {standby} did not take over in 30s")
        return {
            "node": standby,
            "took_s": round(took, 3),
            "cpu_s": round(after.cpu - before.cpu, 3),
            "cpu_pct": round(cpu_share(before, after), 2),
            "children_cpu_s": round(after.children_cpu - before.children_cpu, 3),
            "rss_peak_mb": round(peak / 1024, 1),
        }

    def stop(self) -> None:
        reap(list(self.procs.values()))
        for sshd in self.sshds.values():
            sshd.stop()
        for n in NODES:
            subprocess.run(
                [*self.toy("stop", n), "--dir", str(self.svc)], capture_output=True, check=False
            )
        if self.zk is not None:
            with contextlib.suppress(Exception):
                self.zk.stop()
                self.zk.close()
        if self.ensemble is not None:
            self.ensemble.stop()


def _children_pct(a: ProcSample | None, b: ProcSample | None) -> float | None:
    if a is None or b is None:
        return None
    return round(100 * (b.children_cpu - a.children_cpu) / max(1e-9, b.t - a.t), 3)


def run_footprint(workdir: Path, window: float, session_timeout: float = 2.0) -> dict[str, Any]:
    workdir.mkdir(parents=True, exist_ok=True)
    f = Footprint(workdir, session_timeout)
    try:
        active = f.start()
        time.sleep(5.0)  # start-up work (imports, first health checks) is not "idle"
        log(f"footprint: {active} active; measuring {window:.0f}s idle")
        idle = f.idle(window)
        standby = next(n for n in NODES if n != active)
        fo = f.failover(active)
        log(f"footprint: failover to {fo['node']} in {fo['took_s']}s")
        return {
            "session_timeout": session_timeout,
            "active": idle[active],
            "standby": idle[standby],
            "failover": fo,
        }
    finally:
        f.stop()
