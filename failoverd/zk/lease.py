"""The local lease: how long this node may still act as lease holder.

ZooKeeper expires a session `T` after the last touch the leader counted for it. A
round trip (a request and its answer) sent at local time `t_send` touches the
session when the server receives it, never before `t_send`. kazoo has no
client-side expiry (a partitioned client stays SUSPENDED forever), so this clock
is what makes a cut-off active stop before anyone else may start.

What one answer proves. On a follower, the answer is the follower's word: it
counts the touch itself and hands the touches it saw to the leader only in a
batch, with its answer to the leader's next ping (every tickTime/2). A touch that
arrives after the session expired on the earlier ones saves nothing, and the
follower may have answered before the leader's verdict reached it. What is known
to be counted is the previous send's touch, once the batch that carries it has had
time to get there. So an answer renews the lease until

    min(t_send, t_prev + margin) + T - margin  =  min(t_send + T - margin, t_prev + T)

where `t_prev` is the previous round trip sent for the same grant, answered or not
(the grant's own request counts). Why this is safe:

* Sends less than `margin` apart (the keeper sends every T/5, the default margin
  is T/4): this is `t_send + T - margin`, as ever. A touch reaches the leader at
  most one batch after it was made (tickTime/2; ZooKeeper grants no session
  timeout below 2 tickTime, so at most T/4), and the touches before it, sent less
  than a margin earlier, keep the session alive until it is there. The margin
  covers clock-rate drift and scheduling delay.
* A longer gap (a frozen daemon, a stalled keeper thread, a reconnect): this touch
  may come too late to count, so one answer carries the lease no further than `T`
  past the previous send, whose touch the leader had by then (it was sent more
  than a batch's lag before this one). The next round trip, sent on schedule,
  renews from its own send time again. Each such gap is logged
  (`lease_send_gap`, by the Coordinator, which sends the round trips).

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


class LeaseSend(NamedTuple):
    """One lease round trip as it goes out (LocalLease.stamp): the grant it is about,
    when it was sent, the gap since the previous send for that grant, and the time
    its answer may renew from (the module docstring: min(t_send, t_prev + margin))."""

    ticket: LeaseTicket
    t_send: float
    gap: float
    renew_from: float


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
        self._last_send = float("-inf")  # the latest round trip sent for this grant

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
            self._last_send = t_send  # the lock's create touched the session too

    def ticket(self) -> LeaseTicket | None:
        """The grant a round trip sent now would be about; None without a lease."""
        with self._lock:
            if self._session is None:
                return None
            return LeaseTicket(self._session, self._generation)

    def stamp(self) -> LeaseSend | None:
        """A round trip about the current grant is about to go out: stamp it with this
        lease's clock and work out how far its answer may carry the lease. None
        without a lease. Call sent() once it is out: a send that never went out
        touched nothing, and must not shorten the next one's gap."""
        with self._lock:
            if self._session is None:
                return None
            t_send = self.clock()
            gap = t_send - self._last_send
            renew_from = min(t_send, self._last_send + self.margin)
            return LeaseSend(LeaseTicket(self._session, self._generation), t_send, gap, renew_from)

    def sent(self, send: LeaseSend) -> None:
        """`send` went out: the next one's gap counts from it. (Two sends stamped
        before either is recorded both count from the one before: the longer gap,
        the shorter renewal.)"""
        with self._lock:
            if send.ticket == (self._session, self._generation):
                self._last_send = max(self._last_send, send.t_send)

    def answered(self, send: LeaseSend) -> bool:
        """The round trip `send` saw the lock still owned by its session: renew."""
        return self.renew(send.ticket.session, send.renew_from, send.ticket)

    def renew(self, session: int, t_send: float, ticket: LeaseTicket | None = None) -> bool:
        """An answer showed the lock still owned by `session`, and counts from
        `t_send`: renew until `t_send + T - margin`. (For a round trip that is
        LeaseSend.renew_from, not its send time; answered() passes it.)

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
