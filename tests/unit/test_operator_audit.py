"""Who history says made an operator's change (node/operator_audit.py): the request
znode that vouches for it, never the name `control` carries; and the cap on what
one operator may put into history."""

from __future__ import annotations

from pathlib import Path

import pytest
from kazoo.security import Permissions
from structlog.testing import capture_logs

from failoverd.node.operator_audit import (
    CAP_WINDOW,
    FRESH_MS,
    HISTORY_CAP,
    Change,
    OperatorAudit,
)
from failoverd.zk.acl import NODES_REQUEST, digest_id, request_acl
from failoverd.zk.requests import RequestZnodes
from failoverd.zk.znodes import (
    REQUESTS_KEPT,
    OperatorRequest,
    OperatorRequests,
    ZnodeError,
    encode,
)

RID = "0f8fad5b-d9cb-469f-a165-70867728950e"
CONTROL_AT = 1_000_000  # control's mtime (ms)


def znode(*reqs: OperatorRequest, mtime: int = CONTROL_AT - 50) -> tuple[OperatorRequests, int]:
    return OperatorRequests(tuple(reqs)), mtime


def by(audit: OperatorAudit, change: Change, requests: dict, now: float = 0.0) -> str | None:
    got = audit.entries([change], requests, CONTROL_AT, 1, now)
    return got[0].by if got else None


ON = Change("maintenance_on", "2026-01-01T00:00:00.000Z", "alice", "disk swap")


def test_the_request_znodes_path_names_the_operator_not_what_it_or_control_claims() -> None:
    bobs = znode(OperatorRequest("maintenance_on", ON.ref, by="alice"))
    assert by(OperatorAudit("mail1"), ON, {"bob": bobs}) == "bob"


def test_a_change_no_request_znode_lists_is_a_marked_claim() -> None:
    other = znode(OperatorRequest("maintenance_on", "another time"))
    assert by(OperatorAudit("mail1"), ON, {"alice": other}) == "alice (claimed, via control)"
    off = znode(OperatorRequest("maintenance_off", ON.ref))  # the same ref, another kind
    assert by(OperatorAudit("mail1"), ON, {"alice": off}) == "alice (claimed, via control)"
    nobody = Change("switchover", RID, "", "to any")
    assert by(OperatorAudit("mail1"), nobody, {}) == "unknown (claimed, via control)"


def test_a_stale_request_znode_vouches_for_nothing() -> None:
    old = znode(OperatorRequest("maintenance_on", ON.ref), mtime=CONTROL_AT - FRESH_MS - 1)
    assert by(OperatorAudit("mail1"), ON, {"alice": old}) == "alice (claimed, via control)"


def test_a_change_written_back_into_control_is_credited_once() -> None:
    audit = OperatorAudit("mail1")
    alices = {"alice": znode(OperatorRequest("maintenance_on", ON.ref))}
    assert by(audit, ON, alices) == "alice"
    assert by(audit, ON, alices) == "alice (claimed, via control)"  # bob's replay


def test_the_nodes_request_znode_records_the_host_and_login_as_a_claim() -> None:
    label = "node:mx1 (sudo user carol, claimed)"
    nodes = {NODES_REQUEST: znode(OperatorRequest("maintenance_on", ON.ref, by=label))}
    assert by(OperatorAudit("mail1"), ON, nodes) == label
    # without a request znode (no zookeeper.auth): the same label, via control
    unvouched = Change(ON.kind, ON.ref, label, "x")
    assert (
        by(OperatorAudit("mail1"), unvouched, {})
        == "node:mx1 (sudo user carol, claimed, via control)"
    )
    odd = {NODES_REQUEST: znode(OperatorRequest("maintenance_on", ON.ref, by="alice"))}
    assert by(OperatorAudit("mail1"), ON, odd) == "node:? (alice, claimed)"


def test_one_operator_gets_at_most_the_cap_per_window_with_one_log_line() -> None:
    audit = OperatorAudit("mail1")
    ids = [f"{i:08x}-0000-4000-8000-000000000000" for i in range(HISTORY_CAP + 30)]
    with capture_logs() as logs:
        recorded = [
            by(
                audit,
                Change("switchover", rid, "bob", "x"),
                {"bob": znode(OperatorRequest("switchover", rid))},
            )
            for rid in ids
        ]
        claims = [by(audit, Change("failover", rid, "alice", "x"), {}) for rid in ids]
        # alice's own allowance is untouched by bob's churn and by the claims
        alices = {"alice": znode(OperatorRequest("maintenance_on", ON.ref))}
        assert by(audit, ON, alices) == "alice"
    assert recorded.count("bob") == HISTORY_CAP and recorded.count(None) == 30
    assert claims.count(None) == 30  # claims via control share one allowance
    capped = [e for e in logs if e["event"] == "operator_history_capped"]
    assert [e["by"] for e in capped] == ["bob", "(claims via control)"]
    # a window later, bob may again
    rid = "ffffffff-0000-4000-8000-000000000000"
    bobs = {"bob": znode(OperatorRequest("switchover", rid))}
    assert by(audit, Change("switchover", rid, "bob", "x"), bobs, now=CAP_WINDOW) == "bob"


def test_a_request_znode_keeps_the_newest_changes_and_rejects_garbage() -> None:
    mine = OperatorRequests()
    for i in range(REQUESTS_KEPT + 3):
        mine = mine.adding(OperatorRequest("switchover", str(i)))
    assert [r.ref for r in mine.recent] == [str(i) for i in range(3, REQUESTS_KEPT + 3)]
    assert OperatorRequests.decode(encode(mine)) == mine
    for raw in (b"", b'{"v":1}', b'{"v":1,"recent":[1]}', b'{"v":1,"recent":[{"kind":1}]}'):
        with pytest.raises(ZnodeError):
            OperatorRequests.decode(raw)


def test_each_request_znode_is_writable_by_its_operator_only(tmp_path: Path) -> None:
    from tests.unit.test_config import load, minimal, secret

    alice, bob, odd = digest_id("alice", "a"), digest_id("bob", "b"), digest_id("a/b", "c")
    cfg = minimal()
    cfg["zookeeper"]["auth"] = {"scheme": "digest", "credential_file": secret(tmp_path)}
    cfg["zookeeper"]["operators"] = [alice, bob, odd]
    config = load(tmp_path, cfg)
    perms = {a.id.id: a.perms for a in request_acl(config, "alice") or []}
    assert perms[alice] == Permissions.READ | Permissions.WRITE
    assert perms[bob] == perms[odd] == Permissions.READ
    assert perms[digest_id("failoverd", "s3cret")] == Permissions.ALL
    # a user name that cannot be a znode name gets no request znode (its changes are claims)
    assert RequestZnodes(config, None, "/x").names() == ("alice", "bob", NODES_REQUEST)
