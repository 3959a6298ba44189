"""The pure decision logic, exhaustively, with plain values (no clock, no I/O)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from failoverd.node.decision import (
    Act,
    Observation,
    Role,
    decide,
    may_start_resource,
    next_epoch,
    plan_fencing,
    priority_wait,
)
from failoverd.zk.znodes import Breadcrumb, MemberStatus

PEERS = ("mail2", "mail3")


def obs(**kw: object) -> Observation:
    base = Observation(
        now=100.0,
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
        backoff_until=0.0,
        lock_free_since=90.0,
        priority_delay=0.0,
        healthy_peer=True,
        switchover_to=None,
        switchover_pending=False,
        failover_to=None,
        flap_limited=False,
        dirty=False,
        flap_backoff=30.0,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def active(**kw: object) -> Observation:
    fields: dict[str, object] = {
        "role": Role.ACTIVE,
        "lease_valid": True,
        "lease_remaining": 2.0,
        "lock_holder": "mail1",
        "lock_is_ours": True,
    }
    return obs(**{**fields, **kw})


# -- standby ---------------------------------------------------------------


def test_healthy_standby_contends_for_a_free_lease() -> None:
    assert decide(obs()).act is Act.CONTEND


@pytest.mark.parametrize(
    "change, why",
    [
        ({"connected": False}, "not connected"),
        ({"lock_holder": "mail2"}, "mail2 holds"),
        ({"lock_holder": ""}, "unreadable holder"),
        ({"healthy": False}, "health"),
        ({"maintenance": True}, "maintenance"),
        ({"backoff_until": 105.0}, "backing off"),
        ({"dirty": True}, "could not be stopped"),
        ({"fenced": True}, "fence marker"),
        ({"priority_delay": 20.0}, "priority delay"),
        ({"switchover_pending": True, "switchover_to": "mail2"}, "switchover to mail2"),
        ({"failover_to": "mail3"}, "forced failover to mail3"),
    ],
)
def test_standby_does_not_contend_when(change: dict[str, object], why: str) -> None:
    d = decide(obs(**change))
    assert d.act is Act.WAIT
    assert why in d.reason


def test_priority_delay_counts_from_when_the_lock_was_seen_free() -> None:
    assert decide(obs(priority_delay=5.0, lock_free_since=96.0)).act is Act.WAIT
    assert decide(obs(priority_delay=5.0, lock_free_since=95.0)).act is Act.CONTEND


def test_switchover_target_skips_its_priority_delay_but_not_its_health() -> None:
    targeted = {"switchover_pending": True, "switchover_to": "mail1", "priority_delay": 50.0}
    assert decide(obs(**targeted)).act is Act.CONTEND
    assert decide(obs(**targeted, healthy=False)).act is Act.WAIT


def test_forced_failover_target_contends_despite_health_maintenance_and_backoff() -> None:
    d = decide(obs(failover_to="mail1", healthy=False, maintenance=True, backoff_until=1e9))
    assert d.act is Act.CONTEND


def test_forced_failover_never_overrides_a_live_lease_or_dirty_resources() -> None:
    assert decide(obs(failover_to="mail1", lock_holder="mail2")).act is Act.WAIT
    assert decide(obs(failover_to="mail1", dirty=True)).act is Act.WAIT


def test_standby_gives_back_a_lock_its_session_holds_unknowingly() -> None:
    assert decide(obs(lock_is_ours=True, lock_holder="mail1")).act is Act.RELEASE_STRAY_LOCK


def test_standby_never_contends_while_any_lock_exists() -> None:
    """Exhaustive over every other input: a present lock always means WAIT."""
    flags = ("connected", "healthy", "maintenance", "dirty", "fenced", "switchover_pending")
    for values in itertools.product([False, True], repeat=len(flags)):
        o = obs(lock_holder="mail2", **dict(zip(flags, values, strict=True)))
        assert decide(o).act is Act.WAIT, o


# -- active -------------------------------------------------------------------


def test_healthy_active_with_a_valid_lease_stays() -> None:
    assert decide(active()).act is Act.STAY


@pytest.mark.parametrize(
    "change, code",
    [
        ({"lease_valid": False}, "lease_lost"),
        ({"lock_is_ours": False}, "lock_lost"),
        ({"fenced": True}, "fenced"),
    ],
)
def test_active_demotes_on_any_sign_of_losing_the_lease_even_in_maintenance(
    change: dict[str, object], code: str
) -> None:
    for maintenance in (False, True):
        d = decide(active(maintenance=maintenance, flap_limited=True, **change))
        assert d.act is Act.DEMOTE
        assert d.code == code


def test_unhealthy_active_demotes_with_backoff_when_a_healthy_standby_exists() -> None:
    d = decide(active(healthy=False))
    assert d.act is Act.DEMOTE and d.code == "health" and d.backoff == 30.0


def test_unhealthy_active_stays_when_no_standby_could_serve() -> None:
    d = decide(active(healthy=False, healthy_peer=False))
    assert d.act is Act.STAY and "no healthy standby" in d.reason


def test_unhealthy_active_stays_once_the_flap_limit_is_reached() -> None:
    d = decide(active(healthy=False, flap_limited=True))
    assert d.act is Act.STAY and d.code == "flap_limit"


def test_maintenance_freezes_health_failover() -> None:
    assert decide(active(healthy=False, maintenance=True)).act is Act.STAY


def test_active_demotes_for_a_switchover_to_a_healthy_target() -> None:
    d = decide(active(switchover_pending=True, switchover_to="mail2"))
    assert d.act is Act.DEMOTE and d.code == "switchover"


def test_active_refuses_a_switchover_when_the_target_is_not_ready() -> None:
    d = decide(active(switchover_pending=True, switchover_to="mail2", healthy_peer=False))
    assert d.act is Act.STAY and "not a healthy" in d.reason


def test_init_and_stopped_never_start_a_new_action() -> None:
    for role in (Role.INIT, Role.STOPPED):
        assert decide(obs(role=role)).act is Act.WAIT
        assert decide(active(role=role)).act is Act.WAIT


@pytest.mark.parametrize("role", [Role.FENCING, Role.PROMOTING, Role.DEMOTING])
def test_transitional_role_whose_lease_is_gone_demotes(role: Role) -> None:
    # Transitions finish inside one loop cycle, so the loop sees one only when it was
    # cut short: staying there would wedge the node.
    d = decide(active(role=role, lease_valid=False, lease_remaining=0.0, maintenance=True))
    assert d.act is Act.DEMOTE and d.code == "lease_lost" and str(role) in d.reason
    assert d.backoff == 30.0


@pytest.mark.parametrize("role", [Role.FENCING, Role.PROMOTING, Role.DEMOTING])
def test_transitional_role_seen_by_the_loop_demotes_even_with_a_valid_lease(role: Role) -> None:
    # The lease keeper keeps renewing a wedged node's lease: waiting for it to run out
    # would wait forever.
    d = decide(active(role=role))
    assert d.act is Act.DEMOTE and d.code == "transition_failed"


# -- fencing plan, epochs, start guard -------------------------------------------


def crumb(node: str | None, epoch: int = 4, clean: bool = False) -> Breadcrumb:
    return Breadcrumb(node, epoch, "2026-01-01T00:00:00Z", clean)


def test_unclean_previous_active_is_fenced() -> None:
    plan = plan_fencing(crumb("mail2"), True, "mail1", PEERS)
    assert plan.targets == ("mail2",) and plan.possible


def test_clean_handover_needs_no_fencing() -> None:
    assert plan_fencing(crumb("mail2", clean=True), True, "mail1", PEERS).targets == ()


def test_unreadable_or_missing_breadcrumb_fences_every_peer() -> None:
    assert plan_fencing(None, False, "mail1", PEERS).targets == PEERS
    assert plan_fencing(None, True, "mail1", PEERS).targets == PEERS


def test_fresh_cluster_breadcrumb_needs_no_fencing() -> None:
    assert plan_fencing(crumb(None, 0, clean=True), True, "mail1", PEERS).targets == ()


def test_previous_active_that_is_not_a_configured_peer_blocks_the_takeover() -> None:
    plan = plan_fencing(crumb("mail9"), True, "mail1", PEERS)
    assert not plan.possible


def test_previous_active_being_this_node_needs_no_remote_fence() -> None:
    assert plan_fencing(crumb("mail1"), True, "mail1", PEERS).targets == ()


def test_epoch_always_grows() -> None:
    assert next_epoch(crumb("mail2", 7), True, 9) == 8
    # Garbled breadcrumb: the znode version stands in for the lost epoch.
    assert next_epoch(None, False, 12) == 13
    # Deleted breadcrumb: history/members give a floor.
    assert next_epoch(None, True, None, floor=30) == 31
    assert next_epoch(crumb("mail2", 7), True, 9, floor=3) == 8


def test_resource_start_requires_lease_lock_and_no_fence_marker() -> None:
    assert may_start_resource(True, True, False) == (True, "")
    for args in itertools.product([True, False], repeat=3):
        ok, why = may_start_resource(*args)
        assert ok == (args == (True, True, False))
        assert ok or why


def member(role: str = "standby", healthy: bool = True, priority: int = 0) -> MemberStatus:
    return MemberStatus("x", role, healthy, None, "v", "a", False, "r", "t", priority)


def test_priority_wait_defers_to_a_preferred_eligible_peer_only() -> None:
    me = (1, "mail2")
    assert priority_wait(me, 1.0, {"mail1": member(priority=0)}, {"mail1"}) == 1.0
    assert priority_wait(me, 1.0, {"mail1": member(priority=2)}, {"mail1"}) == 0.0
    assert priority_wait(me, 1.0, {"mail1": member(healthy=False)}, {"mail1"}) == 0.0
    assert priority_wait(me, 1.0, {"mail1": member(role="active")}, {"mail1"}) == 0.0


def test_priority_wait_treats_unseen_peers_as_preferred_and_gone_peers_as_absent() -> None:
    me = (1, "mail2")
    assert priority_wait(me, 1.0, {"mail1": None}, set()) == 1.0  # start-up
    assert priority_wait(me, 1.0, {"mail1": None}, {"mail1"}) == 0.0  # crashed active


# -- resources stopped underneath the active -----------------------------------------


def test_active_whose_resource_stopped_underneath_demotes_and_backs_off_for_a_peer() -> None:
    d = decide(active(resource_lost="command toyservice"))
    assert d.act is Act.DEMOTE and d.code == "resource_lost" and "toyservice" in d.reason
    assert d.backoff == 30.0  # a healthy standby takes over meanwhile


def test_lone_active_whose_resource_stopped_demotes_without_backoff_to_restart_it() -> None:
    d = decide(active(resource_lost="vip", healthy_peer=False, healthy=False))
    assert d.act is Act.DEMOTE and d.code == "resource_lost" and d.backoff == 0.0


def test_resource_stopped_underneath_is_frozen_by_maintenance_and_the_flap_limit() -> None:
    assert decide(active(resource_lost="vip", maintenance=True)).act is Act.STAY
    d = decide(active(resource_lost="vip", flap_limited=True))
    assert d.act is Act.STAY and d.code == "flap_limit" and "operator" in d.reason


def test_losing_the_lease_outranks_a_resource_stopped_underneath() -> None:
    d = decide(active(resource_lost="vip", lease_valid=False))
    assert d.code == "lease_lost"


def test_standby_never_acts_on_resource_status() -> None:
    assert decide(obs(resource_lost="vip")).act is Act.CONTEND


def test_priority_zero_contends_even_when_the_lock_was_seen_free_after_the_cycle_began() -> None:
    # lock_free_since is taken after the read's answer, so it may be later than `now`.
    assert decide(obs(now=100.0, lock_free_since=100.01, priority_delay=0.0)).act is Act.CONTEND
