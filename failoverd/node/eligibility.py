"""Could this node take over now? (A member's `eligible` and `why`.)

A pure function of the daemon's Observation, like the decisions in decision.py,
so `failoverctl status`, `GET /standby` and the member znode all say the same
thing the decision logic acts on. Only a standby can be eligible: a node in any
other role is either already active or in the middle of a transition.

The answer is published in the member znode only when it changes, so nothing in
it may change by itself from one tick to the next: a back-off is named by its
deadline in wall time (which the daemon computes once per back-off), never by
the seconds left.

Operator requests (requests.py) show here too: a standby that stands aside for a
valid request is not eligible, and says for whom; a request this node ignores is
named in `why` even while the node is eligible, so an operator who wrote one sees
that nobody acts on it. That is the one case of a `why` next to `eligible: true`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from failoverd.node.decision import Observation, Role, early_retry_pending, retries_early


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    why: str  # one sentence when not eligible; "" when eligible


ELIGIBLE = Eligibility(True, "")


def eligibility(
    o: Observation,
    failing_checks: Sequence[str] = (),
    backoff_until_wall: str = "",
    fence_paths_down: Sequence[str] = (),
) -> Eligibility:
    """Whether this node could take the lease and promote now if it were free.

    `failing_checks`: names of the health checks whose last run failed;
    `backoff_until_wall`: the back-off's deadline for humans (ISO time);
    `fence_paths_down`: peers that no configured fencing method reaches now
    (fence readiness; empty while unknown)."""
    own = _eligibility(o, failing_checks, backoff_until_wall, fence_paths_down)
    if own.eligible:
        aside = standing_aside(o)
        if aside:
            own = Eligibility(False, aside)
    notes = [c.sentence() for c in o.requests.ignored]
    if not notes:
        return own
    return Eligibility(own.eligible, "; ".join(([own.why] if own.why else []) + notes))


def standing_aside(o: Observation) -> str:
    """Why this standby leaves a free lease to the target of a valid request ("" when
    it does not), as decision.py's standby branch does."""
    if o.role is not Role.STANDBY:
        return ""
    if o.failover_to not in (None, o.node):
        check = o.requests.valid("failover")
    elif o.failover_to is None and o.switchover_pending and o.switchover_to not in (None, o.node):
        check = o.requests.valid("switchover")
    else:
        return ""
    if check is None:  # an Observation built without its requests (tests)
        target = o.failover_to or o.switchover_to
        return f"standing aside: a request to hand over to {target} is pending"
    return f"standing aside: {check.sentence()}"


def _eligibility(
    o: Observation,
    failing_checks: Sequence[str],
    backoff_until_wall: str,
    fence_paths_down: Sequence[str],
) -> Eligibility:
    if o.role is Role.ACTIVE:
        return Eligibility(False, "it is the active node")
    if o.role is not Role.STANDBY:
        return Eligibility(False, f"it is {o.role}, not a standby")
    if not o.connected:
        return Eligibility(False, "it is not connected to ZooKeeper")
    # The order follows how long each condition takes to clear: what needs an
    # operator first, then what passes by itself.
    if o.dirty:
        why = o.dirty_reason or "its resources could not be stopped"
        return Eligibility(False, f"it is dirty: {why}, so it must be fenced first")
    if o.fenced:
        return Eligibility(False, "its local fence marker is unreadable, which blocks every epoch")
    if o.marker_anomaly:
        return Eligibility(False, o.marker_anomaly)
    if o.watchdog_problem:
        return Eligibility(False, o.watchdog_problem)
    if o.maintenance:
        return Eligibility(False, "maintenance mode is on: no automatic takeover")
    if not o.healthy:
        if failing_checks:
            names = ", ".join(failing_checks)
            plural = "s" if len(failing_checks) > 1 else ""
            return Eligibility(False, f"health check{plural} failing: {names}")
        return Eligibility(False, "its health checks have not passed often enough yet (rise)")
    if fence_paths_down:
        return Eligibility(False, f"no working fencing path to {', '.join(fence_paths_down)}")
    if o.now < o.backoff_until and not retries_early(o):
        until = f" until {backoff_until_wall}" if backoff_until_wall else ""
        why = f"backing off{until} after a demotion or a failed takeover"
        if early_retry_pending(o):
            why += "; while nobody serves it retries sooner"
        return Eligibility(False, why)
    return ELIGIBLE


def wall_deadline(deadline: float, now: float, wall_now: float) -> str:
    """A monotonic `deadline` as UTC wall time to the second, for humans (`why`)."""
    from datetime import UTC, datetime

    at = datetime.fromtimestamp(wall_now + max(0.0, deadline - now), UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")
