"""The decisions, as pure functions: observation in, action and reason out.

Nothing here does I/O or reads a clock; the daemon gathers an Observation, asks,
and carries the answer out. Every answer carries one human sentence, which the
daemon logs, so the 3 a.m. reader sees *why*.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from failoverd.node.requests import NO_REQUESTS, Requests
from failoverd.zk.znodes import (
    EPOCH_CEILING,
    EPOCH_FLOOR_SLACK,
    Breadcrumb,
    KnownEpochs,
    LocalFloor,
    MemberStatus,
)


class Role(StrEnum):
    INIT = "init"
    STANDBY = "standby"
    FENCING = "fencing"
    PROMOTING = "promoting"
    ACTIVE = "active"
    DEMOTING = "demoting"
    STOPPED = "stopped"


class Act(StrEnum):
    WAIT = "wait"  # standby: do not contend now
    CONTEND = "contend"  # standby: try to create the lock
    STAY = "stay"  # active: keep serving
    DEMOTE = "demote"  # active: stop resources, mark clean if possible, release
    RELEASE_STRAY_LOCK = "release_stray_lock"  # a lock our session holds but we never acted on


@dataclass(frozen=True)
class Decision:
    act: Act
    reason: str
    # Short, bounded code for metrics and history (e.g. "lease_lost", "health").
    code: str = ""
    # After a demotion: seconds before this node may contend again.
    backoff: float = 0.0
    # The reason without its countdown ("backing off"), where the reason carries one:
    # the loop decides again every tick, and the same wait with less time left is
    # no new decision to log.
    gist: str = ""

    def same_as(self, other: Decision | None) -> bool:
        """The same decision, whatever time it says is left."""
        return other is not None and (self.act, self.code, self.gist or self.reason) == (
            other.act,
            other.code,
            other.gist or other.reason,
        )


# Demotions of a node that has lost its right to serve: its local lease ran out, its
# session no longer holds the lock, or a peer fenced it. A peer may already be
# fencing it or waiting out its lease to start the same services.
_FENCE_CODES = frozenset({"lease_lost", "lock_lost", "fenced"})


def stop_is_fence(code: str, lease_valid: bool) -> bool:
    """Whether a demotion stops its resources as a fence does (their fast path,
    `kill`) rather than gracefully. A node that lost its right to serve is racing
    the peer that takes over: its stop *is* the fence, and a graceful shutdown only
    lengthens the race. A switchover, a failing health check, a watchdog problem
    and `systemctl stop failoverd` still hold the lease: they stop gracefully, and
    the peer waits for that stop (the clean breadcrumb) rather than fencing."""
    return code in _FENCE_CODES or not lease_valid


@dataclass(frozen=True)
class Observation:
    now: float  # monotonic seconds
    node: str
    role: Role
    connected: bool
    lease_valid: bool
    lease_remaining: float
    # Who the lock znode names: None = no lock; "" = unreadable content.
    lock_holder: str | None
    # The lock exists and its ephemeralOwner is our *current* session.
    lock_is_ours: bool
    # The local fence marker blocks our current epoch (we were fenced), or is unreadable.
    fenced: bool
    healthy: bool
    maintenance: bool
    backoff_until: float
    # When the lock was first seen free (monotonic), for the priority delay.
    lock_free_since: float | None
    priority_delay: float  # priority * node.priority_delay
    # A peer that could take over: connected, healthy, not in maintenance, a
    # standby — and, during a switchover with a named target, that target.
    healthy_peer: bool
    # A pending operator request that passed this node's checks (requests.py: not
    # expired, a target that is there and could take over, at most one of the two):
    # its target (None = any). Only these move anyone or make anyone stand aside.
    switchover_to: str | None
    switchover_pending: bool
    failover_to: str | None  # forced failover target, pending
    # Our own health demotions within the flap window reached flap.max_failovers.
    flap_limited: bool
    # Our resources could not be stopped: we must never contend (and should be fenced).
    dirty: bool
    flap_backoff: float
    # After a failed takeover (state.py: `early_retry_at`): when this node may try
    # again before `backoff_until`, provided nobody serves. None: no early retry.
    early_retry_at: float | None = None
    # Another member publishes a role in which it may serve (SERVING_ROLES).
    member_serving: bool = False
    # Why dirty, when it is an abandoned operation (failoverd/resources/abandoned.py).
    dirty_reason: str = ""
    # Active: a resource whose status says it stopped underneath us (resource_watch.py).
    resource_lost: str | None = None
    # Why the configured watchdog device is not armed ("" when it is, or when none is
    # configured): failoverd/node/notify.py, Watchdog.problem.
    watchdog_problem: str = ""
    # Why this node's own fence marker keeps it from serving although it is readable:
    # far above every epoch ZooKeeper shows (marker_anomaly), "" when it is not.
    marker_anomaly: str = ""
    # Every request in `control` with the verdict on it, valid or ignored: for `why`
    # (eligibility.py). The decisions read only the three fields above.
    requests: Requests = NO_REQUESTS


def decide(o: Observation) -> Decision:
    if o.role is Role.ACTIVE:
        return _decide_active(o)
    if o.role is Role.STANDBY:
        return _decide_standby(o)
    if o.role in (Role.FENCING, Role.PROMOTING, Role.DEMOTING):
        return _decide_stuck(o)
    return Decision(Act.WAIT, f"in transition ({o.role})", "transition")


def _decide_stuck(o: Observation) -> Decision:
    """A transitional role seen by the loop. Transitions run to completion inside
    one loop cycle, so the loop only sees one when a transition was cut short: it
    must never stay there (the lease keeper would renew forever and nothing would
    serve). Demoting stops whatever started and releases the lock."""
    if not o.lease_valid:
        return Decision(
            Act.DEMOTE,
            f"demoting: stuck in {o.role} and the local lease is gone",
            "lease_lost",
            backoff=o.flap_backoff,
        )
    return Decision(
        Act.DEMOTE,
        f"demoting: a transition was cut short in {o.role}",
        "transition_failed",
        backoff=o.flap_backoff,
    )


def _decide_active(o: Observation) -> Decision:
    # Safety first: these hold regardless of maintenance or health.
    if not o.lease_valid:
        return Decision(
            Act.DEMOTE,
            "demoting: the local lease ran out (no ZooKeeper round trip in time); "
            "the session may expire and a peer may take over",
            "lease_lost",
        )
    if not o.lock_is_ours:
        return Decision(
            Act.DEMOTE, "demoting: the lock is no longer held by our session", "lock_lost"
        )
    if o.fenced:
        return Decision(Act.DEMOTE, "demoting: a peer fenced this node (fence marker)", "fenced")
    if o.watchdog_problem:
        # A peer's lease-wait trusts this device to reset the machine should the
        # daemon freeze, on the word of the member status it read last, which may
        # still say "armed": frozen now, this node would keep serving next to the
        # peer that waited it out. Not even maintenance or a lone node changes that.
        return Decision(
            Act.DEMOTE, f"demoting: {o.watchdog_problem}", "watchdog", backoff=o.flap_backoff
        )
    if o.switchover_pending and o.switchover_to != o.node:
        target = o.switchover_to or "any healthy standby"
        if not o.healthy_peer:
            return Decision(
                Act.STAY, f"switchover refused: {target} is not a healthy, connected standby", ""
            )
        # The daemon backs off for the request's timeout, so that it resumes only if
        # nobody took over.
        return Decision(Act.DEMOTE, f"demoting for a switchover to {target}", "switchover")
    if o.maintenance:
        return Decision(Act.STAY, "maintenance mode: no automatic transitions", "")
    if o.resource_lost is not None:
        return _decide_resource_lost(o, o.resource_lost)
    if not o.healthy:
        if o.flap_limited:
            return Decision(
                Act.STAY,
                "health checks fail but the flap limit is reached: staying active, operator needed",
                "flap_limit",
            )
        if not o.healthy_peer:
            return Decision(
                Act.STAY,
                "health checks fail but no healthy standby could take over: staying active",
                "no_healthy_peer",
            )
        return Decision(
            Act.DEMOTE,
            "demoting: health checks fail and a healthy standby can take over",
            "health",
            backoff=o.flap_backoff,
        )
    return Decision(Act.STAY, "active and healthy", "")


def _decide_resource_lost(o: Observation, name: str) -> Decision:
    """A resource stopped underneath the active (a fence-self from an older fence,
    a crash). Unlike failing health checks, this is no opinion about a busy
    node: "active" with nothing running serves nobody, so it demotes even without
    a healthy standby, and then with no back-off, so that it may take the lease
    again at once and restart its resources. Maintenance still freezes this (an
    operator may stop Postfix on purpose), and it counts towards the flap limit
    like a health demotion: a service that keeps dying after every restart or
    failover needs an operator, not more flapping."""
    what = f"{name} stopped underneath this node (resource status)"
    if o.flap_limited:
        return Decision(
            Act.STAY, f"{what}, but the flap limit is reached: operator needed", "flap_limit"
        )
    return Decision(
        Act.DEMOTE,
        f"demoting: {what}",
        "resource_lost",
        backoff=o.flap_backoff if o.healthy_peer else 0.0,
    )


def _decide_standby(o: Observation) -> Decision:
    if o.lock_is_ours:
        # A create that timed out on our side but ran on the server later (kazoo sends
        # requests queued across a reconnect once it is back): we hold the lease
        # without acting on it. Give it back.
        return Decision(
            Act.RELEASE_STRAY_LOCK,
            "releasing a lock our session holds but never used",
            "stray_lock",
        )
    if not o.connected:
        return Decision(Act.WAIT, "not connected to ZooKeeper", "")
    if o.lock_holder is not None:
        who = o.lock_holder or "an unreadable holder"
        return Decision(Act.WAIT, f"{who} holds the lease", "")
    if o.dirty:
        why = o.dirty_reason or "local resources could not be stopped"
        return Decision(Act.WAIT, f"not contending: {why}", "dirty")
    if o.fenced:
        return Decision(Act.WAIT, "not contending: the fence marker is unreadable", "fenced")
    if o.marker_anomaly:
        # Winning would only fence the peers: the marker refuses every epoch a
        # takeover would take now (plan_epoch does not follow it).
        return Decision(Act.WAIT, f"not contending: {o.marker_anomaly}", "fenced")
    if o.watchdog_problem:
        return Decision(Act.WAIT, f"not contending: {o.watchdog_problem}", "watchdog")
    forced = o.failover_to is not None
    if forced and o.failover_to != o.node:
        return Decision(Act.WAIT, f"standing aside: forced failover to {o.failover_to} pending", "")
    if not forced:
        if o.maintenance:
            return Decision(Act.WAIT, "maintenance mode: no automatic takeover", "")
        if not o.healthy:
            return Decision(Act.WAIT, "not contending: health checks fail", "")
        if o.switchover_pending and o.switchover_to not in (None, o.node):
            return Decision(
                Act.WAIT, f"standing aside: switchover to {o.switchover_to} pending", ""
            )
        if o.now < o.backoff_until and not retries_early(o):
            if early_retry_pending(o) and o.early_retry_at is not None:
                left = o.early_retry_at - o.now
                return Decision(
                    Act.WAIT,
                    f"backing off for {left:.1f}s more (nobody serves: retrying early)",
                    "",
                    gist="backing off",
                )
            left = o.backoff_until - o.now
            return Decision(Act.WAIT, f"backing off for {left:.1f}s more", "", gist="backing off")
        targeted = o.switchover_pending and o.switchover_to == o.node
        # priority 0 contends at once, even when the lock was seen free
        # after this cycle began (lock_free_since is taken after the read's answer).
        if not targeted and o.lock_free_since is not None and o.priority_delay > 0:
            waited = o.now - o.lock_free_since
            if waited < o.priority_delay:
                left = o.priority_delay - waited
                return Decision(
                    Act.WAIT, f"priority delay: {left:.1f}s more", "", gist="priority delay"
                )
    if not forced and o.now < o.backoff_until:
        return Decision(
            Act.CONTEND,
            "the lease is free and nobody serves: retrying a failed takeover early",
            "takeover",
        )
    return Decision(Act.CONTEND, "the lease is free: contending", "takeover")


# The roles in which a member may be serving, or about to: judged by what it
# publishes, so a member that is promoting counts as much as an active one.
SERVING_ROLES = frozenset({Role.FENCING, Role.PROMOTING, Role.ACTIVE, Role.DEMOTING})


def early_retry_pending(o: Observation) -> bool:
    """A failed takeover of this node may be retried before its back-off ends:
    nobody holds the lock and no other member publishes a serving role."""
    return o.early_retry_at is not None and o.lock_holder is None and not o.member_serving


def retries_early(o: Observation) -> bool:
    """The early retry is due (early_retry_pending, and its time has come)."""
    return early_retry_pending(o) and o.early_retry_at is not None and o.now >= o.early_retry_at


def early_retry(failures: int, session_timeout: float, backoff: float) -> float:
    """How long after its `failures`-th failed takeover in a row a node retries
    while nobody serves: T, 2T, 4T, ... (T the session timeout), never longer than
    the full back-off.

    The full back-off is for flapping between live nodes; with nobody serving, each
    second of it is an outage. T is the pace of the cluster itself: a lost active is
    replaced after about T, so retrying sooner gains little, and it leaves a peer
    that is faster to recover its turn first. The doubling bounds the cost of a
    failure that does not pass (a fence that keeps failing is tried at most
    log2(backoff / T) more times before the full back-off holds again)."""
    doublings = min(max(failures - 1, 0), 32)  # 2**32 * T is past any back-off
    return min(session_timeout * 2**doublings, backoff)


def active_member(node: str, members: dict[str, MemberStatus | None]) -> str | None:
    """Another member that publishes role active, if any: it serves."""
    for name, m in members.items():
        if name != node and m is not None and m.role == Role.ACTIVE:
            return name
    return None


def others_serving(node: str, members: dict[str, MemberStatus | None]) -> list[str]:
    """The other members whose published role may be serving (SERVING_ROLES)."""
    return [
        name
        for name, m in members.items()
        if name != node and m is not None and m.role in SERVING_ROLES
    ]


@dataclass(frozen=True)
class FencePlan:
    targets: tuple[str, ...]
    reason: str
    # False when the takeover must not go ahead at all (e.g. the previous active
    # is not a member we know how to fence).
    possible: bool = True


def plan_fencing(
    breadcrumb: Breadcrumb | None, readable: bool, node: str, peers: tuple[str, ...]
) -> FencePlan:
    """Whom the new lease holder must fence before it promotes.

    `breadcrumb` None with `readable` True means the znode does not exist. Only a
    breadcrumb that names a node (or the clean initial one) narrows "every peer":
    missing, unreadable and an epoch floor all mean the previous active is unknown."""
    if not readable:
        return FencePlan(
            peers, "breadcrumb unreadable: previous active unknown, fencing every peer"
        )
    if breadcrumb is None:
        return FencePlan(peers, "breadcrumb missing: previous active unknown, fencing every peer")
    if breadcrumb.previous_unknown:
        # An epoch floor (failoverctl restore): a backup's breadcrumb may predate
        # later takeovers, so it tells how high epochs went, never who was active.
        return FencePlan(
            peers,
            f"breadcrumb names no previous active (epochs so far <= {breadcrumb.epoch}): "
            "previous active unknown, fencing every peer",
        )
    if breadcrumb.node is None:
        return FencePlan((), "no node has ever been active: nothing to fence")
    if breadcrumb.clean:
        return FencePlan((), f"{breadcrumb.node} handed over cleanly: no fencing needed")
    if breadcrumb.node == node:
        # Our own resources were stopped at start-up or at our demotion; a node whose
        # stop failed never contends (Observation.dirty).
        return FencePlan((), "the previous active was this node: its resources are stopped")
    if breadcrumb.node not in peers:
        return FencePlan(
            (),
            f"previous active {breadcrumb.node!r} is not a configured peer: cannot fence it",
            possible=False,
        )
    return FencePlan(
        (breadcrumb.node,),
        f"{breadcrumb.node} was active (epoch {breadcrumb.epoch}) and did not hand over cleanly",
    )


class EpochExhausted(ValueError):
    """The next epoch would reach EPOCH_CEILING: the takeover must not go ahead."""


def next_epoch(
    breadcrumb: Breadcrumb | None, readable: bool, znode_version: int | None, floor: int = 0
) -> int:
    """The epoch a new active takes: one above every epoch we can see.

    A readable breadcrumb's epoch never exceeds its znode's data version (each
    promotion adds one to both), so when the breadcrumb is garbled the version is
    a safe stand-in. `floor` is the highest epoch seen elsewhere (history, members),
    so even a deleted breadcrumb cannot make the epoch go backwards.

    Raises EpochExhausted at EPOCH_CEILING and above: an epoch there was made up,
    and one more step toward EPOCH_LIMIT would write a breadcrumb that no reader
    decodes (and member statuses, and markers that fence-self refuses)."""
    epoch = max(_zookeeper_epoch(breadcrumb, readable, znode_version), floor) + 1
    if epoch >= EPOCH_CEILING:
        raise EpochExhausted(
            f"the next epoch would be {epoch}, at or above the ceiling {EPOCH_CEILING} "
            "(2^52): no takeover ever counts this high, so an epoch in ZooKeeper or a "
            "member's floor was made up"
        )
    return epoch


def _zookeeper_epoch(breadcrumb: Breadcrumb | None, readable: bool, version: int | None) -> int:
    if readable and breadcrumb is not None:
        return breadcrumb.epoch
    return version or 0


@dataclass(frozen=True)
class EpochPlan:
    """The epoch a new active takes (None: none is left, the takeover is abandoned;
    `why` says so), the highest epoch ZooKeeper shows, and the members' local floors
    not followed because they are far above it."""

    epoch: int | None
    zookeeper: int
    ignored: tuple[LocalFloor, ...] = ()
    why: str = ""


def plan_epoch(
    breadcrumb: Breadcrumb | None, readable: bool, znode_version: int | None, known: KnownEpochs
) -> EpochPlan:
    """next_epoch over what ZooKeeper shows and the members' local floors.

    A local floor (a fence marker, a remembered seen_epoch) carries epochs across a
    loss of ZooKeeper's data; one more than EPOCH_FLOOR_SLACK above ZooKeeper's
    highest epoch names an epoch no takeover used: followed, one fence-self with a
    made-up epoch would push every later epoch to the ceiling. Not following it
    is safe: a node whose marker refuses the epoch taken still never serves it
    (Transitions checks its own marker before fencing and before each start), so
    such a node cannot serve until an operator removes its marker."""
    zookeeper = max(_zookeeper_epoch(breadcrumb, readable, znode_version), known.zookeeper)
    ignored = tuple(f for f in known.local if floor_anomalous(f.epoch, zookeeper))
    used = [f.epoch for f in known.local if f not in ignored]
    try:
        epoch = next_epoch(breadcrumb, readable, znode_version, max([known.zookeeper, *used]))
    except EpochExhausted as e:
        return EpochPlan(None, zookeeper, ignored, str(e))
    return EpochPlan(epoch, zookeeper, ignored)


def floor_anomalous(epoch: int, zookeeper_epoch: int) -> bool:
    """A node-local floor too far above ZooKeeper's epoch to be one (EPOCH_FLOOR_SLACK)."""
    return epoch > zookeeper_epoch + EPOCH_FLOOR_SLACK


def marker_anomaly(fence_epoch: int | None, zookeeper_epoch: int) -> str:
    """Why this node's own fence marker keeps it from serving for good, "" if it does not.

    A marker refuses every epoch up to its own; one far above ZooKeeper's epoch is
    not followed (plan_epoch), so epochs never pass it by themselves."""
    if fence_epoch is None or not floor_anomalous(fence_epoch, zookeeper_epoch):
        return ""
    return (
        f"its fence marker is at epoch {fence_epoch}, far above ZooKeeper's {zookeeper_epoch}, "
        "an epoch no takeover used (a made-up fence); the marker refuses every epoch up to "
        "it and epochs do not follow it, so this node cannot serve until an operator "
        "removes its fence marker (state_dir/fence.marker)"
    )


def may_start_resource(lease_valid: bool, lock_is_ours: bool, fenced: bool) -> tuple[bool, str]:
    """Checked immediately before *each* resource start."""
    if not lease_valid:
        return False, "local lease ran out during promotion"
    if not lock_is_ours:
        return False, "lock lost during promotion"
    if fenced:
        return False, "fenced by a peer during promotion"
    return True, ""


def priority_wait(
    mine: tuple[int, str],
    delay: float,
    peers: dict[str, MemberStatus | None],
    seen: set[str],
) -> float:
    """How long a standby waits before contending: `delay` while a preferred peer
    (lower (priority, name)) could take the lease instead, else nothing.

    A peer never seen counts as preferred (at start-up it may be about to
    register); a peer seen before and now gone does not, so a lone standby
    replaces a crashed active at once."""
    for name, m in peers.items():
        if m is None:
            if name not in seen:
                return delay
            continue
        eligible = m.role == Role.STANDBY and m.healthy and not m.maintenance
        if eligible and (m.priority, name) < mine:
            return delay
    return 0.0
