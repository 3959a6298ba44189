"""The lease's timing budget, checked across sections once they are parsed."""

from __future__ import annotations

from dataclasses import dataclass

from failoverd.config.model import Config
from failoverd.config.reading import Findings, secs

# The daemon's stop as a whole gets this much beyond the sum of the resources' stop
# timeouts: each stop is bounded by its own timeout, and the worker running them
# needs a moment to hand the outcome back (node/transitions.py, stop_budget).
STOP_SLACK = 5.0
# Hooks queued by the last demotion get this long at exit before they are killed
# (observe/hooks.py, HookRunner.stop).
HOOKS_GRACE = 5.0


def call_timeout(session_timeout: float) -> float:
    """The deadline of one ZooKeeper call the daemon makes (half a session: an
    answer later than that is from a session that may be gone)."""
    return max(1.0, session_timeout / 2)


@dataclass(frozen=True)
class ShutdownTime:
    """How long `systemctl stop failoverd` may take on the active: it stops every
    resource in reverse order, marks the breadcrumb clean and releases the lease
    (one ZooKeeper call each), then lets the demotion's hooks finish. A stop that
    arrives during a takeover waits for the takeover first; that is not counted."""

    # The sum of the resources' stop timeouts: one after another without `after:`;
    # with it they may stop in parallel, and the sum stays a safe upper bound (the
    # longest chain of waits, config/order.py's Order.longest, is never more).
    resources: float
    zookeeper: float  # marking the breadcrumb clean, releasing the lease

    @property
    def total(self) -> float:
        return self.resources + STOP_SLACK + self.zookeeper + HOOKS_GRACE

    def parts(self) -> str:
        return (
            f"the resources' stop timeouts {secs(self.resources)} + {secs(STOP_SLACK)}, "
            f"ZooKeeper {secs(self.zookeeper)}, hooks {secs(HOOKS_GRACE)}"
        )


def shutdown_time(c: Config) -> ShutdownTime:
    return ShutdownTime(
        resources=sum(r.timeout for r in c.resources),
        zookeeper=2 * call_timeout(c.zookeeper.session_timeout),
    )


def check_timing(c: Config, found: Findings) -> None:
    """The lease's timing budget: errors where the lease would be unsafe, notes
    where safety rests on fencing or failover may come sooner or later than expected."""
    session, margin = c.zookeeper.session_timeout, c.zookeeper.lease_margin
    st = f"zookeeper.session_timeout ({secs(session)})"
    if found.ok("zookeeper.session_timeout") and not 1.0 <= session <= 120.0:
        why = "ZooKeeper's minimum is 2 ticks, and a longer one delays every failover"
        found.problem(
            "zookeeper.session_timeout", f"must be 1s to 120s ({why}), got {secs(session)}"
        )
    elif found.ok("zookeeper.lease_margin") and margin > session / 2:
        found.problem(
            "zookeeper.lease_margin",
            f"{secs(margin)} is more than half of {st}: it must be at most {secs(session / 2)} "
            "so the lease is renewed at least twice before it lapses",
        )
    stop = sum(r.timeout for r in c.resources)  # one after another; with after: a bound
    if stop > margin:
        found.note(
            "resources",
            f"may take up to {secs(stop)} to stop but the lease margin is only {secs(margin)}: "
            "a partitioned active may still be stopping when its session expires; "
            "fencing the old active is what keeps this safe",
        )
    h = c.health
    if h.checks and h.interval * h.fall < session:
        found.note(
            "health",
            f"health.interval ({secs(h.interval)}) x health.fall ({h.fall}) is shorter than {st}: "
            "health failover reacts faster than ZooKeeper liveness, "
            "so a brief stall (load spike, I/O pause) could cause a failover",
        )
    if not h.checks:
        found.note("health.checks", "none: the active is replaced only if its session expires")
    if c.switchover.timeout <= session:
        found.note(
            "switchover.timeout",
            f"{secs(c.switchover.timeout)} is not longer than {st}: a switchover stops resources "
            "here and starts them on the peer, so it may time out while it still completes",
        )
    _check_lease_wait(c, found)


def _check_lease_wait(c: Config, found: Findings) -> None:
    kinds = [f.type for f in c.fencing]
    if "lease-wait" not in kinds or not c.watchdog or not c.watchdog.device:
        return  # without a watchdog device lease-wait is already a problem
    at = f"fencing[{kinds.index('lease-wait')}]"
    wait = c.zookeeper.session_timeout + c.watchdog.timeout + c.zookeeper.lease_margin
    only = "the only fencing method; " if set(kinds) == {"lease-wait"} else ""
    found.note(
        at,
        f"{only}a takeover by lease-wait waits {secs(wait)} (session_timeout + watchdog.timeout "
        "+ lease_margin) and is safe only if every member runs a watchdog device; "
        "this file cannot check the peers', so lease-wait refuses a peer whose member "
        "status does not show one armed with a timeout no longer than watchdog.timeout",
    )
    if kinds[-1] != "lease-wait":
        found.note(at, "lease-wait always succeeds, so the methods after it never run")
