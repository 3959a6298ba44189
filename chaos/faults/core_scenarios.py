"""Scenarios 1-14, the core failure modes: one fault each, how long it lasts, what must hold.

A crashed, paused or isolated daemon; ZooKeeper cut, its leader killed, the
active in its minority; power off; a lossy link; a failing service; a
switchover; an overloaded service; both daemons restarted at once; fencing
impossible. The types: chaos/faults/scenario.py.

Timing is derived from the lab's ZooKeeper session timeout T = 2 s (chaos/lab/nodes.py):
a partitioned active drops its local lease after ~1.5 s, the session expires
after 2 s, fencing takes ≤ 3 s per ssh attempt, so a required failover shows
within ~10 s; holds of 8-12 s outlast every one of those clocks.
"""

from __future__ import annotations

from chaos.faults import nemesis
from chaos.faults.scenario import Ctx, Scenario
from chaos.judge.history import Expectation
from chaos.layout import MAIL_HOSTS


def _kill(x: Ctx) -> None:
    c = x.cluster
    x.fault("SIGKILL failoverd", lambda: nemesis.kill_daemon(c, x.active), 25, x.failed_over)


def _pause(x: Ctx) -> None:
    # Frozen well past T: the peer fences the node (its service) while the daemon sleeps.
    x.fault("SIGSTOP failoverd", lambda: nemesis.pause_daemon(x.cluster, x.active), 8)


def _isolate(x: Ctx) -> None:
    c = x.cluster
    x.fault("bridge port down", lambda: nemesis.link_down(c, x.active), 25, x.failed_over)


def _cut_zk(x: Ctx) -> None:
    c = x.cluster
    x.fault(
        "cut from ZooKeeper", lambda: nemesis.cut_from_zookeeper(c, x.active), 25, x.failed_over
    )


def _peer_link(x: Ctx) -> None:
    x.fault("mail1-mail2 link cut", lambda: nemesis.cut_peer_link(x.cluster), 10)


def _zk_leader(x: Ctx) -> None:
    x.fault("ZooKeeper leader killed", lambda: nemesis.kill_zk_leader(x.cluster), 8)


def _zk_minority(x: Ctx) -> None:
    c = x.cluster
    x.fault("active's ZooKeeper in minority", lambda: nemesis.zk_minority(c, x.active), 12)


def _power(x: Ctx) -> None:
    c = x.cluster
    x.fault("power off", lambda: nemesis.power_off(c, x.active), 25, x.failed_over)


def _lossy(x: Ctx) -> None:
    pct = x.rng.choice([20, 25, 30])
    x.fault(f"{pct}% loss", lambda: nemesis.lossy(x.cluster, x.active, pct), 20)


def _unhealthy(x: Ctx) -> None:
    c = x.cluster
    x.fault("service unhealthy", lambda: nemesis.unhealthy(c, x.active), 25, x.failed_over)


def _switchover(x: Ctx) -> None:
    c = x.cluster
    x.fault("switchover", lambda: nemesis.switchover(c, x.active), 20, x.failed_over, after=1)


def _overload(x: Ctx) -> None:
    x.fault("slow SMTP (0.5s/reply)", lambda: nemesis.overload(x.cluster, x.active, 0.5), 15)


def _simultaneous(x: Ctx) -> None:
    c = x.cluster
    for k in range(3):
        order = list(MAIL_HOSTS)
        x.rng.shuffle(order)
        x.fault(f"restart both #{k + 1}", lambda o=order: nemesis.stop_all_daemons(c, o), 0.5)
        c.wait_single_active(25)


def _no_fencing(x: Ctx) -> None:
    c = x.cluster

    def apply() -> nemesis.Heal:
        heal = nemesis.block_fencing(c, x.standby, x.active)
        nemesis.kill_daemon(c, x.active)
        return heal

    # Long enough for the session to expire (T), the ssh attempt to time out and the
    # power switch to refuse, with slack for a loaded machine: the alert must come
    # while fencing is still impossible.
    x.fault("fencing impossible, active's daemon killed", apply, 20)


CORE_SCENARIOS = [
    Scenario(
        1,
        "kill-daemon",
        "SIGKILL the active's failoverd (service keeps running): fenced, one takeover",
        Expectation("required", 15, 1),
        _kill,
    ),
    Scenario(
        2,
        "pause-daemon",
        "SIGSTOP the active's failoverd past the session timeout, "
        "then SIGCONT: fenced, never two actives",
        Expectation("required", 15, 1),
        _pause,
    ),
    Scenario(
        3,
        "isolate-active",
        "take the active's bridge port down: it self-demotes, "
        "the standby power-fences and takes over",
        Expectation("required", 20, 1),
        _isolate,
    ),
    Scenario(
        4,
        "cut-zookeeper",
        "drop the active's traffic with ZooKeeper only: self-demote, ssh fence, takeover",
        Expectation("required", 15, 1),
        _cut_zk,
    ),
    Scenario(
        5,
        "cut-peer-link",
        "drop only the link between the two mail nodes (Xtra): no failover",
        Expectation("forbidden", 10),
        _peer_link,
    ),
    Scenario(
        6,
        "kill-zk-leader",
        "SIGKILL the ZooKeeper leader: no failover",
        Expectation("forbidden", 10),
        _zk_leader,
    ),
    Scenario(
        7,
        "zk-minority",
        "partition the active with its ZooKeeper server from the majority: at most one active",
        Expectation("allowed", 20, 2),
        _zk_minority,
    ),
    Scenario(
        8,
        "power-off",
        "power off the active node: power-fence, takeover",
        Expectation("required", 20, 1),
        _power,
    ),
    Scenario(
        9,
        "lossy-link",
        "random drop on the active's link: bounded failovers, no split brain",
        Expectation("allowed", 25, 3),
        _lossy,
    ),
    Scenario(
        10,
        "unhealthy-service",
        "the active's mail service fails its health check: failover to the healthy node",
        Expectation("required", 15, 1),
        _unhealthy,
    ),
    Scenario(
        11,
        "switchover",
        "failoverctl switchover under load: no lost mail, short outage",
        Expectation("required", 15, 1, max_outage=10.0),
        _switchover,
    ),
    Scenario(
        12,
        "overload",
        "the active's SMTP answers slowly but within timeouts: no failover",
        Expectation("forbidden", 10),
        _overload,
    ),
    Scenario(
        13,
        "simultaneous-start",
        "stop both daemons and start them at once, three times: exactly one active each time",
        Expectation("allowed", 20),
        _simultaneous,
    ),
    Scenario(
        14,
        "fencing-impossible",
        "ssh blocked and no power switch, active's daemon killed: no takeover, alert raised",
        Expectation("forbidden-during-fault", 20, require_alert=True),
        _no_fencing,
    ),
]
