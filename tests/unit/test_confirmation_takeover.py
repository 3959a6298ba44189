"""The takeover's use of an operator's fence confirmation (Transitions, with
node/confirmation.py): waited out, checked again, consumed by one write, or not
used at all."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from failoverd.node.decision import Role
from failoverd.zk.znodes import Breadcrumb, Control, FenceConfirmation
from tests.unit.test_transitions_seam import make

CONF = FenceConfirmation(
    "0f8fad5b-d9cb-469f-a165-70867728950e", "mail2", 7, "alice", "t", "site gone"
)
CRUMB = Breadcrumb("mail2", 7, "t", False)


def taker(**kw: Any) -> tuple[Any, Any]:
    t, st, world = make(Role.FENCING, control=Control(fence_confirmed=CONF))
    t.config.zookeeper = SimpleNamespace(session_timeout=0.05, lease_margin=0.0)
    world.coord.read_control.return_value = (Control(fence_confirmed=CONF), 4)
    world.coord.read_members.return_value = {"mail1": None}
    world.coord.consume_fence_confirmation.return_value = True
    for k, v in kw.items():
        setattr(world.coord, k, v)
    return t, world


def history(world: Any) -> list[str]:
    return [c.args[0] for c in world.loop.record_history.call_args_list]


def test_a_confirmation_for_the_last_term_stands_in_for_the_fence_once() -> None:
    t, world = taker()
    assert t._confirmed_down("mail2", CRUMB, True, 8)
    world.coord.consume_fence_confirmation.assert_called_once_with(CONF.id, 2.5)
    assert history(world) == ["fence_skipped"]


def test_the_lease_running_out_during_the_wait_leaves_the_confirmation_unused() -> None:
    t, world = taker()
    world.lease.valid.return_value = False
    assert not t._confirmed_down("mail2", CRUMB, True, 8)
    world.coord.consume_fence_confirmation.assert_not_called()
    assert history(world) == []


def test_a_target_that_reconnected_during_the_wait_is_fenced() -> None:
    t, world = taker()
    world.coord.read_members.side_effect = [{}, {"mail2": None}]  # gone, then back
    assert not t._confirmed_down("mail2", CRUMB, True, 8)
    world.coord.consume_fence_confirmation.assert_not_called()


def test_a_confirmation_someone_else_consumed_or_changed_is_not_used() -> None:
    t, world = taker()
    world.coord.consume_fence_confirmation.return_value = False
    assert not t._confirmed_down("mail2", CRUMB, True, 8)
    assert history(world) == []


def test_a_confirmation_from_an_earlier_term_is_not_even_waited_for() -> None:
    t, world = taker()
    assert not t._confirmed_down("mail2", Breadcrumb("mail2", 9, "t", False), True, 10)
    world.coord.consume_fence_confirmation.assert_not_called()
    world.loop.await_work.assert_not_called()


def test_without_a_confirmation_in_sight_control_is_not_read_again() -> None:
    t, st, world = make(Role.FENCING)
    assert not t._confirmed_down("mail2", CRUMB, True, 8)
    world.coord.read_control.assert_not_called()
