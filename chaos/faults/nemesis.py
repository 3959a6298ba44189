"""Faults (nemeses) the scenarios inject. Each one applies a fault and returns its heal.

Network faults come in both kinds on purpose: nftables DROP makes connects and
reads hang until their timeouts, a bridge port taken down makes them fail fast
("No route to host") — different code paths in the daemon, kazoo and paramiko.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable

from chaos.lab import cgroups, netns
from chaos.lab.cluster import Cluster
from chaos.layout import HOSTS, MAIL_HOSTS, ZK_HOSTS
from chaos.records import read_records

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
    # Whether the cut-off server leads decides the floor (chaos/bench/causes.py).
    standby = next((n for n in MAIL_HOSTS if n != node), None)
    c.lab.record(
        "partition",
        minority=minority,
        majority=majority,
        minority_server=server,
        minority_mode=c.zk[server].mode(),
        standby=standby,
        standby_server=c.zk_server_of(standby) if standby else None,
    )
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
    flag = c.nodes[node].unhealthy_flag  # what the node's path check looks at
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
    return _ssh_dropped_and_power(c, fencer, target, "power-disabled")


def _ssh_dropped_and_power(c: Cluster, fencer: str, target: str, power_flag: str) -> Heal:
    """ssh from `fencer` to `target` dropped, and the lab's power switch told by
    `flags/<power_flag>` how to misbehave (see `power-off` in chaos/__main__.py)."""
    flag = c.run_dir / "flags" / power_flag
    flag.touch()
    c.lab.drop(fencer, [target], direction="out", tcp_port=22)

    def heal() -> None:
        flag.unlink(missing_ok=True)
        c.lab.heal_firewall(fencer)

    return heal


# -- one-way, brief and whole-node faults (scenarios 15-32) --------------------------------


def zk_one_way(c: Cluster, node: str, direction: str) -> Heal:
    """One-way partition between `node` and every ZooKeeper server.

    direction "to-node": ZooKeeper's packets to the node are dropped while the node's
    reach the servers (the session stays alive at the server, the node hears nothing);
    "from-node": the node's packets are dropped while the servers' still arrive.
    """
    c.lab.drop(node, list(ZK_HOSTS), direction="in" if direction == "to-node" else "out")
    return lambda: c.lab.heal_firewall(node)


def pause_zk_server(c: Cluster, which: str, node: str, seconds: float, times: int = 3) -> Heal:
    """SIGSTOP a ZooKeeper server (`leader`, or `follower`: the one `node`'s session is on
    when it is a follower) `times` times for `seconds` each, 2 s apart (a GC or fsync stall)."""
    leader = c.zk_leader()
    if which == "leader":
        server = leader
    else:
        own = c.zk_server_of(node)
        server = own if own not in (None, leader) else next(z for z in ZK_HOSTS if z != leader)
    if server is None:
        raise RuntimeError("no ZooKeeper leader to pause")
    c.lab.record("zk_paused", node=server, role=which, seconds=seconds, times=times)
    zk = c.zk[server]
    for k in range(times):
        zk.pause()
        try:
            time.sleep(seconds)
        finally:
            zk.resume()
        if k + 1 < times:
            time.sleep(2.0)
    return nothing


def zk_quorum_lost(c: Cluster) -> Heal:
    """Stop two of the three servers (the leader and a follower): no quorum at all."""
    leader = c.zk_leader() or ZK_HOSTS[0]
    victims = [leader, next(z for z in ZK_HOSTS if z != leader)]
    c.lab.record("zk_stopped", nodes=victims)
    for z in victims:
        c.zk[z].stop()

    def heal() -> None:
        for z in victims:
            c.zk[z].start()
        # A quorum, not every server: one may still be cut off by another fault (soak).
        wait_quorum(c, 60)

    return heal


def wait_quorum(c: Cluster, timeout: float) -> None:
    """Until a majority of the ensemble serves (a leader or follower answers `srvr`)."""
    deadline = time.monotonic() + timeout
    while sum(s.mode() in ("leader", "follower") for s in c.zk.values()) * 2 <= len(c.zk):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no ZooKeeper quorum {timeout:.0f}s after the heal")
        time.sleep(0.2)


def restart_zookeeper(c: Cluster) -> list[str]:
    """Start every ZooKeeper server that is not running (the end of a composed schedule)."""
    started = []
    for z, s in c.zk.items():
        if s.proc is None or s.proc.poll() is not None:
            s.start()
            started.append(z)
    return started


def freeze_node(c: Cluster, node: str) -> Heal:
    """The whole node stalls like a VM (cgroup freezer): daemon, services and sshd together."""
    name = f"{c.lab.prefix}-{node}"
    pids = [p for p in netns.pids(c.lab.ns(node)) if netns.running(p)]
    cgroups.freeze(name, pids)
    c.lab.record("node_frozen", node=node, pids=len(pids))

    def heal() -> None:
        cgroups.thaw(name)
        c.lab.record("node_thawed", node=node)

    return heal


def true_power_off(c: Cluster, node: str, silence: float = 1.0) -> Heal:
    """A real power loss: the node falls silent first (frozen, link cut: no FIN, no RST),
    then its processes die (the power switch, which also takes the addresses)."""
    heal = freeze_node(c, node)
    c.lab.set_link(node, False)
    time.sleep(silence)
    c.lab.power_off(node, by="nemesis")
    c.lab.set_link(node, True)  # the bridge port; the node's own eth0 stays down (off)
    heal()
    return nothing


def power_switch_hangs(c: Cluster, fencer: str, target: str) -> Heal:
    """ssh fencing dropped and the power switch hanging until the fencer's timeout kills it."""
    return _ssh_dropped_and_power(c, fencer, target, "power-hang")


def service_pid(c: Cluster, node: str) -> int | None:
    try:
        pid = int((c.run_dir / node / "service.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if netns.running(pid) else None


def freeze_service_mid_data(c: Cluster, node: str, timeout: float = 10.0) -> Heal:
    """Freeze the node's mail service after it received a message's DATA and before it
    stored or answered it; the heal resumes it (its late write must be caught)."""
    flag = c.run_dir / "flags" / f"{node}.hold-data"
    events = c.run_dir / "events" / f"{node}-service.jsonl"
    seen = len(read_records(events, []))
    flag.touch()
    try:
        deadline = time.monotonic() + timeout
        while True:
            held = [r for r in read_records(events, [])[seen:] if r.get("event") == "data_held"]
            if held:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{node}'s service held no DATA within {timeout}s")
            time.sleep(0.01)
        pid = int(held[0]["pid"])
        os.kill(pid, signal.SIGSTOP)
        c.lab.record("service_frozen", node=node, pid=pid, msg=held[0].get("msg"))
    finally:
        flag.unlink(missing_ok=True)  # the frozen service still sees it gone once resumed

    def heal() -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
        c.lab.record("service_resumed", node=node, pid=pid)

    return heal


def starve_daemon(c: Cluster, node: str, fraction: float) -> Heal:
    """The daemon gets `fraction` of one core (cgroup v1 cpu.cfs_quota_us), threads and all."""
    daemon = c.nodes[node].daemon
    if daemon is None:
        raise RuntimeError(f"no failoverd on {node}")
    name = f"{c.lab.prefix}-{node}-daemon"
    cgroups.cpu_quota(name, [daemon.pid], fraction)
    c.lab.record("daemon_starved", node=node, fraction=fraction)
    return lambda: cgroups.unlimit(name)


def state_dir_read_only(c: Cluster, node: str) -> Heal:
    """The node's state dir becomes read-only (a remount after an I/O error).

    Every `ip netns exec` process has its own mount namespace that does not receive
    later mounts, so the read-only bind mount is made inside the daemon's and the
    sshd's (fence-self runs under it) mount namespaces with nsenter.
    """
    state = str(c.nodes[node].config()["node"]["state_dir"])
    pids = [p.pid for p in (c.nodes[node].daemon, c.nodes[node].sshd) if p is not None]
    done: list[int] = []
    for pid in pids:
        netns.sh(["nsenter", "-t", str(pid), "-m", "--", "mount", "--bind", state, state])
        done.append(pid)
        netns.sh(["nsenter", "-t", str(pid), "-m", "--", "mount", "-o", "remount,bind,ro", state])
    c.lab.record("state_dir_read_only", node=node, pids=done)

    def heal() -> None:
        for pid in done:
            netns.sh(["nsenter", "-t", str(pid), "-m", "--", "umount", state], check=False)

    return heal
