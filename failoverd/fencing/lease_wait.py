"""The lease-wait fencing method: wait until the old holder must have stopped by
itself (its local lease ran out and its watchdog device reset it).

Only as good as that device. The configuration check insists that *this* node has
one, but this file cannot see the target's: so the method trusts only what the
target itself published in its member status while it was alive (WatchdogStatus:
armed, with a timeout no longer than the watchdog.timeout this node waits out).
The member znode is ephemeral and gone by the time the lock is free, so the daemon
remembers the last status each member published (PublishedWatchdogs). A target that
never published one, published an unreadable one, is too old to say, has no device
or a device not armed refuses the method, and the chain moves on to the next.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

from failoverd.fencing.base import FAIL, OK, UNVERIFIED, FenceOutcome, FenceRequest, FenceTarget
from failoverd.zk.znodes import MemberStatus

LEASE_WAIT_STEP = 0.1


class PublishedWatchdogs:
    """What each member last published about its watchdog device, remembered past
    the member's session: a frozen target's status vanishes with its session, which
    is exactly when lease-wait needs it. A status seen unreadable replaces the last
    good one (unknown again); a status that vanished does not."""

    def __init__(self) -> None:
        self._last: dict[str, MemberStatus | None] = {}

    def saw(self, members: Mapping[str, MemberStatus | None]) -> None:
        """The members just read from ZooKeeper (None: unreadable)."""
        self._last.update(members)

    def refusal(self, node: str, assumed: float) -> str | None:
        """Why a lease-wait toward `node` would prove nothing, or None when the node
        said its device is armed with a timeout no longer than `assumed` seconds."""
        nothing = "nothing says a watchdog device resets it"
        if node not in self._last:
            return f"{node} published no member status since this node started: {nothing}"
        status = self._last[node]
        if status is None:
            return f"{node}'s member status was unreadable: {nothing}"
        w = status.watchdog
        if w is None:
            return f"{node} runs a failoverd that does not publish its watchdog device: {nothing}"
        if not w.armed:
            return f"{node} published no armed watchdog device ({w.why or 'no reason given'})"
        if w.timeout is None or w.timeout > assumed:
            timeout = "unknown" if w.timeout is None else f"{w.timeout:g}s"
            return (
                f"{node}'s watchdog timeout ({timeout}) is longer than the watchdog.timeout "
                f"({assumed:g}s) this node waits out"
            )
        return None

    def readiness(self, node: str, assumed: float) -> tuple[str, str]:
        """Fence readiness of a lease-wait toward `node` (OK, UNVERIFIED or FAIL, and
        why): OK only when `node` published an armed device whose timeout fits in
        `assumed`; FAIL when what it published makes the fence refuse; UNVERIFIED
        when nothing readable was seen yet (not started, unreadable status)."""
        why = self.refusal(node, assumed)
        status = self._last.get(node)
        if status is None:
            return UNVERIFIED, f"not verified: {why}"
        w = status.watchdog
        if why is None and w is not None and w.timeout is not None:
            return OK, f"{node} published an armed watchdog device (timeout {w.timeout:g}s)"
        return FAIL, why or "refused"


class LeaseWaitFencer:
    """Waits until the old holder must have stopped by itself.

    From the moment its lock was seen gone: its session expired, so its local lease
    ran out `lease_margin` before that (it demotes on its own) and, if it was frozen,
    its watchdog device reset the machine at most `watchdog_timeout` after its last
    pet, as the target itself published (`published`; refused otherwise). The margin
    is added once more for clock-rate drift between the two machines.

    `published` None (failoverctl's dry run, which keeps no memory of the members):
    check() says how long it would wait; fence() refuses.
    """

    name = "lease-wait"

    def __init__(
        self,
        session_timeout: float,
        watchdog_timeout: float,
        margin: float,
        published: PublishedWatchdogs | None = None,
    ):
        self.watchdog_timeout = watchdog_timeout
        self.wait = session_timeout + watchdog_timeout + margin
        self.published = published

    def _refusal(self, node: str) -> str | None:
        if self.published is None:
            why: str | None = f"this process keeps no record of what {node} published"
        else:
            why = self.published.refusal(node, self.watchdog_timeout)
        return None if why is None else f"refused: {why}"

    def fence(self, req: FenceRequest) -> FenceOutcome:
        t0 = time.monotonic()
        refused = self._refusal(req.target.node)
        if refused is not None:
            return FenceOutcome(self.name, False, refused, 0.0)
        start = req.lock_free_since if req.lock_free_since is not None else t0
        until = start + self.wait
        while (now := time.monotonic()) < until:
            if not req.lease_valid():
                # Waiting longer proves nothing any more: another node may take the
                # lease and become active, and this "fence" would then clear us to
                # start next to it.
                reason = "stopped waiting: this node's own lease ran out"
                return FenceOutcome(self.name, False, reason, time.monotonic() - t0)
            time.sleep(min(LEASE_WAIT_STEP, until - now))
        since = "lock seen gone" if req.lock_free_since is not None else "fencing started"
        return FenceOutcome(
            self.name, True, f"waited out {self.wait:g}s since {since}", time.monotonic() - t0
        )

    def check(self, target: FenceTarget) -> FenceOutcome:
        """OK only when the target published an armed watchdog device (the fence
        would then wait `wait` seconds and be right to); see PublishedWatchdogs."""
        if self.published is None:
            why = f"not verified: this process keeps no record of what {target.node} published"
            return FenceOutcome(self.name, True, why, 0.0, verified=False)
        result, why = self.published.readiness(target.node, self.watchdog_timeout)
        if result == OK:
            why += f"; would wait {self.wait:g}s"
        return FenceOutcome(self.name, result != FAIL, why, 0.0, verified=result == OK)
