"""The lease keeper's schedule and the lease's tickets, with a fake ZooKeeper edge.
(The real thing, across frozen ZooKeeper servers: tests/integration/test_lease_stalls.py.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from failoverd.zk.lease import LocalLease
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
