"""The operator's word that a node is down (failoverctl confirm-fenced;
node/confirmation.py): whom it covers, when failoverctl refuses it, what garbage
in it means, how history records it, and what an older release makes of it."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from failoverd.node.confirmation import applies, lease_wait, refusal, withdrawal
from failoverd.node.daemon import Daemon
from failoverd.node.operator_audit import OperatorAudit
from failoverd.zk.znodes import (
    Breadcrumb,
    Control,
    FenceConfirmation,
    OperatorRequest,
    OperatorRequests,
    encode,
)
from tests.unit.test_formats import old_release

CID = "0f8fad5b-d9cb-469f-a165-70867728950e"
CONF = FenceConfirmation(CID, "mail1", 7, "alice", "2026-12-06T23:00:00.000Z", "site gone")
CRUMB = Breadcrumb("mail1", 7, "t", False)
MEMBERS = ("mail1", "mail2")


def test_a_confirmation_covers_its_node_in_the_term_it_names() -> None:
    assert applies(CONF, "mail1", CRUMB, True, connected={"mail2"}).ok


@pytest.mark.parametrize(
    "conf, target, crumb, readable, connected, why",
    [
        (None, "mail1", CRUMB, True, (), ""),
        (CONF, "mail3", CRUMB, True, (), "names mail1, not mail3"),
        # A takeover since moved the breadcrumb on: an earlier incident's confirmation.
        (CONF, "mail1", replace(CRUMB, epoch=9), True, (), "earlier incident"),
        (CONF, "mail1", replace(CRUMB, clean=True), True, (), "no longer names"),
        (CONF, "mail1", replace(CRUMB, node="mail2"), True, (), "no longer names"),
        (CONF, "mail1", None, False, (), "no longer names"),
        (CONF, "mail1", CRUMB, True, ("mail1",), "connected to ZooKeeper again"),
    ],
)
def test_a_confirmation_does_not_cover(
    conf: FenceConfirmation | None,
    target: str,
    crumb: Breadcrumb | None,
    readable: bool,
    connected: tuple[str, ...],
    why: str,
) -> None:
    verdict = applies(conf, target, crumb, readable, connected)
    assert not verdict.ok
    assert why in verdict.why


@pytest.mark.parametrize(
    "node, crumb, readable, holder, connected, why",
    [
        ("mail9", CRUMB, True, None, (), "not a configured member"),
        ("mail1", CRUMB, True, None, ("mail1",), "connected to ZooKeeper"),
        ("mail1", CRUMB, True, "mail1", (), "holds the lock"),
        ("mail1", CRUMB, True, "", (), "lock znode is unreadable"),
        ("mail1", None, False, None, (), "breadcrumb is unreadable"),
        ("mail1", Breadcrumb.floor(7), True, None, (), "names no previous active"),
        ("mail2", CRUMB, True, None, (), "mail2 is not the last active (mail1 is)"),
        ("mail1", replace(CRUMB, clean=True), True, None, (), "handed over cleanly"),
    ],
)
def test_failoverctl_refuses_a_confirmation(
    node: str,
    crumb: Breadcrumb | None,
    readable: bool,
    holder: str | None,
    connected: tuple[str, ...],
    why: str,
) -> None:
    got = refusal(node, MEMBERS, crumb, readable, holder, connected)
    assert got is not None and why in got


def test_failoverctl_accepts_a_confirmation_for_the_disconnected_last_active() -> None:
    assert refusal("mail1", MEMBERS, CRUMB, True, None, ("mail2",)) is None
    assert refusal("mail1", MEMBERS, CRUMB, True, "mail2", ("mail2",)) is None


def test_the_takeover_waits_out_the_session_timeout_and_the_margin() -> None:
    assert lease_wait(10.0, 2.0) == 12.0


def control_with(confirmation: object) -> bytes:
    body = json.loads(encode(Control()))
    body["fence_confirmed"] = confirmation
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    "garbage",
    [
        "yes",
        {"node": "mail1"},
        {**json.loads(json.dumps(CONF.__dict__)), "epoch": "7"},
        {**json.loads(json.dumps(CONF.__dict__)), "id": "not-an-id"},
        {**json.loads(json.dumps(CONF.__dict__)), "node": "../mail1"},
        {**json.loads(json.dumps(CONF.__dict__)), "epoch": -1},
    ],
)
def test_garbage_in_the_confirmation_reads_as_none_and_leaves_control_readable(
    garbage: object,
) -> None:
    got = Control.decode(control_with(garbage))
    assert got.fence_confirmed is None
    assert got.maintenance is False  # not UNREADABLE_CONTROL: nothing freezes


def test_a_confirmation_round_trips() -> None:
    assert Control.decode(encode(Control(fence_confirmed=CONF))).fence_confirmed == CONF


def test_release_0_1_0_reads_a_control_with_a_confirmation_and_a_schedule_as_no_request() -> None:
    from failoverd.zk.znodes import Request

    sched = Request(CID, "mail2", 30.0, "alice", "2026-12-06T23:00:00.000Z", "", at=2e9)
    old = old_release().Control.decode(encode(Control(scheduled=sched, fence_confirmed=CONF)))
    assert (old.maintenance, old.switchover, old.failover) == (False, None, None)


def test_history_records_a_confirmation_with_the_name_its_request_znode_vouches_for() -> None:
    audit = OperatorAudit("mail2")
    changes = audit.changes(Control(fence_confirmed=CONF), recorder=True)
    assert [(c.kind, c.ref) for c in changes] == [("fence_confirmed", CID)]
    vouched = {"bob": (OperatorRequests((OperatorRequest("fence_confirmed", CID),)), 950)}
    [entry] = audit.entries(changes, vouched, 1000, 7, 0.0)
    assert (entry.event, entry.by) == ("fence_confirmed", "bob")
    assert "mail1 is down (its term at epoch 7): site gone" == entry.reason
    # Seen again: not recorded twice.
    assert audit.changes(Control(fence_confirmed=CONF), recorder=True) == []


def test_a_confirmation_nobody_vouches_for_is_recorded_as_a_claim() -> None:
    audit = OperatorAudit("mail2")
    changes = audit.changes(Control(fence_confirmed=CONF), recorder=True)
    [entry] = audit.entries(changes, {}, 1000, 7, 0.0)
    assert entry.by == "alice (claimed, via control)"


@pytest.mark.parametrize(
    "me, connected, why",
    [
        # Any daemon that sees the confirmed node's member znode: it came back.
        ("mail2", {"mail1", "mail2"}, "mail1 is connected to ZooKeeper again"),
        # The confirmed node's own daemon, even before its member znode is seen by
        # anyone: a reconnect shorter than the others' read interval is caught too.
        ("mail1", {"mail2"}, "mail1 is running and connected to ZooKeeper"),
    ],
)
def test_a_confirmation_is_withdrawn_once_its_node_is_seen_again(
    me: str, connected: set[str], why: str
) -> None:
    got = withdrawal(CONF, me, connected)
    assert got is not None and why in got


def test_a_confirmation_of_a_node_still_gone_stays() -> None:
    assert withdrawal(CONF, "mail2", {"mail2"}) is None
    assert withdrawal(None, "mail1", {"mail1"}) is None


class Withdrawer:
    """The daemon's part around `withdrawal` (Daemon._withdraw_confirmation) on fakes:
    what it read when, and what it wrote."""

    def __init__(self, me: str, members: dict[str, object], control_read_at: float) -> None:
        self.node = me
        self.state = SimpleNamespace(control=Control(fence_confirmed=CONF))
        self.state.control_read_at = control_read_at
        self.members, self.members_read_at = members, float("-inf")
        self.confirmations_withdrawn: set[str] = set()
        self.confirmation_seen = ("", 0.0)
        self.written: list[str] = []
        self.history: list[tuple[str, str]] = []
        self.coord = SimpleNamespace(withdraw_fence_confirmation=self._withdraw)

    def _withdraw(self, cid: str, timeout: float) -> bool:
        self.written.append(cid)
        return True

    def guard(self, what: str, fn: Any) -> Any:
        return fn()

    def _read_timeout(self) -> float:
        return 1.0

    def record_history(self, event: str, reason: str) -> None:
        self.history.append((event, reason))

    def step(self, members_read_at: float) -> None:
        self.members_read_at = members_read_at
        Daemon._withdraw_confirmation(self)  # type: ignore[arg-type]


def test_a_standby_that_sees_the_confirmed_node_again_withdraws_the_word_once() -> None:
    d = Withdrawer("mail2", {"mail1": None, "mail2": None}, control_read_at=10.0)
    d.step(members_read_at=10.0)  # read in the same loop, after control
    assert d.written == [CID]
    assert d.history[0][0] == "fence_confirmation_withdrawn"
    assert "mail1 is connected to ZooKeeper again" in d.history[0][1]
    d.step(members_read_at=12.0)
    assert d.written == [CID]  # judged once


def test_a_members_read_older_than_the_confirmation_does_not_withdraw_it() -> None:
    # This daemon's last members read still shows mail1 from before it went down.
    d = Withdrawer("mail2", {"mail1": None, "mail2": None}, control_read_at=10.0)
    d.step(members_read_at=8.0)
    assert d.written == [] and d.history == []


def test_the_confirmed_nodes_own_daemon_withdraws_it_at_once() -> None:
    d = Withdrawer("mail1", {}, control_read_at=10.0)
    d.step(members_read_at=float("-inf"))
    assert d.written == [CID] and "mail1 is running" in d.history[0][1]
