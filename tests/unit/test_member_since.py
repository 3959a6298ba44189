"""A member's `since` is when its role (and the reason for it) last changed.

`failoverctl status` shows it as the age of LAST TRANSITION. It used to be stamped
at every write of the member znode: a standby whose start failed hours ago and
that has been healthy since (its health, eligibility or fence readiness changed,
so the znode was written again) showed the old failure as if it had just
happened. The Publisher is driven here with stand-ins for what it publishes.
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import pytest

from failoverd.node import publish
from failoverd.node.decision import Observation, Role
from failoverd.node.publish import Publisher
from failoverd.node.state import NodeState
from failoverd.zk.znodes import MemberStatus

OBSERVATION = Observation(
    now=0.0,
    node="mail2",
    role=Role.STANDBY,
    connected=True,
    lease_valid=False,
    lease_remaining=0.0,
    lock_holder="mail1",
    lock_is_ours=False,
    fenced=False,
    healthy=True,
    maintenance=False,
    backoff_until=0.0,
    lock_free_since=None,
    priority_delay=0.0,
    healthy_peer=True,
    switchover_to=None,
    switchover_pending=False,
    failover_to=None,
    flap_limited=False,
    dirty=False,
    flap_backoff=30.0,
)


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    clock = ["2026-12-06T10:00:00.000Z"]
    monkeypatch.setattr(publish, "now_iso", lambda: clock[0])
    return clock


def publisher(state: NodeState, health: Any) -> tuple[Publisher, MagicMock]:
    coord = MagicMock(connected=True)
    config: Any = SimpleNamespace(
        cluster="mail-east", node=SimpleNamespace(name="mail2", address="10.0.0.12", priority=1)
    )
    p = Publisher(
        state,
        config=config,
        coord=coord,
        lease=MagicMock(),
        marker=MagicMock(**{"published_epoch.return_value": None}),
        membership=MagicMock(seen_epoch=0),
        health=health,
        readiness=MagicMock(
            **{"summary.return_value": {"ssh": True}, "paths_down.return_value": ()}
        ),
        watchdog=MagicMock(**{"published.return_value": None}),
        http=MagicMock(bind_error=""),
        metrics=MagicMock(),
        observe=lambda now: replace(OBSERVATION, healthy=health.healthy),
        members=dict,
        read_timeout=lambda: 1.0,
    )
    return p, coord


def written(coord: MagicMock) -> list[MemberStatus]:
    return [c.args[0] for c in coord.write_member.call_args_list]


def test_since_stays_at_the_transition_when_the_member_is_written_again_later(
    wall: list[str],
) -> None:
    state = NodeState(role=Role.STANDBY, reason="demoting: postfix@-.service did not start")
    health = SimpleNamespace(healthy=False, results=[SimpleNamespace(name="smtp", ok=False)])
    p, coord = publisher(state, health)
    p.write_member()  # the failed takeover's DEMOTING -> STANDBY, published at 10:00
    wall[0] = "2026-12-06T13:00:00.000Z"
    health.healthy, health.results = True, []  # healthy again three hours later
    p.report()
    first, later = written(coord)
    assert later.healthy and not first.healthy  # written again...
    assert later.reason == first.reason
    assert later.since == "2026-12-06T10:00:00.000Z"  # ...but the transition is as old as it is


def test_since_moves_with_a_new_role_or_a_new_reason(wall: list[str]) -> None:
    state = NodeState(role=Role.STANDBY, reason="started")
    health = SimpleNamespace(healthy=True, results=[])
    p, coord = publisher(state, health)
    p.write_member()
    wall[0] = "2026-12-06T10:05:00.000Z"
    state.reason = "abandoned work gone"  # set_role(same role, new reason)
    p.write_member()
    wall[0] = "2026-12-06T10:09:00.000Z"
    state.role, state.reason = Role.ACTIVE, "promoted with epoch 8"
    p.write_member()
    assert [m.since for m in written(coord)] == [
        "2026-12-06T10:00:00.000Z",
        "2026-12-06T10:05:00.000Z",
        "2026-12-06T10:09:00.000Z",
    ]
