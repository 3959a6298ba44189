"""The lease-wait fencing method: wait until the old holder must have stopped by
itself (its local lease ran out and its watchdog fired). Only valid when every
member has a watchdog device; the configuration check insists on it."""

from __future__ import annotations

import time

from failoverd.fencing.base import FenceOutcome, FenceRequest, FenceTarget

LEASE_WAIT_STEP = 0.1


class LeaseWaitFencer:
    """Waits until the old holder must have stopped by itself.

    From the moment its lock was seen gone: its session expired, so its local lease
    ran out `lease_margin` before that (it demotes on its own) and, if it was frozen,
    its watchdog reset the machine `watchdog.timeout` after its last pet. The margin
    is added once more for clock-rate drift between the two machines.
    """

    name = "lease-wait"

    def __init__(self, session_timeout: float, watchdog_timeout: float, margin: float):
        self.wait = session_timeout + watchdog_timeout + margin

    def fence(self, req: FenceRequest) -> FenceOutcome:
        t0 = time.monotonic()
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
        return FenceOutcome(self.name, True, f"would wait {self.wait:g}s", 0.0)
