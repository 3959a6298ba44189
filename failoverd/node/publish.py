"""What this node tells others about itself: its member znode, its HTTP view, its metrics.

The loop calls `write_member` after every role change and `report` once per cycle;
both only publish, never decide. Publishing must never break a transition, so a
failure to work out the node's eligibility is logged and published as "unknown",
and a failed ZooKeeper write is retried on the next call (the last written status
is remembered, so an unchanged status costs no write).

The seam to the loop: the node's shared state (`NodeState`), the collaborators
whose state is published (passed in), and three reads that belong to the loop:
its current observation, its members as last read, and its ZooKeeper deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import structlog

from failoverd import __version__
from failoverd.config import Config
from failoverd.fencing.marker import FenceMarker
from failoverd.fencing.readiness import FenceReadiness
from failoverd.health import HealthMonitor
from failoverd.node.decision import Observation, Role, floor_anomalous
from failoverd.node.eligibility import Eligibility, eligibility, wall_deadline
from failoverd.node.membership import MembershipRecord
from failoverd.node.notify import Watchdog
from failoverd.node.state import NodeState
from failoverd.observe.endpoints import NodeView, StatusServer
from failoverd.observe.metrics import Metrics
from failoverd.release import commit
from failoverd.zk.coordinator import CoordinationError, Coordinator
from failoverd.zk.lease import LocalLease, boottime
from failoverd.zk.znodes import MemberStatus, now_iso

# The daemon's logger: these lines were the daemon's and read the same as before.
log = structlog.get_logger("failoverd.node.daemon")


class Publisher:
    """Publishes the node's status (member znode), its view (HTTP) and its metrics."""

    def __init__(
        self,
        state: NodeState,
        *,
        config: Config,
        coord: Coordinator,
        lease: LocalLease,
        marker: FenceMarker,
        membership: MembershipRecord,
        health: HealthMonitor,
        readiness: FenceReadiness,
        watchdog: Watchdog,
        http: StatusServer,
        metrics: Metrics,
        observe: Callable[[float], Observation],
        members: Callable[[], dict[str, MemberStatus | None]],
        read_timeout: Callable[[], float],
    ):
        self.state = state
        # Only node.name, node.address, node.priority and cluster are read here: a
        # reload (SIGHUP) applies logging only and leaves them alone.
        self.config = config
        self.node = config.node.name
        self.coord = coord
        self.lease = lease
        self.marker = marker
        self.membership = membership
        self.health = health
        self.readiness = readiness
        self.watchdog = watchdog
        self.http = http
        self.metrics = metrics
        self.observe = observe
        self.members = members
        self.read_timeout = read_timeout
        self.member_written: tuple[Any, ...] | None = None
        # (role, reason, when they were set): the member's `since`, which status shows
        # as the age of LAST TRANSITION. Stamped only when they change: the znode is
        # written again whenever health, eligibility or fence readiness change, and a
        # standby whose start failed hours ago must not look as if it just failed.
        self.transition: tuple[Role, str, str] | None = None
        self.requests_reported_before = 0
        self.backoff_wall: tuple[float, str] = (0.0, "")  # (backoff_until, its wall time)

    def forget_written(self) -> None:
        """A new session: the member znode is written again even if nothing changed."""
        self.member_written = None

    def write_member(self) -> None:
        try:
            elig = self.eligibility()
            self.publish_view(elig)
        except Exception:  # noqa: BLE001 - reporting must never break a transition
            log.exception("eligibility_failed")
            elig = Eligibility(False, "unknown: this node could not work out its eligibility")
        role = (self.state.role, self.state.reason)
        if self.transition is None or self.transition[:2] != role:
            self.transition = (*role, now_iso())  # even if it cannot be written now
        if not self.coord.connected:
            return
        # Floors for the epoch after a loss of ZooKeeper's data (membership.py).
        fence_epoch = self.marker.published_epoch()
        self.membership.saw(self.highest_epoch_seen())
        seen_epoch = self.membership.seen_epoch or None
        state = self.state
        key: tuple[Any, ...] = (state.role, self.health.healthy, state.epoch, state.reason)
        key += (state.control.maintenance, fence_epoch, seen_epoch)
        fence_ready = self.readiness.summary()
        fence_paths = self.readiness.results()
        key += (tuple(sorted(fence_ready.items())), repr(fence_paths))
        key += (elig, self.watchdog.published(), self.http.bind_error)
        if key == self.member_written:
            return
        status = MemberStatus(
            node=self.node,
            role=str(self.state.role),
            healthy=self.health.healthy,
            epoch=self.state.epoch,
            version=__version__,
            commit=commit(),
            address=self.config.node.address,
            maintenance=self.state.control.maintenance,
            reason=self.state.reason,
            since=self.transition[2],
            priority=self.config.node.priority,
            fence_ready=fence_ready,
            fence_paths=fence_paths,
            fence_epoch=fence_epoch,
            seen_epoch=seen_epoch,
            eligible=elig.eligible,
            why=elig.why,
            watchdog=self.watchdog.published(),
            endpoint_error=self.http.bind_error,
        )
        try:
            self.coord.write_member(status, self.read_timeout())
        except CoordinationError as e:
            log.warning("zookeeper_call_failed", operation="writing member status", error=str(e))
            return
        self.member_written = key

    def highest_epoch_seen(self) -> int:
        """What this node remembers as the highest epoch used. A peer's remembered
        epoch far above ZooKeeper's is not taken over: it names no takeover, and
        remembered here it would only spread the anomaly (decision.plan_epoch)."""
        known = [self.state.epoch or 0]
        for m in self.members().values():
            if m is not None:
                known += [m.epoch or 0]
                if not floor_anomalous(m.seen_epoch or 0, self.state.zookeeper_epoch):
                    known += [m.seen_epoch or 0]
        return max(known)

    def eligibility(self) -> Eligibility:
        """This node's eligibility as the member znode and HTTP publish it. The back-off's
        wall-time deadline is computed once per back-off, so a countdown never changes it."""
        now = time.monotonic()
        if self.backoff_wall[0] != self.state.backoff_until:
            self.backoff_wall = (
                self.state.backoff_until,
                wall_deadline(self.state.backoff_until, now, time.time()),
            )
        failing = tuple(r.name for r in self.health.results if not r.ok)
        return eligibility(
            self.observe(now),
            failing,
            self.backoff_wall[1],
            fence_paths_down=self.readiness.paths_down(),
        )

    def publish_view(self, elig: Eligibility) -> None:
        """The snapshot the HTTP endpoints answer from (failoverd.observe.endpoints)."""
        active = self.state.role is Role.ACTIVE
        lease_left = self.lease.remaining() if active else 0.0
        self.http.publish(
            NodeView(
                node=self.node,
                cluster=self.config.cluster,
                role=str(self.state.role),
                epoch=self.state.epoch,
                healthy=self.health.healthy,
                eligible=elig.eligible,
                why=elig.why,
                maintenance=self.state.control.maintenance,
                reason=self.state.reason,
                version=__version__,
                priority=self.config.node.priority,
                lease_holder=self.node if active else self.state.lock_holder,
                lease_deadline=boottime() + lease_left if lease_left > 0 else None,
            )
        )

    def report(self) -> None:
        """Once per loop cycle: the metrics, then the member status if it changed."""
        requests = self.coord.requests  # ZooKeeper requests per daemon (benchmarks)
        self.metrics.zk_request(requests - self.requests_reported_before)
        self.requests_reported_before = requests
        self.metrics.set_lease_remaining(self.lease.remaining())
        self.metrics.set_healthy(self.health.healthy)
        for r in getattr(self.health, "results", []) or []:
            self.metrics.set_health(r.name, r.ok, r.took)
        self.write_member()
