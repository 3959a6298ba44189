"""The lease's timing budget, checked across sections once they are parsed."""

from __future__ import annotations

from failoverd.config.model import Config
from failoverd.config.reading import Findings, secs


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
    stop = sum(r.timeout for r in c.resources)  # resources stop one after another
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
