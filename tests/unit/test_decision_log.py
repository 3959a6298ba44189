"""The loop logs one `decided` line per change of decision, not one per tick.

A standby backing off re-decides every loop tick (about ten a second while a
back-off or a priority delay runs out), and each answer carries the time left
("backing off for 6.6s more"). The countdown is no new decision: logged at info
it buried the journal under ten lines a second.

The loop's step is driven here through a stand-in for the daemon (the step
reads nothing else of it) with a fake clock.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

from structlog.testing import capture_logs

from failoverd.node.daemon import Daemon
from failoverd.node.decision import Act, Decision, Observation, Role, decide
from failoverd.node.state import NodeState

TICK = 0.1


def standby(now: float, **kw: Any) -> Observation:
    base = Observation(
        now=now,
        node="mail1",
        role=Role.STANDBY,
        connected=True,
        lease_valid=False,
        lease_remaining=0.0,
        lock_holder=None,
        lock_is_ours=False,
        fenced=False,
        healthy=True,
        maintenance=False,
        backoff_until=3.0,  # a demotion's back-off runs out 3 s in
        lock_free_since=3.0,
        priority_delay=2.0,  # then a more preferred peer gets 2 s
        healthy_peer=True,
        switchover_to=None,
        switchover_pending=False,
        failover_to=None,
        flap_limited=False,
        dirty=False,
        flap_backoff=30.0,
    )
    return replace(base, **kw)


def loop_node(clock: list[float]) -> Any:
    """What Daemon.step reads of the daemon, around the real decide()."""
    state = NodeState(role=Role.STANDBY)
    node = SimpleNamespace(
        state=state,
        last_decision=None,
        hooks=MagicMock(),
        history_written=0,
        leftovers=MagicMock(),
        ready=True,
        session=None,
        publisher=MagicMock(),
        _refresh=lambda now: None,
        _observe=lambda now: standby(clock[0]),
        _log_ignored_requests=lambda requests: None,
        _take_over=MagicMock(),
        _demote=MagicMock(),
        _pet=lambda: None,
    )
    return node


def test_a_countdown_logs_one_decided_line_per_decision_not_one_per_tick() -> None:
    clock = [0.0]
    node = loop_node(clock)
    with capture_logs() as logs:
        while clock[0] < 5.5:  # 3 s of back-off, 2 s of priority delay, then contend
            Daemon.step(node)
            clock[0] += TICK
    decided = [e for e in logs if e["event"] == "decided" and e["log_level"] == "info"]
    assert [(e["act"], e["reason"].split(" for ")[0].split(":")[0]) for e in decided] == [
        ("wait", "backing off"),
        ("wait", "priority delay"),
        ("contend", "the lease is free"),
    ], [e["reason"] for e in decided]
    # The first line of each says how long it lasts.
    assert decided[0]["reason"] == "backing off for 3.0s more"
    assert decided[1]["reason"] == "priority delay: 2.0s more"
    assert node._take_over.called


def test_the_same_decision_with_less_time_left_is_the_same_decision() -> None:
    first = decide(standby(0.0))
    later = decide(standby(2.5))
    assert first.reason != later.reason  # the countdown moved
    assert later.same_as(first)
    assert not decide(standby(3.5)).same_as(later)  # back-off over: priority delay now


def test_a_different_reason_or_act_is_a_new_decision() -> None:
    a = Decision(Act.WAIT, "mail2 holds the lease")
    assert not Decision(Act.WAIT, "mail3 holds the lease").same_as(a)
    assert not Decision(Act.CONTEND, "mail2 holds the lease").same_as(a)
    assert Decision(Act.WAIT, "mail2 holds the lease").same_as(a)
    assert not a.same_as(None)
