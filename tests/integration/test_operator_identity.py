"""Who history says did it: the operator ZooKeeper authenticated, never the name an
operator typed into `control` (which every operator may write).

Each operator has a request znode, `<cluster>/requests/<user>`, that only that
operator's digest credential (and the nodes) may write; the daemon takes `by` from
that znode's path. A claim made in `control` alone is recorded as a claim.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError, NoNodeError

from failoverd.zk.acl import digest_id
from failoverd.zk.znodes import HistoryEntry, encode, now_iso
from tests.integration.cluster import Cluster, wait_for
from tests.support.access import digest_auth, write_credential
from tests.support.zookeeper import ZooKeeperServer


@pytest.fixture
def operators(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """alice and bob, each with their own digest credential: name -> (file, digest id)."""
    out = {}
    for user in ("alice", "bob"):
        path = tmp_path / f"{user}.secret"
        credential = write_credential(path, user=user)
        out[user] = (path, digest_id(*credential.split(":", 1)))
    return out


def started(c: Cluster) -> str:
    c.start()
    active = c.wait_active(timeout=20)
    wait_for(lambda: all(m["connected"] for m in c.status()["members"]), 10, "both connected")
    return active


def cluster_with(make_cluster: Any, zk: ZooKeeperServer, ops: dict[str, tuple[Path, str]]) -> Any:
    digests = [d for _, d in ops.values()]
    return make_cluster(zk_hosts=zk.address, extra={"zookeeper": {"operators": digests}})


def client(zk: ZooKeeperServer, cred_file: Path) -> KazooClient:
    kz = KazooClient(hosts=zk.address, auth_data=digest_auth(cred_file))
    kz.start(timeout=10)
    return kz


def history(c: Cluster, limit: int = 20) -> list[dict[str, Any]]:
    out = c.ctl("history", "--json", "--limit", str(limit))
    return [e for e in json.loads(out.stdout) if e]


def maintenance_entries(c: Cluster) -> list[dict[str, Any]]:
    return [e for e in history(c) if e["event"].startswith("maintenance")]


def set_control(kz: KazooClient, base: str, change: dict[str, Any]) -> None:
    """What an old failoverctl (or a doctored one) writes: control, claims and all."""
    raw, stat = kz.get(f"{base}/control")
    d = json.loads(raw)
    d.update(change)
    kz.set(f"{base}/control", json.dumps(d).encode(), version=stat.version)


def test_bob_claiming_alice_in_control_is_not_recorded_as_alice(
    zk: ZooKeeperServer, make_cluster, operators: dict[str, tuple[Path, str]]
) -> None:
    c = cluster_with(make_cluster, zk, operators)
    started(c)
    base = f"/failoverd/{c.cluster}"
    bob = client(zk, operators["bob"][0])
    try:
        # Bob writes control directly, claiming to be alice.
        change = {"maintenance_by": "alice", "maintenance_reason": "alice said so"}
        set_control(bob, base, {"maintenance": True, "maintenance_since": now_iso(), **change})
        (entry,) = wait_for(lambda: maintenance_entries(c), 10, "the maintenance entry")
        assert entry["by"] != "alice", f"history believes the claim: {entry}"
        assert entry["by"] == "alice (claimed, via control)", entry
        st = c.ctl("status").stdout
        assert "maintenance set by alice (claimed, via control) since" in st, st
    finally:
        bob.stop()
        bob.close()


def test_bob_is_recorded_as_bob_from_his_request_znode_whatever_he_claims(
    zk: ZooKeeperServer, make_cluster, operators: dict[str, tuple[Path, str]]
) -> None:
    c = cluster_with(make_cluster, zk, operators)
    started(c)
    base = f"/failoverd/{c.cluster}"
    bob_file = operators["bob"][0]
    # The ordinary way: failoverctl with bob's own credential.
    on = c.ctl("--credential", str(bob_file), "maintenance", "on", "--reason", "disk swap")
    assert on.returncode == 0, on.stderr
    (entry,) = wait_for(lambda: maintenance_entries(c), 10, "the maintenance_on entry")
    assert (entry["event"], entry["by"]) == ("maintenance_on", "bob"), entry
    assert "maintenance set by bob since" in c.ctl("status").stdout
    # A doctored failoverctl: bob's own request znode and control, both claiming alice.
    bob = client(zk, bob_file)
    try:
        since = now_iso()
        forged = {"v": 1, "recent": [{"kind": "maintenance_off", "ref": since, "by": "alice"}]}
        try:
            bob.set(f"{base}/requests/bob", json.dumps(forged).encode())
        except NoNodeError:
            pass  # a release without request znodes
        set_control(
            bob,
            base,
            {
                "maintenance": False,
                "maintenance_by": "alice",
                "maintenance_since": since,
                "maintenance_reason": "forged",
            },
        )
        wait_for(lambda: len(maintenance_entries(c)) == 2, 10, "the maintenance_off entry")
        off = maintenance_entries(c)[0]
        assert (off["event"], off["by"]) == ("maintenance_off", "bob"), off
    finally:
        bob.stop()
        bob.close()


def test_bob_cannot_write_alices_request_znode(
    zk: ZooKeeperServer, make_cluster, operators: dict[str, tuple[Path, str]]
) -> None:
    c = cluster_with(make_cluster, zk, operators)
    started(c)
    base = f"/failoverd/{c.cluster}"
    bob = client(zk, operators["bob"][0])
    alice = client(zk, operators["alice"][0])
    try:
        bob.get(f"{base}/requests/alice")  # everyone may read it
        with pytest.raises(NoAuthError):
            bob.set(f"{base}/requests/alice", b'{"v":1}')
        with pytest.raises(NoAuthError):
            bob.delete(f"{base}/requests/alice")
        with pytest.raises(NoAuthError):
            bob.create(f"{base}/requests/mallory", b"")
        with pytest.raises(NoAuthError):
            bob.set(f"{base}/requests/:nodes", b'{"v":1}')
        alice.set(f"{base}/requests/alice", b'{"v":1}')  # her own she may
    finally:
        for kz in (bob, alice):
            kz.stop()
            kz.close()


def test_seventy_requests_from_bob_cannot_push_real_entries_out_of_history(
    zk: ZooKeeperServer, make_cluster, operators: dict[str, tuple[Path, str]]
) -> None:
    c = cluster_with(make_cluster, zk, operators)
    active = started(c)
    base = f"/failoverd/{c.cluster}"
    nodes = client(zk, c.credential_file)
    bob = client(zk, operators["bob"][0])
    try:
        # The first real entry, then a busy history: 150 more entries. 70 more
        # would push the first out (history keeps 200); 40 (two caps) would not.
        real = wait_for(lambda: history(c, 1000), 10, "a first history entry")[-1]
        for i in range(150):
            filler = HistoryEntry(now_iso(), active, "demoted", None, f"filler {i}")
            nodes.create(f"{base}/history/entry-", encode(filler), sequence=True)
        # Nothing acts on these: maintenance is on and the target does not exist.
        set_control(bob, base, {"maintenance": True, "maintenance_since": now_iso()})
        for i in range(70):
            rid = str(uuid.uuid4())
            req = {
                "id": rid,
                "to": "nosuch",
                "timeout": 60.0,
                "requested_by": "bob",
                "requested_at": now_iso(),
                "reason": f"churn {i}",
            }
            if i % 2:  # half through bob's own request znode, half through control alone
                mine = {"v": 1, "recent": [{"kind": "switchover", "ref": rid, "by": "bob"}]}
                try:
                    bob.set(f"{base}/requests/bob", json.dumps(mine).encode())
                except NoNodeError:
                    pass
            set_control(bob, base, {"switchover": req})

            def seen(rid: str = rid) -> bool:
                return any(
                    e.get("event") == "operator_request_seen" and e.get("id") == rid
                    for e in c.nodes[active].events()
                )

            wait_for(seen, 10, f"request {i} seen by the active")
        # Let the recorder write and prune.
        wait_for(
            lambda: (
                any(e.get("event") == "operator_history_capped" for e in c.nodes[active].events())
                or len(history(c, 1000)) >= 200
            ),
            10,
            "the cap or a full history",
        )
        entries = history(c, 1000)
        requested = [e for e in entries if e["event"] == "switchover_requested"]
        assert real in entries, f"the first real entry {real} was pushed out"
        assert len(requested) <= 40, f"{len(requested)} switchover_requested entries recorded"
        capped = [
            e for e in c.nodes[active].events() if e.get("event") == "operator_history_capped"
        ]
        assert 1 <= len(capped) <= 2, capped  # one per bucket: bob, and claims via control
    finally:
        for kz in (nodes, bob):
            kz.stop()
            kz.close()


def test_without_a_request_znode_failoverctl_still_works_and_history_marks_the_claim(
    zk: ZooKeeperServer, make_cluster, operators: dict[str, tuple[Path, str]]
) -> None:
    """Daemons of a release without request znodes (rolling upgrade): the new
    failoverctl still makes the change, and says its name will be a claim."""
    c = cluster_with(make_cluster, zk, operators)
    started(c)
    nodes = client(zk, c.credential_file)
    try:
        nodes.delete(f"/failoverd/{c.cluster}/requests/alice")
    finally:
        nodes.stop()
        nodes.close()
    alice_file = operators["alice"][0]
    on = c.ctl("--credential", str(alice_file), "maintenance", "on", "--reason", "patch")
    assert on.returncode == 0, on.stderr
    assert "history will record your name as claimed" in on.stderr, on.stderr
    (entry,) = wait_for(lambda: maintenance_entries(c), 10, "the maintenance_on entry")
    assert entry["by"] == "alice (claimed, via control)", entry


def test_failoverctl_with_the_nodes_credential_is_recorded_as_the_node_and_a_claimed_login(
    zk: ZooKeeperServer, make_cluster, operators: dict[str, tuple[Path, str]]
) -> None:
    c = cluster_with(make_cluster, zk, operators)
    started(c)
    on = c.ctl("maintenance", "on", "--reason", "root on a node")
    assert on.returncode == 0, on.stderr
    (entry,) = wait_for(lambda: maintenance_entries(c), 10, "the maintenance_on entry")
    assert entry["by"].startswith("node:") and entry["by"].endswith(", claimed)"), entry
    assert "via control" not in entry["by"], entry
