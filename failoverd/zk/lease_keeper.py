"""Renewing the local lease: pipelined ZooKeeper round trips on a fixed schedule.

Why pipelined: a keeper that waits for one answer before it asks again turns one
slow answer into a lost lease. With T = 2 s, a ZooKeeper stall of 0.95 s (a leader
fsync, a GC pause) made a healthy active demote: the answer that arrived after the
stall was thrown away, and the next request went out when the lease had already
run out. So:

* A round trip (sync + exists on the lock) is sent every `interval` (and at least
  every 4/5 of the lease margin), whether or not earlier ones were answered, while
  a lease is held and the client is connected; a reconnect (the daemon sets `wake`
  on zk_connected) sends one at once.
* Each answer, whenever it arrives, renews the lease counted from *its own* send
  time, as long as it went out less than a margin after the round trip before it;
  after a longer gap, from a margin after that one (lease.py says why: one answer
  then carries the lease at most T past the previous send). LocalLease.renew never
  moves the expiry backwards and ignores answers about another session or an
  earlier grant. A slow answer is still an answer.
* An answer that shows the lock gone or owned by another session revokes the
  lease and reports `on_lost`.
* Answers arrive on kazoo's completion thread: the callback touches only the
  thread-safe LocalLease and a counter, and `on_lost` must not block (the daemon
  puts an event on its queue).

With a renewal every T/5 and the default margin T/4, a stall shorter than T/2
leaves at least T/20 (0.1 s at T = 2 s) for the first answer after it, even when
kazoo dropped the connection during the stall and every outstanding request failed
with it. When the connection survives, round trips keep going out T/5 apart during
the stall, are answered the moment it ends and renew from their own, later, send
times. When it was dropped, nothing went out until the reconnect: the first answer
then renews no further than T past the last send before the drop, still at least
4T/5 past the stall's beginning (that send was no earlier than the last one before
the stall), and the next round trip, T/5 after the reconnect and so less than a
margin after it, has the same T/20 to spare. Silence for T - margin still ends the
lease, as before.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Protocol

import structlog

from failoverd.zk.lease import LocalLease, boottime

log = structlog.get_logger(__name__)


class LeaseChecker(Protocol):
    """What the keeper asks of the Coordinator (coordinator.py): whether it is
    connected, and to send one lease round trip without waiting for the answer."""

    @property
    def connected(self) -> bool: ...

    def send_lease_check(self, lease: LocalLease, done: Callable[[bool | None], None]) -> bool: ...


# Round trips per session timeout. At least 4 (every T/4) keep a lost answer from costing the lease;
# one more buys the reconnect after a stall its time (see the module docstring)
# for 25 % more lease traffic: 2.5 round trips a second at T = 2 s, on the active only.
RENEWALS_PER_SESSION_TIMEOUT = 5


# Round trips go out at least this often per lease margin: an answer renews from its
# own send time only when it went out less than a margin after the previous one
# (lease.py). With the default margin T/4 this is the T/5 above; a smaller margin
# (configured, or shrunk with a shorter session the server granted) means more
# round trips rather than a send gap, and a shorter lease, at every one.
SEND_EVERY_MARGIN = 4 / 5


def renewal_interval(session_timeout: float) -> float:
    return session_timeout / RENEWALS_PER_SESSION_TIMEOUT


class LeaseKeeper(threading.Thread):
    """Renews the local lease on its own thread, so a slow fence or resource start
    in the main loop never starves it."""

    def __init__(
        self,
        coord: LeaseChecker,
        lease: LocalLease,
        interval: float,
        on_lost: Callable[[], None],
        max_in_flight: int | None = None,
    ):
        super().__init__(name="lease-keeper", daemon=True)
        self.coord = coord
        self.lease = lease
        self.interval = interval
        self.on_lost = on_lost
        # A request older than the session timeout can no longer renew anything that
        # a newer one would not: more than one session timeout's worth outstanding
        # means ZooKeeper is not answering at all, and piling up more only grows
        # kazoo's queue. (A dropped connection fails every outstanding request.)
        every = self._every()
        self.max_in_flight = max_in_flight or math.ceil(lease.session_timeout / every) + 1
        self.wake = threading.Event()
        self.stopped = threading.Event()
        self._count = threading.Lock()
        self._in_flight = 0
        self._saturated = False

    @property
    def in_flight(self) -> int:
        with self._count:
            return self._in_flight

    def run(self) -> None:
        next_send = float("-inf")
        while not self.stopped.is_set():
            now = boottime()
            woken = self.wake.is_set()
            self.wake.clear()
            if woken or now >= next_send:
                # The schedule does not depend on answers: the next round trip goes
                # out on time even if this one is never answered.
                next_send = now + self._every()
                self._send()
            self.wake.wait(max(0.0, next_send - boottime()))

    def _every(self) -> float:
        # The lease's margin as it is now: limit() shrinks it with a shorter session.
        return min(self.interval, SEND_EVERY_MARGIN * self.lease.margin)

    def stop(self) -> None:
        self.stopped.set()
        self.wake.set()

    def _send(self) -> None:
        if self.lease.session is None or not self.coord.connected:
            return
        with self._count:
            if self._in_flight >= self.max_in_flight:
                if not self._saturated:
                    self._saturated = True
                    log.warning(
                        "lease_round_trips_unanswered",
                        in_flight=self._in_flight,
                        hint="ZooKeeper is not answering; the lease runs out on its own clock",
                    )
                return
            self._saturated = False
            self._in_flight += 1
        try:
            sent = self.coord.send_lease_check(self.lease, self._answered)
        except Exception:  # noqa: BLE001 - the keeper thread must outlive any bug here
            log.exception("lease_round_trip_failed")
            sent = False
        if not sent:
            with self._count:
                self._in_flight -= 1

    def _answered(self, verdict: bool | None) -> None:
        # kazoo's completion thread: count, and hand a revocation to the daemon.
        with self._count:
            self._in_flight -= 1
        if verdict is False:
            self.on_lost()
