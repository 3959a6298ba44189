"""The pure switchover decisions (failoverd/node/switchover.py)."""

from __future__ import annotations

from typing import Any

from failoverd.node.switchover import handover_done, pick_target
from failoverd.zk.znodes import MemberStatus


def member(name: str, priority: int = 0, maintenance: bool = False) -> MemberStatus:
    return MemberStatus(name, "standby", True, None, "1", "a", maintenance, "", "", priority)


def row(**kw: Any) -> dict[str, Any]:
    return {"connected": True, "healthy": True, "role": "standby", "fence_ready": {}, **kw}


def test_pick_target_prefers_the_lowest_priority_eligible_standby() -> None:
    rows = {"mail1": row(role="active"), "mail2": row(), "mail3": row()}
    members = {"mail1": member("mail1"), "mail2": member("mail2", 2), "mail3": member("mail3", 1)}
    assert pick_target(rows, members, "mail1") == "mail3"


def test_pick_target_skips_unhealthy_disconnected_ineligible_and_maintenance() -> None:
    rows = {
        "mail1": row(role="active"),
        "mail2": row(healthy=False),
        "mail3": row(connected=False),
        "mail4": row(eligible=False),
        "mail5": row(),
        "mail6": row(role="fencing"),
    }
    members = {n: member(n) for n in rows}
    members["mail5"] = member("mail5", maintenance=True)
    assert pick_target(rows, members, "mail1") is None
    members["mail5"] = member("mail5")
    assert pick_target(rows, members, "mail1") == "mail5"


def test_pick_target_prefers_a_standby_whose_fencing_works_over_priority() -> None:
    rows = {"mail2": row(fence_ready={"ssh": False}), "mail3": row(fence_ready={"ssh": True})}
    members = {"mail2": member("mail2", 0), "mail3": member("mail3", 5)}
    assert pick_target(rows, members, "mail1") == "mail3"


def test_handover_is_done_only_when_the_target_holds_the_lease() -> None:
    assert handover_done("mail2", "mail2", "mail1")
    assert not handover_done("mail2", None, "mail1")  # lease free: not yet
    assert not handover_done("mail2", "mail3", "mail1")  # someone else: not the handover
    assert not handover_done("mail2", "", "mail1")  # unreadable holder proves nothing
    assert not handover_done("mail2", "mail1", "mail1")
    assert handover_done("", "mail3", "mail1")  # untargeted request: any other holder
    assert not handover_done(None, "mail2", "mail1")  # no switchover pending
