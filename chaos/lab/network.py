"""The lab's network: namespaces, one bridge, firewall rules, links and the power switch.

Every host of the layout (chaos/layout.py) is a namespace `<prefix>-<host>` whose
veth `eth0` has its other end (`v-<host>`) as a port of `br0`, which lives in its
own namespace `<prefix>-br`. The root namespace's network is never touched and
nothing routes out. The lab is registered (chaos/lab/registry.py) before its
first namespace exists, so that `python -m chaos cleanup` finds the leftovers of
a crashed run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.lab import cgroups, netns, registry
from chaos.layout import HOSTS, MAIL_HOSTS, PREFIXLEN, ZK_HOSTS, address
from chaos.records import append_event

BRIDGE = "br"
FW_TABLE = "chaos"


@dataclass
class Lab:
    run_dir: Path
    prefix: str

    # -- names -----------------------------------------------------------------

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    @property
    def namespaces(self) -> list[str]:
        return [self.ns(h) for h in HOSTS] + [self.ns(BRIDGE)]

    @property
    def events_path(self) -> Path:
        return self.run_dir / "events" / "lab.jsonl"

    def record(self, event: str, **fields: Any) -> float:
        t = time.time()
        append_event(self.events_path, {"event": event, "t": t, **fields})
        return t

    # -- life cycle ----------------------------------------------------------------

    @classmethod
    def create(cls, run_dir: Path) -> Lab:
        """Pick an unused prefix, register the lab (before anything exists) and build it."""
        run_dir = run_dir.resolve()
        run_dir.mkdir(parents=True, exist_ok=True)
        base = f"fo{os.getpid() % 10000}"
        taken = set(netns.listed())
        for suffix in ["", *"abcdefghijklmnopqrstuvwxyz"]:
            prefix = base + suffix
            if any(n.startswith(prefix + "-") for n in taken):
                continue
            lab = cls(run_dir, prefix)
            # An atomic claim: concurrent labs never share a prefix.
            if registry.claim(lab.prefix, lab.run_dir, lab.namespaces):
                break
        else:
            raise RuntimeError("no free lab prefix: run `python -m chaos cleanup`")
        try:
            lab.build()
        except BaseException:
            lab.teardown()  # half-built (or Ctrl-C while building): leave nothing
            raise
        return lab

    @classmethod
    def load(cls, run_dir: Path) -> Lab:
        info = json.loads((run_dir / "lab.json").read_text())
        return cls(Path(info["run_dir"]), info["prefix"])

    def build(self) -> None:
        br = self.ns(BRIDGE)
        netns.add(br)
        netns.sh(["ip", "-n", br, "link", "add", "br0", "type", "bridge"])
        netns.sh(["ip", "-n", br, "link", "set", "br0", "up"])
        for host in HOSTS:
            ns = self.ns(host)
            netns.add(ns)
            # Both ends are created inside lab namespaces: the root namespace never
            # sees them, not even for a moment.
            netns.sh(
                ["ip", "-n", br, "link", "add", f"v-{host}", "type", "veth"]
                + ["peer", "name", "eth0", "netns", ns]
            )
            netns.sh(["ip", "-n", br, "link", "set", f"v-{host}", "master", "br0", "up"])
            netns.sh(["ip", "-n", ns, "addr", "add", f"{address(host)}/{PREFIXLEN}", "dev", "eth0"])
            netns.sh(["ip", "-n", ns, "link", "set", "eth0", "up"])

    def teardown(self) -> None:
        """Kill every process of the lab and delete its namespaces. Idempotent.

        Mail nodes and the client go first, ZooKeeper after them: the daemons must
        not watch their ensemble die (and react) while they are being torn down.
        """
        order = [*MAIL_HOSTS, "client", *ZK_HOSTS, BRIDGE]
        cgroups.release(self.prefix)  # a frozen process would survive SIGKILL
        teardown_names([self.ns(h) for h in order])
        registry.release(self.prefix)

    # -- links and firewall --------------------------------------------------------

    def set_link(self, host: str, up: bool) -> None:
        """The host's bridge port: down makes the host's traffic fail fast (no carrier)."""
        state = "up" if up else "down"
        netns.sh(["ip", "-n", self.ns(BRIDGE), "link", "set", f"v-{host}", state])

    def _nft(self, host: str, script: str) -> None:
        p = subprocess.run(
            netns.exec_argv(self.ns(host), ["nft", "-f", "-"]),
            input=script,
            capture_output=True,
            text=True,
            timeout=10,
        )
        if p.returncode != 0:
            raise netns.NetnsError(f"nft in {host}: {p.stderr.strip()}\n{script}")

    def _ensure_table(self, host: str) -> None:
        self._nft(
            host,
            f"""table inet {FW_TABLE} {{
  chain input {{ type filter hook input priority 0; policy accept; iifname "lo" accept; }}
  chain output {{ type filter hook output priority 0; policy accept; oifname "lo" accept; }}
}}
""",
        )

    def drop(
        self, host: str, peers: list[str], direction: str = "both", tcp_port: int | None = None
    ) -> None:
        """Silently drop `host`'s traffic with `peers` (DROP: connects hang until timeout).

        direction: "in" (packets from peers), "out" (packets to peers) or "both".
        tcp_port limits the rule to one destination port on the peer (e.g. ssh).
        """
        self._ensure_table(host)
        rules = []
        for peer in peers:
            a = address(peer)
            if direction in ("out", "both"):
                port = f" tcp dport {tcp_port}" if tcp_port else ""
                rules.append(f"add rule inet {FW_TABLE} output ip daddr {a}{port} drop")
            if direction in ("in", "both"):
                port = f" tcp sport {tcp_port}" if tcp_port else ""
                rules.append(f"add rule inet {FW_TABLE} input ip saddr {a}{port} drop")
        self._nft(host, "\n".join(rules) + "\n")

    def drop_all(self, host: str) -> None:
        """Isolate `host` from every other lab host (its own loopback keeps working)."""
        self.drop(host, [h for h in HOSTS if h != host])

    def lossy(self, host: str, percent: int) -> None:
        """Drop `percent`% of the host's packets at random in both directions."""
        self._ensure_table(host)
        self._nft(
            host,
            f"add rule inet {FW_TABLE} input numgen random mod 100 < {percent} drop\n"
            f"add rule inet {FW_TABLE} output numgen random mod 100 < {percent} drop\n",
        )

    def heal_firewall(self, host: str) -> None:
        netns.run_in(self.ns(host), ["nft", "delete", "table", "inet", FW_TABLE], check=False)

    def slow(self, host: str, rate: str = "256kbit") -> None:
        """Rate-limit the host's egress with tbf (no netem on this kernel)."""
        netns.run_in(
            self.ns(host),
            ["tc", "qdisc", "replace", "dev", "eth0", "root", "tbf"]
            + ["rate", rate, "burst", "4kb", "latency", "400ms"],
        )

    def unslow(self, host: str) -> None:
        netns.run_in(self.ns(host), ["tc", "qdisc", "del", "dev", "eth0", "root"], check=False)

    def heal_network(self) -> None:
        for host in HOSTS:
            self.heal_firewall(host)
            self.unslow(host)
            self.set_link(host, True)

    # -- the power switch ---------------------------------------------------------------

    def power_off(self, host: str, by: str | None = None) -> int:
        """Cut a host's power: kill every process of its namespace, drop its link.

        A rebooted machine comes back without the addresses it had (the VIP in
        particular), so the addresses are flushed too. The event is recorded after
        the last process is gone: the checker closes the node's service interval
        there when the service itself could not write `service_down`.
        """
        # Frozen (cgroup freezer) processes die of this SIGKILL only once thawed: kill
        # first, then thaw, so a frozen node never runs another instruction.
        first = [p for p in netns.pids(self.ns(host)) if netns.running(p)]
        for pid in first:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        cgroups.thaw(f"{self.prefix}-{host}")
        killed = max(len(first), netns.kill_all(self.ns(host)))  # re-kills are not new
        netns.sh(["ip", "-n", self.ns(host), "addr", "flush", "dev", "eth0"], check=False)
        netns.sh(["ip", "-n", self.ns(host), "link", "set", "eth0", "down"], check=False)
        self.record("power_off", node=host, by=by, killed=killed)
        return killed

    def power_on(self, host: str) -> None:
        """Bring a powered-off host's network back (its processes are started by the runner)."""
        ns = self.ns(host)
        netns.sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
        netns.sh(["ip", "-n", ns, "addr", "replace", f"{address(host)}/{PREFIXLEN}", "dev", "eth0"])
        self.record("power_on", node=host)

    def is_powered_off(self, host: str) -> bool:
        out = netns.sh(["ip", "-n", self.ns(host), "-o", "link", "show", "eth0"], check=False)
        return "state DOWN" in out or ",UP" not in out


def teardown_names(names: list[str]) -> None:
    """Kill processes first (deleting a namespace's name does not stop its processes)."""
    for ns in names:
        with contextlib.suppress(netns.NetnsError):
            netns.kill_all(ns)
    for ns in names:
        netns.delete(ns)
