"""The epoch never reaches what its readers refuse (znodes.EPOCH_LIMIT), and a
node-local floor far above ZooKeeper's epochs is an anomaly, not a floor."""

from __future__ import annotations

from types import SimpleNamespace
from unittest.mock import ANY, MagicMock, call

import pytest

from failoverd.cli.backup import BackupError, restore_backup
from failoverd.fencing.epoch_bound import refusal
from failoverd.node import decision
from failoverd.node.decision import Role
from failoverd.node.eligibility import Eligibility, eligibility
from failoverd.node.state import NodeState
from failoverd.zk.znodes import (
    EPOCH_CEILING,
    EPOCH_FLOOR_SLACK,
    Breadcrumb,
    KnownEpochs,
    LocalFloor,
    ZnodeError,
    encode,
)
from tests.unit.test_decision import obs
from tests.unit.test_restore_floor import FakeAdmin
from tests.unit.test_transitions_seam import make

TOP = 2**53 - 1


def decodable(epoch: int) -> bool:
    try:
        Breadcrumb.decode(encode(Breadcrumb("mail1", epoch, "t", False)))
    except ZnodeError:
        return False
    return True


@pytest.mark.parametrize(
    ("crumb", "floor"),
    [(None, TOP), (Breadcrumb("mail2", TOP, "t", False), 0), (None, 2**52)],
)
def test_next_epoch_near_the_limit_abandons_instead_of_an_undecodable_epoch(
    crumb: Breadcrumb | None, floor: int
) -> None:
    exhausted = getattr(decision, "EpochExhausted", ())
    try:
        epoch = decision.next_epoch(crumb, True, 3, floor=floor)
    except exhausted:  # type: ignore[misc]
        return
    pytest.fail(f"next_epoch gave {epoch} (decodable: {decodable(epoch)}) instead of giving up")


# -- plan_epoch: local floors far above ZooKeeper's epochs are anomalies ---------------


def floors(zookeeper: int, *local: tuple[str, str, int]) -> KnownEpochs:
    return KnownEpochs(zookeeper, tuple(LocalFloor(*f) for f in local))


def test_a_local_floor_within_the_slack_is_followed_and_one_beyond_is_not() -> None:
    crumb = Breadcrumb("mail1", 7, "t", True)
    near = floors(5, ("mail2", "fence_epoch", 7 + EPOCH_FLOOR_SLACK))
    plan = decision.plan_epoch(crumb, True, 9, near)
    assert (plan.epoch, plan.ignored) == (8 + EPOCH_FLOOR_SLACK, ())
    far = floors(5, ("mail2", "fence_epoch", TOP), ("mail3", "seen_epoch", 40))
    plan = decision.plan_epoch(crumb, True, 9, far)
    assert plan.epoch == 41 and plan.zookeeper == 7
    assert plan.ignored == (LocalFloor("mail2", "fence_epoch", TOP),)


def test_after_a_loss_of_zookeepers_data_the_nodes_floors_still_count() -> None:
    """ZooKeeper shows nothing: every floor up to the slack is believed."""
    plan = decision.plan_epoch(None, True, None, floors(0, ("mail2", "seen_epoch", 812)))
    assert (plan.epoch, plan.ignored) == (813, ())


def test_an_epoch_in_zookeeper_itself_at_the_ceiling_leaves_no_epoch() -> None:
    plan = decision.plan_epoch(
        Breadcrumb("mail2", EPOCH_CEILING - 1, "t", False), True, 3, floors(0)
    )
    assert plan.epoch is None and "ceiling" in plan.why


def test_a_node_whose_own_marker_is_an_anomaly_does_not_contend_and_says_why() -> None:
    why = decision.marker_anomaly(TOP, 12)
    assert "operator" in why and "fence marker" in why
    assert decision.marker_anomaly(12 + EPOCH_FLOOR_SLACK, 12) == ""
    assert decision.marker_anomaly(None, 12) == ""
    o = obs(marker_anomaly=why)
    d = decision.decide(o)
    assert d.act is decision.Act.WAIT and why in d.reason
    assert eligibility(o) == Eligibility(False, why)


# -- the takeover itself ---------------------------------------------------------------


def takeover(known: KnownEpochs, marker_blocks: bool = False) -> tuple[NodeState, MagicMock]:
    t, st, world = make(Role.STANDBY)
    world.coord.try_acquire.return_value = True
    world.coord.read_breadcrumb.return_value = (Breadcrumb("mail2", 4, "t", False), True, 4)
    world.coord.highest_known_epoch.return_value = known
    world.marker.blocks.return_value = marker_blocks
    t.config.peers = [SimpleNamespace(name="mail2")]
    t.take_over(decision.Decision(decision.Act.CONTEND, "lock free", "takeover"))
    return st, world


def test_a_takeover_with_no_epoch_left_abandons_and_alerts_before_fencing_anybody(
    capsys: pytest.CaptureFixture[str],
) -> None:
    st, world = takeover(floors(EPOCH_CEILING - 1))
    assert world.fence_chain.fence.call_count == 0
    assert world.coord.write_breadcrumb.call_count == 0
    assert call.marker.record_active(ANY) not in world.mock_calls
    assert call.hooks.fire("epoch_exhausted", reason=ANY) in world.mock_calls
    assert call.coord.release_lock(ANY, ANY) in world.mock_calls
    assert st.role is Role.STANDBY and "ceiling" in st.reason
    assert "epoch_exhausted" in capsys.readouterr().out


def test_an_ignored_marker_is_reported_and_its_own_node_never_takes_an_epoch_it_refuses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    st, world = takeover(floors(4, ("mail1", "fence_epoch", TOP)), marker_blocks=True)
    assert world.fence_chain.fence.call_count == 0, "fenced a peer for an epoch it refuses"
    assert world.coord.write_breadcrumb.call_count == 0
    assert call.marker.blocks(5) in world.mock_calls
    assert st.role is Role.STANDBY
    out = capsys.readouterr().out
    assert "epoch_floor_ignored" in out and "critical" in out


# -- fence-self's bound and restore's validation --------------------------------------


def test_fence_self_accepts_up_to_the_slack_above_what_it_has_seen() -> None:
    assert refusal(EPOCH_FLOOR_SLACK, []) == ""  # a node that has seen nothing
    assert refusal(EPOCH_FLOOR_SLACK + 1, [None]) != ""
    assert refusal(9 + EPOCH_FLOOR_SLACK, [3, None, 9]) == ""
    assert "ceiling" in refusal(EPOCH_CEILING - 1, [EPOCH_CEILING - 2])


def test_restore_of_a_hostile_backup_writes_nothing() -> None:
    admin = FakeAdmin()
    bad = {
        "active": {"text": encode(Breadcrumb("mail1", 3, "t", False)).decode()},
        "control": None,
        "history": [{"name": "entry-0000000007", "text": '{"v":1}'}],
    }
    with pytest.raises(BackupError, match=r"history\[0\] \(entry-0000000007\)"):
        restore_backup(admin, bad, force=False, timeout=1.0)  # type: ignore[arg-type]
    assert admin.written == []
