"""Scenarios 15-32: faults at the moments that matter, and the faults 1-14 leave out.

A windowed scenario composes faults: a first fault starts a transition (the active
frozen or killed), and a second one fires when a node *says* it is in the window
(chaos/faults/triggers.py tails its log). For the checker the whole composition is
one fault (a Composite, chaos/faults/scenario.py: `fault_start` .. `fault_heal`);
each step is recorded as `nemesis_start` / `nemesis_heal` in events/lab.jsonl, and
a trigger that never fired as `trigger_missed` (the window was not reached: the
step is skipped, and the scenario's expectation still judges what happened).

The faults 1-14 leave out: ZooKeeper one way, paused briefly, or without quorum;
a frozen node; power lost silently; a hanging power switch; two faults at once;
an unhealthy standby; a service frozen mid-DATA; a starved daemon; a read-only
state dir; a full store.

T = the lab's session timeout, 2 s (chaos/lab/nodes.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from chaos.faults import nemesis, triggers
from chaos.faults.scenario import Composite, Ctx, Scenario
from chaos.faults.store_full import store_full
from chaos.judge.history import Expectation

T = 2.0


def arm(x: Ctx, default: str) -> triggers.Armed:
    roles = {"active": x.active, "standby": x.standby}
    return triggers.arm(x.trigger or default, x.cluster.run_dir, roles, x.rng)


# -- windowed ------------------------------------------------------------------------------


def _freeze_promoting(x: Ctx) -> None:
    """The old active frozen; the new one frozen in its window past T; both woken."""
    c = x.cluster
    armed = arm(x, "promoting@standby")  # 32 passes resource_starting@standby
    with Composite(x, f"standby frozen at {armed.trigger}") as f:
        f.step("SIGSTOP active failoverd", lambda: nemesis.pause_daemon(c, x.active))
        if f.wait(armed, 25, "SIGSTOP standby failoverd"):
            f.step("SIGSTOP standby failoverd", lambda: nemesis.pause_daemon(c, x.standby))
            time.sleep(1.0)
            f.heal("SIGSTOP active failoverd")  # the fenced old active wakes first
            time.sleep(T + 2.0)  # the frozen one's session is gone by now
        else:
            f.hold(2.0)


def _fencer_frozen(x: Ctx) -> None:
    """The fencer frozen mid-chain past T, then woken: it must not promote on a dead lease."""
    c = x.cluster
    armed = arm(x, "fence_planned@standby")
    with Composite(x, f"fencer frozen at {armed.trigger}") as f:
        f.step("SIGKILL active failoverd", lambda: nemesis.kill_daemon(c, x.active))
        if f.wait(armed, 25, "SIGSTOP fencer"):
            f.step("SIGSTOP fencer", lambda: nemesis.pause_daemon(c, x.standby))
            time.sleep(T + 3.0)
            f.heal("SIGSTOP fencer")
        f.hold(25, x.failed_over)
        time.sleep(2.0)


def _kill_demoting(x: Ctx) -> None:
    """The active killed in the middle of its own demotion (resources half stopped)."""
    c = x.cluster
    armed = arm(x, "demoting@active")
    with Composite(x, f"active killed at {armed.trigger}") as f:
        f.step("active unhealthy", lambda: nemesis.unhealthy(c, x.active))
        if f.wait(armed, 25, "SIGKILL active failoverd"):
            f.step("SIGKILL active failoverd", lambda: nemesis.kill_daemon(c, x.active))
        f.hold(25, x.failed_over)
        time.sleep(2.0)


# -- the missing faults -------------------------------------------------------------------


def _zk_to_node(x: Ctx) -> None:
    c = x.cluster
    x.fault(
        "ZooKeeper->active dropped",
        lambda: nemesis.zk_one_way(c, x.active, "to-node"),
        25,
        x.failed_over,
    )


def _zk_from_node(x: Ctx) -> None:
    c = x.cluster
    x.fault(
        "active->ZooKeeper dropped",
        lambda: nemesis.zk_one_way(c, x.active, "from-node"),
        25,
        x.failed_over,
    )


def _zk_pause(which: str) -> Callable[[Ctx], None]:
    def inject(x: Ctx) -> None:
        # < T/2: a leader fsync or GC stall that the local lease must ride out.
        x.fault(
            f"ZooKeeper {which} SIGSTOPped 3 x 0.9s",
            lambda: nemesis.pause_zk_server(x.cluster, which, x.active, 0.9),
            0,
        )

    return inject


def _quorum_lost(x: Ctx) -> None:
    x.fault("ZooKeeper quorum lost (2 of 3 down)", lambda: nemesis.zk_quorum_lost(x.cluster), 12)


def _node_freeze(x: Ctx) -> None:
    c = x.cluster
    # Thawed only after the peer took over: the thawed node must not serve.
    x.fault("active node frozen", lambda: nemesis.freeze_node(c, x.active), 25, x.failed_over)


def _true_power_off(x: Ctx) -> None:
    c = x.cluster
    x.fault(
        "power lost (silent, then dead)",
        lambda: nemesis.true_power_off(c, x.active),
        25,
        x.failed_over,
    )


def _power_hangs(x: Ctx) -> None:
    c = x.cluster

    def apply() -> nemesis.Heal:
        heal = nemesis.power_switch_hangs(c, x.standby, x.active)
        nemesis.kill_daemon(c, x.active)
        return heal

    # ssh times out (3 s), the switch hangs until its 10 s timeout: the alert must come
    # while fencing is still impossible.
    x.fault("ssh dropped, power switch hangs, active's daemon killed", apply, 28)


def _peer_link_and_unhealthy(x: Ctx) -> None:
    c = x.cluster

    def apply() -> nemesis.Heal:
        a = nemesis.cut_peer_link(c)
        b = nemesis.unhealthy(c, x.active)

        def heal() -> None:
            b()
            a()

        return heal

    x.fault("peer link cut + active's service failing", apply, 25, x.failed_over)


def _standby_unhealthy(x: Ctx) -> None:
    c = x.cluster
    with Composite(x, "standby unhealthy, then the active powered off") as f:
        f.step("standby unhealthy", lambda: nemesis.unhealthy(c, x.standby))
        time.sleep(4.5)  # fall 3 x 1 s: the standby knows it is unhealthy
        f.step("power off active", lambda: nemesis.power_off(c, x.active))
        time.sleep(8.0)


def _service_mid_data(x: Ctx) -> None:
    c = x.cluster
    x.fault(
        "mail service frozen mid-DATA",
        lambda: nemesis.freeze_service_mid_data(c, x.active),
        25,
        x.failed_over,
    )


def _starved(x: Ctx) -> None:
    x.fault(
        "active's failoverd at 5% of a core",
        lambda: nemesis.starve_daemon(x.cluster, x.active, 0.05),
        20,
    )


Roles = dict[str, tuple[str, int | None]]  # node -> (role, epoch)


def _roles(x: Ctx) -> Roles:
    """node -> (role, epoch) as the daemons publish them (failoverctl status --json)."""
    try:
        status = json.loads(x.cluster.status(x.standby))
    except ValueError:
        return {}
    return {m["node"]: (m.get("role"), m.get("epoch")) for m in status.get("members", [])}


def _state_ro(x: Ctx) -> None:
    """A settled active needs no state-dir write to keep serving (the breadcrumb was
    written at its promotion), so it must ride the fault out: same node, same epoch,
    no failed delivery to speak of (checker: forbidden + max_outage + settle), and the
    daemons themselves must report exactly that node active, during and after."""
    c = x.cluster
    before = _roles(x).get(x.active)
    with Composite(x, "active's state dir read-only") as f:
        f.step("state dir read-only", lambda: nemesis.state_dir_read_only(c, x.active))
        f.hold(6.0)
        during = _roles(x)
        c.lab.record("roles_sampled", when="during", roles=during)
        f.hold(6.0)
    deadline = time.monotonic() + 5.0
    after = _roles(x)
    while time.monotonic() < deadline and _actives(after) != [x.active]:
        time.sleep(0.2)
        after = _roles(x)
    c.lab.record("roles_sampled", when="after", roles=after)
    problem = roles_problem(x.active, before, {"during": during, "after": after})
    if problem:
        raise RuntimeError(problem)


def roles_problem(
    active: str, before: tuple[str, int | None] | None, seen: dict[str, Roles]
) -> str:
    """'' when every sample shows `active`, alone, as active with its epoch of `before`."""
    for when, roles in seen.items():
        if _actives(roles) != [active] or roles.get(active) != before:
            return (
                f"{when} the read-only state dir: roles {roles}, expected only {active} "
                f"active as before ({before})"
            )
    return ""


def _store_full(x: Ctx) -> None:
    """The shared store full for 10 s: 452, no failover, nothing acked lost, resumes."""
    x.fault(
        "mail store full",
        lambda: store_full(x.cluster, x.active),
        10,
    )


def _actives(roles: Roles) -> list[str]:
    return sorted(n for n, (role, _) in roles.items() if role == "active")


EDGE_SCENARIOS: list[Scenario] = [
    Scenario(
        15,
        "freeze-in-promotion",
        "active's daemon frozen; the standby frozen past T in its promotion window "
        "(trigger), the old active woken first: at most one serves, the woken must stop",
        Expectation("allowed", 25, 2),
        _freeze_promoting,
        trigger="promoting@standby",
    ),
    Scenario(
        16,
        "fencer-frozen",
        "active's daemon killed; the fencer frozen mid-chain past T (trigger), then woken: "
        "no promotion on a lost lease, one takeover",
        Expectation("required", 25, 2),
        _fencer_frozen,
        trigger="fence_planned@standby",
    ),
    Scenario(
        17,
        "kill-while-demoting",
        "active unhealthy; its daemon SIGKILLed as it starts demoting (trigger): fenced, takeover",
        Expectation("required", 20, 1),
        _kill_demoting,
        trigger="demoting@active",
    ),
    Scenario(
        18,
        "zk-oneway-to-active",
        "ZooKeeper's packets to the active dropped, the active's still arrive: it stops, takeover",
        Expectation("required", 20, 1),
        _zk_to_node,
    ),
    Scenario(
        19,
        "zk-oneway-from-active",
        "the active's packets to ZooKeeper dropped, ZooKeeper's still arrive: it stops, takeover",
        Expectation("required", 20, 1),
        _zk_from_node,
    ),
    Scenario(
        20,
        "zk-pause-leader",
        "the ZooKeeper leader SIGSTOPped 3 x 0.9 s (< T/2): no failover",
        Expectation("forbidden", 10),
        _zk_pause("leader"),
        exclusive=True,
    ),
    Scenario(
        21,
        "zk-pause-follower",
        "the active's ZooKeeper server (a follower) SIGSTOPped 3 x 0.9 s (< T/2): no failover",
        Expectation("forbidden", 10),
        _zk_pause("follower"),
        exclusive=True,
    ),
    Scenario(
        22,
        "zk-quorum-lost",
        "2 of 3 ZooKeeper servers down 12 s: the active stops within T, "
        "nobody serves until quorum returns",
        Expectation("allowed", 25, 1, quiet_after=T),
        _quorum_lost,
    ),
    Scenario(
        23,
        "node-freeze",
        "the whole active node frozen (cgroup freezer), thawed after the takeover: "
        "the thawed node must not serve",
        Expectation("required", 20, 1),
        _node_freeze,
    ),
    Scenario(
        24,
        "true-power-off",
        "the active falls silent (frozen, link cut), then its processes die: takeover",
        Expectation("required", 20, 1),
        _true_power_off,
    ),
    Scenario(
        25,
        "power-switch-hangs",
        "ssh to the active dropped, the power switch hangs past its timeout, active's daemon "
        "killed: no takeover while it lasts, fence_failed alert, takeover after the heal",
        Expectation("forbidden-during-fault", 25, require_alert=True),
        _power_hangs,
    ),
    Scenario(
        26,
        "peer-link-and-unhealthy",
        "the mail1-mail2 link cut and the active's service failing at once: power-fence, "
        "failover to the healthy node",
        Expectation("required", 20, 1),
        _peer_link_and_unhealthy,
    ),
    Scenario(
        27,
        "standby-unhealthy-active-dies",
        "the standby unhealthy when the active is powered off: no takeover by the unhealthy "
        "standby; takeover once it is healthy again",
        Expectation("forbidden-during-fault", 20, 1),
        _standby_unhealthy,
    ),
    Scenario(
        28,
        "service-frozen-mid-data",
        "the active's mail service frozen after DATA, before its reply; resumed after the "
        "takeover: its late write must not land",
        Expectation("required", 20, 1),
        _service_mid_data,
    ),
    Scenario(
        29,
        "daemon-cpu-starved",
        "the active's failoverd held to 5% of a core (cgroup cpu quota) for 20 s: no failover",
        Expectation("forbidden", 10),
        _starved,
        exclusive=True,
    ),
    Scenario(
        30,
        "state-dir-read-only",
        "the active's state dir remounted read-only for 12 s: the settled active keeps "
        "serving (same node and epoch, outage <= 0.5 s), the daemons report exactly it active",
        Expectation("forbidden", 2, max_outage=0.5),
        _state_ro,
    ),
    Scenario(
        31,
        "store-full",
        "the shared mail store full for 10 s: not a node failure (the standby shares the "
        "store), so no failover; every delivery in it gets a 4xx (452), never 250 unstored; "
        "no acked mail lost; delivery resumes once space is freed",
        Expectation("forbidden", 10, tempfail_during_fault=True),
        _store_full,
    ),
    Scenario(
        32,
        "freeze-before-start",
        "as 15, but the standby frozen past T at its resource_starting line (trigger: lease "
        "re-checked, the start command next), the old active woken first: at most one serves",
        Expectation("allowed", 25, 2),
        _freeze_promoting,
        trigger="resource_starting@standby",
    ),
]
