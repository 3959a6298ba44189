"""Retrying a failed takeover sooner while nobody serves.

After a failed takeover a standby used to sit out the whole `flap.backoff` (30 s by
default) even when nobody served. Now, while no member holds the lock or publishes
a serving role, it retries after T (the session timeout), doubling with each
further failure up to the full back-off; with another member serving, or after a
live node's demotion, the full back-off holds as before.

Driven through the real failure edges of the transitions (the seam's stand-ins)
and the real decide(), on a fake clock ticking like the daemon's loop."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

import failoverd.node.transitions as transitions_module
from failoverd.node.decision import (
    Act,
    Decision,
    Role,
    active_member,
    decide,
    early_retry,
    others_serving,
)
from failoverd.node.eligibility import eligibility
from failoverd.node.state import NodeState
from failoverd.node.transitions import Transitions
from failoverd.resources.base import ResourceError
from failoverd.zk.znodes import Breadcrumb, MemberStatus
from tests.unit.test_decision import obs
from tests.unit.test_transitions_seam import SESSION_TIMEOUT, make, promotable

T = SESSION_TIMEOUT
BACKOFF = 30.0
TICK = 0.1  # the daemon's loop period while a back-off runs


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(transitions_module, "time", SimpleNamespace(monotonic=c.monotonic))
    return c


def failing_standby() -> tuple[Transitions, NodeState, Any]:
    """A standby whose every takeover fails at its resource's start."""
    t, st, world = make(Role.STANDBY)
    t.config.flap.backoff = BACKOFF
    res = promotable(world)
    res.start.side_effect = ResourceError("exit status 1")
    t.resources = [res]
    return t, st, world


def observed(st: NodeState, now: float, **kw: Any) -> Any:
    return obs(
        now=now,
        backoff_until=st.backoff_until,
        early_retry_at=st.early_retry_at,
        lock_free_since=now - 10.0,
        flap_backoff=BACKOFF,
        **kw,
    )


def wait_until_contending(st: NodeState, clock: Clock, limit: float = 100.0, **kw: Any) -> float:
    """Tick like the loop until decide() contends; the seconds that took."""
    start = clock.now
    for ticks in range(int(limit / TICK) + 1):
        clock.now = start + ticks * TICK
        if decide(observed(st, clock.now, **kw)).act is Act.CONTEND:
            return round(clock.now - start, 1)
    raise AssertionError(f"still waiting after {limit}s")


def take_over(t: Transitions) -> None:
    t.take_over(Decision(Act.CONTEND, "the lease is free: contending", "takeover"))


def test_a_failed_takeover_while_nobody_serves_is_retried_after_T_doubling_up_to_the_backoff(
    clock: Clock,
) -> None:
    t, st, _ = failing_standby()
    waits = []
    for _ in range(7):
        take_over(t)
        assert st.role is Role.STANDBY  # the start failed: demoted, lock released
        waits.append(wait_until_contending(st, clock))
    assert waits == [T, 2 * T, 4 * T, 8 * T, BACKOFF, BACKOFF, BACKOFF]
    assert st.failed_takeovers == 7


def test_the_full_backoff_holds_while_another_member_serves(clock: Clock) -> None:
    t, st, _ = failing_standby()
    take_over(t)
    assert wait_until_contending(st, clock, member_serving=True) == BACKOFF
    take_over(t)  # a further failure: it was an early retry's, but a peer serves now
    assert wait_until_contending(st, clock, member_serving=True) == BACKOFF


def test_a_lock_held_by_another_member_is_waited_behind_whatever_the_backoff() -> None:
    st = NodeState(role=Role.STANDBY, backoff_until=130.0, early_retry_at=102.0)
    d = decide(observed(st, 110.0, lock_holder="mail2"))
    assert d.act is Act.WAIT and "mail2 holds the lease" in d.reason


def test_an_early_retry_says_why_it_waits_and_why_it_contends(clock: Clock) -> None:
    t, st, _ = failing_standby()
    take_over(t)
    waiting = decide(observed(st, clock.now + 1.0))
    assert waiting.act is Act.WAIT
    assert waiting.reason == "backing off for 1.0s more (nobody serves: retrying early)"
    retrying = decide(observed(st, clock.now + T))
    assert retrying.reason == (
        "the lease is free and nobody serves: retrying a failed takeover early"
    )
    full = decide(observed(st, clock.now + 1.0, member_serving=True))
    assert full.reason == f"backing off for {BACKOFF - 1.0:.1f}s more"
    assert full.same_as(waiting)  # one decision while it counts down, logged once


def test_a_peer_seen_active_since_the_failure_ends_the_early_retry() -> None:
    """The daemon clears early_retry_at when a member publishes role active:
    a takeover after that is a failover between live nodes."""
    members = {"mail1": member("standby"), "mail2": member("active"), "mail3": None}
    assert active_member("mail1", members) == "mail2"
    assert active_member("mail2", members) is None  # its own status does not count
    promoting = {"mail2": member("promoting"), "mail3": member("standby")}
    assert active_member("mail1", promoting) is None
    assert others_serving("mail1", promoting) == ["mail2"]  # no early retry meanwhile
    assert others_serving("mail1", {"mail2": member("standby"), "mail3": None}) == []


def test_a_success_ends_the_streak(clock: Clock) -> None:
    t, st, world = failing_standby()
    take_over(t)
    wait_until_contending(st, clock)
    take_over(t)
    assert wait_until_contending(st, clock) == 2 * T
    world.res.start.side_effect = None
    take_over(t)
    assert st.role is Role.ACTIVE
    assert (st.failed_takeovers, st.early_retry_at) == (0, None)
    t.demote(Decision(Act.DEMOTE, "demoting: a transition was cut short", "lease_lost"))
    world.res.start.side_effect = ResourceError("exit status 1")
    clock.now += 100.0
    take_over(t)
    assert wait_until_contending(st, clock) == T


def test_a_failure_long_after_the_last_starts_again_at_T(clock: Clock) -> None:
    t, st, _ = failing_standby()
    take_over(t)
    clock.now += 2 * BACKOFF + 1.0  # not retried meanwhile (unhealthy, in maintenance)
    take_over(t)
    assert st.failed_takeovers == 1
    assert wait_until_contending(st, clock) == T


def test_a_takeover_an_operator_must_unblock_keeps_the_full_backoff(clock: Clock) -> None:
    """A previous active that is no configured peer cannot be fenced until an
    operator acts: retrying it every T would only fill the log."""
    t, st, world = make(Role.STANDBY)
    t.config.flap.backoff = BACKOFF
    promotable(world)
    world.coord.read_breadcrumb.return_value = (Breadcrumb("old-mail", 4, "now", False), True, 4)
    take_over(t)
    assert st.role is Role.STANDBY and st.early_retry_at is None
    assert wait_until_contending(st, clock) == BACKOFF


def test_a_fence_that_failed_is_retried_early(clock: Clock) -> None:
    t, st, world = make(Role.STANDBY)
    t.config.flap.backoff = BACKOFF
    mail2 = SimpleNamespace(name="mail2", address="127.0.0.2")
    t.config.peers = [mail2]
    t.config.peer = {"mail2": mail2}.get
    t.config.fencing = []
    t.config.watchdog = None
    promotable(world)
    world.coord.read_breadcrumb.return_value = (Breadcrumb("mail2", 4, "now", False), True, 4)
    world.fence_chain.fence.return_value = (False, [])
    take_over(t)
    assert world.fence_chain.fence.called and st.role is Role.STANDBY
    assert wait_until_contending(st, clock) == T


def test_a_live_active_demoting_for_health_keeps_the_full_backoff_and_counts_to_the_flap_limit(
    clock: Clock,
) -> None:
    t, st, _ = make(Role.ACTIVE, epoch=3)
    t.demote(Decision(Act.DEMOTE, "demoting: health checks fail", "health", BACKOFF))
    assert st.early_retry_at is None and len(st.health_demotions) == 1
    assert wait_until_contending(st, clock) == BACKOFF


@pytest.mark.parametrize(
    ("failures", "backoff", "wait"),
    [
        (1, 30.0, 2.0),
        (2, 30.0, 4.0),
        (4, 30.0, 16.0),
        (5, 30.0, 30.0),
        (10_000, 30.0, 30.0),
        (1, 1.0, 1.0),  # a back-off shorter than T is never lengthened
    ],
)
def test_early_retry_doubles_from_T_and_never_exceeds_the_backoff(
    failures: int, backoff: float, wait: float
) -> None:
    assert early_retry(failures, 2.0, backoff) == wait


def test_eligibility_names_the_early_retry() -> None:
    st = NodeState(role=Role.STANDBY, backoff_until=130.0, early_retry_at=104.0)
    waiting = eligibility(observed(st, 102.0), backoff_until_wall="2026-12-07T00:30:00Z")
    assert not waiting.eligible
    assert waiting.why == (
        "backing off until 2026-12-07T00:30:00Z after a demotion or a failed takeover; "
        "while nobody serves it retries sooner"
    )
    assert eligibility(observed(st, 104.0)).eligible
    assert not eligibility(replace(observed(st, 104.0), member_serving=True)).eligible


def member(role: str) -> MemberStatus:
    return MemberStatus(
        node="x",
        role=role,
        healthy=True,
        epoch=None,
        version="",
        address="",
        maintenance=False,
        reason="",
        since="",
    )
