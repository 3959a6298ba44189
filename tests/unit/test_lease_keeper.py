"""The lease keeper's schedule and the lease's tickets, with a fake ZooKeeper edge.
(The real thing, across frozen ZooKeeper servers: tests/integration/test_lease_stalls.py.)"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from failoverd.zk.lease import LeaseSend, LocalLease
from failoverd.zk.lease_keeper import LeaseKeeper, renewal_interval


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeCoordinator:
    """Records each round trip sent; the test answers them when it likes."""

    connected = True

    def __init__(self) -> None:
        self.sent: list[Callable[[bool | None], None]] = []
        self.lock = threading.Lock()

    def send_lease_check(self, lease: LocalLease, done: Callable[[bool | None], None]) -> bool:
        if lease.ticket() is None:
            return False
        with self.lock:
            self.sent.append(done)
        return True

    def count(self) -> int:
        with self.lock:
            return len(self.sent)


@pytest.fixture
def lease() -> LocalLease:
    lease = LocalLease(2.0, 0.5)
    lease.grant(7, lease.clock())
    return lease


@pytest.fixture
def keeper(lease: LocalLease) -> Iterator[tuple[LeaseKeeper, FakeCoordinator, list[int]]]:
    coord = FakeCoordinator()
    lost: list[int] = []
    k = LeaseKeeper(coord, lease, 0.01, lambda: lost.append(1), max_in_flight=4)  # type: ignore[arg-type]
    k.start()
    yield k, coord, lost
    k.stop()
    k.join(2)


def test_round_trips_go_out_on_schedule_while_earlier_ones_are_unanswered(keeper) -> None:
    k, coord, _ = keeper
    # Nothing is answered, yet the next round trips go out, up to the bound.
    wait_for(lambda: coord.count() == 4, 5, "four unanswered round trips")
    assert k.in_flight == 4
    # At the bound it waits (ZooKeeper is not answering at all); one answer frees a slot.
    coord.sent[0](True)
    wait_for(lambda: coord.count() == 5, 5, "the next round trip")
    assert k.in_flight == 4


def test_an_answer_that_shows_the_lock_gone_reports_the_lease_lost(keeper) -> None:
    k, coord, lost = keeper
    wait_for(lambda: coord.count() >= 2, 5, "round trips")
    coord.sent[1](None)  # no verdict (a lost connection): nothing to report
    coord.sent[0](False)
    assert lost == [1]


def test_no_round_trips_without_a_lease(lease: LocalLease) -> None:
    lease.revoke()
    coord = FakeCoordinator()
    k = LeaseKeeper(coord, lease, 0.01, lambda: None)  # type: ignore[arg-type]
    k.start()
    try:
        k.wake.set()
        assert not k.stopped.wait(0.1)
        assert coord.count() == 0 and k.in_flight == 0
    finally:
        k.stop()
        k.join(2)


def test_renewal_interval_is_a_fifth_of_the_session_timeout_and_bound_one_timeout() -> None:
    assert renewal_interval(2.0) == pytest.approx(0.4)
    k = LeaseKeeper(FakeCoordinator(), LocalLease(2.0, 0.5), 0.4, lambda: None)  # type: ignore[arg-type]
    assert k.max_in_flight == 6


def test_round_trips_go_out_more_often_than_every_margin_when_the_margin_is_small() -> None:
    # An answer renews from its own send time only if it went out less than a margin
    # after the one before (lease.py). A margin below T/5 (the config allows it; a
    # server that grants a shorter session shrinks it too) must not turn every
    # round trip into a send gap: a shorter lease, and a warning each time.
    lease = LocalLease(2.0, 0.05)
    lease.grant(7, lease.clock())
    coord = FakeCoordinator()
    k = LeaseKeeper(coord, lease, renewal_interval(2.0), lambda: None)  # type: ignore[arg-type]
    k.start()
    try:
        time.sleep(0.5)
        # Every 0.04 s (4/5 of the margin): 12 or 13 in 0.5 s; every 0.4 s, 2.
        assert coord.count() >= 8, f"{coord.count()} round trips in 0.5 s, margin 0.05 s"
        assert k.max_in_flight == math.ceil(2.0 / 0.04) + 1
    finally:
        k.stop()
        k.join(2)


# -- tickets: a late answer about an earlier grant ------------------------------------


def test_a_late_answer_about_an_earlier_grant_neither_renews_nor_revokes_the_new_one() -> None:
    clock = FakeClock()
    lease = LocalLease(4.0, 1.0, clock)
    lease.grant(7, 1000.0)
    old = lease.ticket()
    assert old is not None
    lease.revoke()  # demoted, then won the lock again in the same session
    lease.grant(7, 1001.0)
    assert not lease.revoke(old)  # "lock gone" was about the old grant
    assert lease.valid()
    assert not lease.renew(7, 1002.5, old)
    clock.t = 1004.0
    assert not lease.valid()  # the new grant ran its own course: 1001 + 4 - 1


def test_a_late_answer_renews_from_its_own_send_time() -> None:
    clock = FakeClock()
    lease = LocalLease(4.0, 1.0, clock)
    lease.grant(7, 1000.0)
    ticket = lease.ticket()
    clock.t = 1002.9  # the answer to a request sent at 1001.0 arrives late
    assert lease.renew(7, 1001.0, ticket)
    clock.t = 1003.9
    assert lease.valid() and lease.remaining() == pytest.approx(0.1)


# -- how far one answer may carry the lease: min(t_send, t_prev + margin) + T - margin -------


def send_at(lease: LocalLease, clock: FakeClock, t: float) -> LeaseSend:
    """A round trip stamped and sent at `t`, as Coordinator.send_lease_check does it."""
    clock.t = t
    send = lease.stamp()
    assert send is not None
    lease.sent(send)
    return send


def test_an_answer_after_a_send_gap_renews_at_most_t_past_the_previous_send() -> None:
    # T = 4, margin = 1. The grant's request went out at 1000; the next round trip
    # only at 1002.5, a gap of 2.5 > margin (a frozen daemon, a stalled keeper).
    # Its answer renews from min(1002.5, 1000 + 1) = 1001: until 1001 + 4 - 1 = 1004,
    # T past the previous send, not until 1002.5 + 4 - 1 = 1005.5.
    clock = FakeClock()
    lease = LocalLease(4.0, 1.0, clock)
    lease.grant(7, 1000.0)
    send = send_at(lease, clock, 1002.5)
    assert (send.t_send, send.gap, send.renew_from) == (1002.5, 2.5, 1001.0)
    assert lease.answered(send)
    clock.t = 1003.99
    assert lease.valid()
    clock.t = 1004.0
    assert not lease.valid(), f"still valid, {lease.remaining()} s left"


def test_answers_to_sends_less_than_a_margin_apart_renew_from_their_own_send_times() -> None:
    clock = FakeClock()
    lease = LocalLease(4.0, 1.0, clock)
    lease.grant(7, 1000.0)
    sends = [send_at(lease, clock, t) for t in (1000.8, 1001.6, 1002.4)]  # 0.8 < margin
    assert [s.renew_from for s in sends] == [s.t_send for s in sends]
    for send in reversed(sends):  # in any order: the latest send counts
        assert lease.answered(send)
    assert lease.remaining() == pytest.approx(1002.4 + 4.0 - 1.0 - clock.t)


def test_the_gap_is_counted_from_the_previous_send_answered_or_not() -> None:
    # Unanswered round trips in between still count as sends: the rule is about the
    # spacing of what we sent, not of what came back.
    clock = FakeClock()
    lease = LocalLease(4.0, 1.0, clock)
    lease.grant(7, 1000.0)
    send_at(lease, clock, 1000.8)  # never answered
    late = send_at(lease, clock, 1003.3)
    assert late.gap == pytest.approx(2.5) and late.renew_from == pytest.approx(1001.8)
    assert lease.answered(late)
    clock.t = 1004.8
    assert not lease.valid()  # 1001.8 + 4 - 1


def test_a_round_trip_that_never_went_out_does_not_count_as_a_send() -> None:
    clock = FakeClock()
    lease = LocalLease(4.0, 1.0, clock)
    lease.grant(7, 1000.0)
    clock.t = 1000.8
    assert lease.stamp() is not None  # stamped, then the client refused it
    late = send_at(lease, clock, 1002.5)
    assert late.gap == 2.5 and late.renew_from == 1001.0


def test_a_new_grant_counts_gaps_from_its_own_request() -> None:
    clock = FakeClock()
    lease = LocalLease(4.0, 1.0, clock)
    lease.grant(7, 1000.0)
    lease.revoke()
    lease.grant(7, 1010.0)
    send = send_at(lease, clock, 1010.5)
    assert send.gap == 0.5 and send.renew_from == 1010.5
    lease.revoke()
    assert lease.stamp() is None  # no lease: nothing to send for
