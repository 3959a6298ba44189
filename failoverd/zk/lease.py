"""The local lease (DESIGN.md §5): how long this node may still act as lease holder.

ZooKeeper expires a session `T` after the last packet the server received from the
client, so a round trip sent at local time `t_send` and answered proves the session
alive until at least `t_send + T` on the server. We stop trusting it `margin`
earlier, to cover clock-rate drift, scheduling delay and the follower-to-leader
touch lag. kazoo has no client-side expiry (a partitioned client stays SUSPENDED
forever), so this clock is what makes a cut-off active stop before anyone else
may start.

The clock is CLOCK_BOOTTIME, not CLOCK_MONOTONIC: monotonic time stands still
while a VM or laptop is suspended, and a node resumed after a suspend must see
that its lease has long run out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import NamedTuple


def boottime() -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class LeaseTicket(NamedTuple):
    """Which grant a round trip was sent for: the session, and the how-manieth grant.

    A round trip may be answered after the lease it was sent for was given back and
    granted again in the same session; its answer must neither revoke nor renew the
    new grant (LocalLease.renew/revoke compare tickets)."""

    session: int
    generation: int


class LocalLease:
    """Thread-safe: renewed by the lease keeper (its answers arrive on kazoo's
    completion thread), read by the main loop."""

    def __init__(
        self, session_timeout: float, margin: float, clock: Callable[[], float] = boottime
    ):
        if not 0 < margin < session_timeout:
            raise ValueError("lease margin must be between 0 and the session timeout")
        self.configured_timeout = session_timeout
        self.configured_margin = margin
        self.session_timeout = session_timeout
        self.margin = margin
        self.clock = clock
        self._lock = threading.Lock()
        self._session: int | None = None
        self._generation = 0  # grants so far (LeaseTicket)
        self._expires = float("-inf")

    def limit(self, granted_timeout: float) -> None:
        """Use the session timeout the server actually granted when it is shorter than
        the configured one (ZooKeeper clamps requests to [min,max]SessionTimeout
        silently); the margin shrinks in proportion. A longer grant is ignored: the
        configured value is then the conservative one."""
        with self._lock:
            t = min(self.configured_timeout, granted_timeout)
            self.session_timeout = t
            self.margin = self.configured_margin * t / self.configured_timeout

    @property
    def session(self) -> int | None:
        """The ZooKeeper session id the lease belongs to (the lock's ephemeralOwner)."""
        with self._lock:
            return self._session

    def grant(self, session: int, t_send: float) -> None:
        """We created the lock in `session` with a request sent at `t_send`."""
        with self._lock:
            self._session = session
            self._generation += 1
            self._expires = t_send + self.session_timeout - self.margin

    def ticket(self) -> LeaseTicket | None:
        """The grant a round trip sent now would be about; None without a lease."""
        with self._lock:
            if self._session is None:
                return None
            return LeaseTicket(self._session, self._generation)

    def renew(self, session: int, t_send: float, ticket: LeaseTicket | None = None) -> bool:
        """A round trip sent at `t_send` saw the lock still owned by `session`.

        Renewals for another session are ignored (a request queued while
        reconnecting may complete in a *new* session: it proves nothing about ours),
        and so are answers about an earlier grant (`ticket`). Never moves the expiry
        backwards (answers may arrive out of order)."""
        with self._lock:
            if self._session is None or session != self._session:
                return False
            if ticket is not None and ticket != (self._session, self._generation):
                return False
            self._expires = max(self._expires, t_send + self.session_timeout - self.margin)
            return True

    def revoke(self, ticket: LeaseTicket | None = None) -> bool:
        """Give up the lease; with a ticket, only if it is still that grant (a late
        answer about an earlier grant must not revoke a newer one). True if revoked."""
        with self._lock:
            if ticket is not None and ticket != (self._session, self._generation):
                return False
            self._session = None
            self._expires = float("-inf")
            return True

    def remaining(self) -> float:
        with self._lock:
            if self._session is None:
                return 0.0
            return max(0.0, self._expires - self.clock())

    def valid(self) -> bool:
        return self.remaining() > 0.0
