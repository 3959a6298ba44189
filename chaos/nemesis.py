"""Faults (nemeses) the scenarios inject. Each one applies a fault and returns its heal.

Network faults come in both kinds on purpose: nftables DROP makes connects and
reads hang until their timeouts, a bridge port taken down makes them fail fast
("No route to host") — different code paths in the daemon, kazoo and paramiko.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

from chaos.cluster import Cluster
from chaos.lab import HOSTS, MAIL_HOSTS, ZK_HOSTS

Heal = Callable[[], None]


def nothing() -> None:
    pass


def kill_daemon(c: Cluster, node: str) -> Heal:
    """SIGKILL failoverd; the resources it started keep running (restarted by repair)."""
    c.nodes[node].signal_daemon(signal.SIGKILL)
    return nothing


def pause_daemon(c: Cluster, node: str) -> Heal:
    """SIGSTOP failoverd: a frozen process that still believes it is active."""
    c.nodes[node].signal_daemon(signal.SIGSTOP)
    return lambda: c.nodes[node].signal_daemon(signal.SIGCONT)


def link_down(c: Cluster, node: str) -> Heal:
    """Take the node's bridge port down: cut from everything, failing fast."""
    c.lab.set_link(node, False)
    return lambda: c.lab.set_link(node, True)


def isolate(c: Cluster, node: str) -> Heal:
    """Drop everything between the node and the rest of the lab (hanging)."""
    c.lab.drop_all(node)
    return lambda: c.lab.heal_firewall(node)


def cut_from_zookeeper(c: Cluster, node: str) -> Heal:
    """Drop the node's traffic with every ZooKeeper server; the peer stays reachable."""
    c.lab.drop(node, list(ZK_HOSTS))
    return lambda: c.lab.heal_firewall(node)


def cut_peer_link(c: Cluster) -> Heal:
    """Only the link between the mail nodes breaks (the Xtra case): ZooKeeper still decides."""
    a, b = MAIL_HOSTS
    c.lab.drop(a, [b])
    c.lab.drop(b, [a])

    def heal() -> None:
        c.lab.heal_firewall(a)
        c.lab.heal_firewall(b)

    return heal


def kill_zk_leader(c: Cluster) -> Heal:
    leader = c.zk_leader()
    if leader is None:
        raise RuntimeError("no ZooKeeper leader to kill")
    # Which server each daemon's session is on decides how hard this is: a session
    # on the killed leader must reconnect after the new election.
    sessions = {n: c.zk_server_of(n) for n in MAIL_HOSTS}
    c.lab.record("zk_killed", node=leader, sessions=sessions)
    c.zk[leader].stop()

    def heal() -> None:
        c.zk[leader].start()
        c.zk[leader].wait_serving(30)

    return heal


def zk_minority(c: Cluster, node: str) -> Heal:
    """Partition {node, its ZooKeeper server} from everyone else (the majority side)."""
    server = c.zk_server_of(node) or ZK_HOSTS[0]
    minority = [node, server]
    majority = [h for h in HOSTS if h not in minority]
    c.lab.record("partition", minority=minority, majority=majority)
    for h in minority:
        c.lab.drop(h, majority)

    def heal() -> None:
        for h in minority:
            c.lab.heal_firewall(h)

    return heal


def power_off(c: Cluster, node: str) -> Heal:
    """Pull the plug: every process of the node dies at once (repair powers it on)."""
    c.lab.power_off(node, by="nemesis")
    return nothing


def lossy(c: Cluster, node: str, percent: int) -> Heal:
    c.lab.lossy(node, percent)
    return lambda: c.lab.heal_firewall(node)


def unhealthy(c: Cluster, node: str) -> Heal:
    """The node's mail service breaks: its health check fails, the service answers 421."""
    flag = c.run_dir / "flags" / f"{node}.unhealthy"
    flag.touch()
    return lambda: flag.unlink(missing_ok=True)


def overload(c: Cluster, node: str, delay: float) -> Heal:
    """The node's SMTP answers each step `delay` seconds late (still within every timeout)."""
    flag = c.run_dir / "flags" / f"{node}.slow"
    flag.write_text(f"{delay}\n")
    return lambda: flag.unlink(missing_ok=True)


def switchover(c: Cluster, node: str) -> Heal:
    """A planned handover requested with `failoverctl switchover` (from the active's host)."""
    p = c.nodes[node].ctl("switchover")
    c.lab.record(
        "switchover_requested", node=node, exit=p.returncode, output=(p.stdout + p.stderr)[-400:]
    )
    if p.returncode != 0:
        raise RuntimeError(f"failoverctl switchover exited {p.returncode}: {p.stderr.strip()}")
    return nothing


def stop_all_daemons(c: Cluster, order: list[str]) -> Heal:
    """SIGTERM every failoverd at once (the active hands over); heal starts them together."""
    for n in c.nodes.values():
        n.signal_daemon(signal.SIGTERM)
    for n in c.nodes.values():
        if not n.wait_daemon(20):
            n.signal_daemon(signal.SIGKILL)
            n.wait_daemon(5)

    def heal() -> None:
        for name in order:  # back to back, in the order the seed chose
            c.nodes[name].start_daemon()

    return heal


def block_fencing(c: Cluster, fencer: str, target: str) -> Heal:
    """Fencing impossible: ssh from `fencer` to `target` dropped, the power switch unreachable."""
    flag = c.run_dir / "flags" / "power-disabled"
    flag.touch()
    c.lab.drop(fencer, [target], direction="out", tcp_port=22)

    def heal() -> None:
        flag.unlink(missing_ok=True)
        c.lab.heal_firewall(fencer)

    return heal
