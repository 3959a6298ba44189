"""Hostile znodes and ZooKeeper access on a real ZooKeeper with real daemons."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError, SessionClosedRequireSaslError
from kazoo.security import OPEN_ACL_UNSAFE

from failoverd.zk.acl import digest_id
from tests.integration.cluster import REPO, Cluster, wait_for
from tests.support.access import digest_auth, write_credential
from tests.support.zookeeper import ZooKeeperServer

HUGE_INT = "9" * 5000


def node_client(c: Cluster, zk: ZooKeeperServer) -> KazooClient:
    client = KazooClient(hosts=zk.address, auth_data=digest_auth(c.credential_file))
    client.start(timeout=10)
    return client


def fence_calls(c: Cluster) -> list[dict[str, object]]:
    path = c.root / "fence-calls.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def step_failures(c: Cluster) -> list[dict[str, object]]:
    return [e for n in c.nodes.values() for e in n.events() if e.get("event") == "step_failed"]


def started(c: Cluster) -> str:
    c.start()
    active = c.wait_active(timeout=20)
    wait_for(lambda: all(m["connected"] for m in c.status()["members"]), 10, "both connected")
    return active


# --- one bad znode must not wedge the cluster --------------------------------------


def test_poisoned_history_and_stray_members_do_not_stop_a_failover(
    zk: ZooKeeperServer, make_cluster
) -> None:
    c = make_cluster(zk_hosts=zk.address)
    assert started(c) == "mail1"
    base = f"/failoverd/{c.cluster}"
    client = node_client(c, zk)
    try:
        # An entry whose epoch has 5000 digits (int() raises ValueError), one nested
        # 5000 deep (RecursionError), a member nobody configured claiming a huge
        # epoch, and a garbage one.
        client.create(
            f"{base}/history/entry-",
            f'{{"v":1,"time":"t","node":"mail1","event":"x","reason":"r","epoch":{HUGE_INT}}}'.encode(),
            sequence=True,
        )
        client.create(f"{base}/history/entry-", b'{"a":' * 5000 + b"1" + b"}" * 5000, sequence=True)
        stray = {
            "v": 1, "node": "intruder", "role": "standby", "healthy": True, "epoch": 2**52,
            "version": "9", "address": "x", "maintenance": False, "reason": "", "since": "t",
            "priority": 0,
        }  # fmt: skip
        client.create(f"{base}/members/intruder", json.dumps(stray).encode())
        client.create(f"{base}/members/zz-garbage", b"[" * 60000)
    finally:
        client.stop()
        client.close()
    c.nodes["mail1"].kill()
    assert c.wait_active(timeout=25, other_than="mail1") == "mail2"
    st = c.status()
    assert st["active"]["epoch"] == 2  # neither the stray member nor the poison moved it
    assert [x["target"] for x in fence_calls(c)] == ["mail1"]
    assert not step_failures(c)
    c.assert_never_two_serving()


def test_poisoned_control_freezes_failover_but_never_stops_the_loop(
    zk: ZooKeeperServer, make_cluster
) -> None:
    c = make_cluster(zk_hosts=zk.address)
    assert started(c) == "mail1"
    client = node_client(c, zk)
    try:
        poison = b'{"v":1,"maintenance":false,"switchover":{"id":' + HUGE_INT.encode() + b"}}"
        client.set(f"/failoverd/{c.cluster}/control", poison)
    finally:
        client.stop()
        client.close()
    # Unreadable intent reads as maintenance (no automatic transitions) ...
    wait_for(lambda: c.status()["maintenance"], 10, "status shows maintenance")
    wait_for(
        lambda: any(e.get("event") == "control_unreadable" for e in c.nodes["mail2"].events()),
        10,
        "mail2 read the poisoned control",
    )
    time.sleep(1.0)  # a few loop cycles on both nodes with the poison in place
    assert not step_failures(c)
    # ... until an operator writes a good one, and then failover works.
    assert c.ctl("maintenance", "off", "--reason", "cleared poison").returncode == 0
    wait_for(lambda: not c.status()["maintenance"], 10, "maintenance off")
    c.nodes["mail1"].kill()
    assert c.wait_active(timeout=25, other_than="mail1") == "mail2"
    assert not step_failures(c)
    c.assert_never_two_serving()


# --- ZooKeeper closed by default ---------------------------------------------------


def test_daemon_and_check_refuse_to_run_without_auth_unless_insecure(
    zk: ZooKeeperServer, make_cluster
) -> None:
    c = make_cluster(zk_hosts=zk.address, auth=False, extra={"zookeeper": {"insecure": False}})
    config = str(c.nodes["mail1"].config_path)
    check = subprocess.run(
        [sys.executable, "-m", "failoverd.main", "-c", config, "--check"],
        capture_output=True, text=True, cwd=REPO, check=False,
    )  # fmt: skip
    assert check.returncode == 2
    assert f"{config}: zookeeper.auth: is required" in check.stderr
    c.nodes["mail1"].start()
    assert c.nodes["mail1"].proc is not None and c.nodes["mail1"].proc.wait(20) == 2
    assert "zookeeper.auth: is required" in c.nodes["mail1"].log_path.read_text()
    # Asked for explicitly, the open mode runs.
    open_c = make_cluster(zk_hosts=zk.address, auth=False)
    assert started(open_c) in ("mail1", "mail2")


def test_daemon_refuses_a_tree_whose_acl_was_changed(zk: ZooKeeperServer, make_cluster) -> None:
    c = make_cluster(zk_hosts=zk.address)
    assert started(c) == "mail1"
    c.stop()
    client = node_client(c, zk)
    try:
        client.set_acls(f"/failoverd/{c.cluster}/active", OPEN_ACL_UNSAFE)
    finally:
        client.stop()
        client.close()
    c.nodes["mail1"].start()
    assert c.nodes["mail1"].proc is not None and c.nodes["mail1"].proc.wait(20) == 2
    events = [e for e in c.nodes["mail1"].events() if e.get("event") == "zookeeper_acl_mismatch"]
    assert events and "/active: ACL is [world:anyone:rwcda]" in events[0]["mismatches"][0]
    assert not any(e.get("event") == "promoted" for e in c.nodes["mail1"].events()[-20:])
    # The repair the hint names, with the nodes' credential: then it runs again.
    fixed = c.ctl("fix-acl", via="mail1")
    assert fixed.returncode == 0, fixed.stderr
    c.start()
    assert c.wait_active(timeout=20) in ("mail1", "mail2")


# --- separate identities -------------------------------------------------------------


@pytest.fixture
def operator(tmp_path: Path) -> tuple[Path, str]:
    path = tmp_path / "alice.secret"
    credential = write_credential(path, user="alice")
    return path, digest_id(*credential.split(":", 1))


def test_an_operator_may_read_everything_but_write_only_control(
    zk: ZooKeeperServer, make_cluster, operator: tuple[Path, str]
) -> None:
    cred_file, digest = operator
    c = make_cluster(zk_hosts=zk.address, extra={"zookeeper": {"operators": [digest]}})
    assert started(c) == "mail1"
    base = f"/failoverd/{c.cluster}"
    op = KazooClient(hosts=zk.address, auth_data=digest_auth(cred_file))
    op.start(timeout=10)
    try:
        for name in ("active", "control", "lock", "members/mail1"):
            op.get(f"{base}/{name}")
        assert op.get_children(f"{base}/history") is not None
        data, stat = op.get(f"{base}/control")
        op.set(f"{base}/control", data, version=stat.version)
        forbidden = [
            lambda: op.delete(f"{base}/lock"),
            lambda: op.set(f"{base}/active", b'{"v":1,"node":"mail1","epoch":1,"clean":true}'),
            lambda: op.create(f"{base}/history/entry-", b"{}", sequence=True),
            lambda: op.delete(f"{base}/members/mail1"),
            lambda: op.set_acls(f"{base}/control", OPEN_ACL_UNSAFE),
        ]
        for attempt in forbidden:
            with pytest.raises(NoAuthError):
                attempt()
    finally:
        op.stop()
        op.close()


def test_maintenance_reason_and_operator_go_into_status_and_history_once(
    zk: ZooKeeperServer, make_cluster, operator: tuple[Path, str]
) -> None:
    cred_file, digest = operator
    c = make_cluster(zk_hosts=zk.address, extra={"zookeeper": {"operators": [digest]}})
    assert started(c) == "mail1"
    on = c.ctl("--credential", str(cred_file), "maintenance", "on", "--reason", "disk swap")
    assert on.returncode == 0, on.stderr
    st = c.ctl("status")
    assert re.search(r"maintenance set by alice since \S+: disk swap", st.stdout), st.stdout
    assert json.loads(c.ctl("status", "--json").stdout)["maintenance"] is True

    def entries() -> list[dict[str, object]]:
        out = c.ctl("history", "--json")
        return [e for e in json.loads(out.stdout) if e and e["event"].startswith("maintenance")]

    wait_for(entries, 10, "a maintenance entry in history")
    off = c.ctl("--credential", str(cred_file), "maintenance", "off", "--reason", "done")
    assert off.returncode == 0, off.stderr
    wait_for(lambda: len(entries()) == 2, 10, "the maintenance off entry")
    time.sleep(1.0)  # the standby must not add its own copies
    got = entries()
    assert [(e["event"], e["by"], e["reason"], e["node"]) for e in reversed(got)] == [
        ("maintenance_on", "alice", "disk swap", "mail1"),
        ("maintenance_off", "alice", "done", "mail1"),
    ]


def test_a_server_that_enforces_auth_serves_the_nodes_and_closes_on_anonymous(
    tmp_path: Path, make_cluster
) -> None:
    """Enforced digest (what deploy/zookeeper/zoo.cfg shipped before sasl, and what
    zookeeper.auth.scheme: digest still needs): the daemons and failoverctl
    authenticate before their first request, anonymous clients get nothing.
    test_zk_closed.py runs the shipped sasl settings."""
    from tests.support.zookeeper import free_port

    server = ZooKeeperServer(
        tmp_path / "zk-enforced",
        free_port(),
        extra_config=["enforce.auth.enabled=true", "enforce.auth.schemes=digest"],
    )
    server.start()
    try:
        server.wait_serving()
        c = make_cluster(zk_hosts=server.address)
        assert started(c) == "mail1"
        assert c.ctl("status").returncode == 0
        anon = KazooClient(hosts=server.address, connection_retry={"max_tries": 1})
        with pytest.raises(SessionClosedRequireSaslError):  # closed, nothing answered
            anon.start(timeout=3)
            anon.get(f"/failoverd/{c.cluster}/active")
        anon.stop()
        anon.close()
        c.stop()
    finally:
        server.stop()


def test_a_marker_far_ahead_of_zookeepers_epoch_raises_a_critical_alert(
    zk: ZooKeeperServer, make_cluster
) -> None:
    from failoverd.fencing.marker import FenceMarker

    c = make_cluster(zk_hosts=zk.address)
    # A fence-self with a made-up epoch, before mail2's daemon ever ran.
    FenceMarker(c.state_dirs["mail2"]).write(50, by="test")
    assert started(c) == "mail1"

    def alerts() -> list[dict[str, object]]:
        return [e for e in c.nodes["mail2"].events() if e.get("event") == "fence_marker_ahead"]

    (alert,) = wait_for(alerts, 10, "fence_marker_ahead on mail2")
    assert alert["level"] == "critical"
    assert (alert["marker_epoch"], alert["zookeeper_epoch"]) in ((50, 0), (50, 1))
    assert not [e for e in c.nodes["mail1"].events() if e.get("event") == "fence_marker_ahead"]


def test_an_operator_switchover_is_served_and_recorded_with_who_and_why(
    zk: ZooKeeperServer, make_cluster, operator: tuple[Path, str]
) -> None:
    cred_file, digest = operator
    c = make_cluster(zk_hosts=zk.address, extra={"zookeeper": {"operators": [digest]}})
    assert started(c) == "mail1"
    out = c.ctl("--credential", str(cred_file), "switchover", "--to", "mail2", "--reason", "patch")
    assert out.returncode == 0, out.stderr
    assert c.wait_active(timeout=10) == "mail2"

    def requested() -> list[dict[str, object]]:
        entries = json.loads(c.ctl("history", "--json").stdout)
        return [e for e in entries if e and e["event"] == "switchover_requested"]

    (entry,) = wait_for(requested, 10, "switchover_requested in history")
    assert (entry["by"], entry["reason"], entry["node"]) == ("alice", "to mail2: patch", "mail1")
    # The operator's credential cannot do what only nodes may.
    refused = c.ctl("--credential", str(cred_file), "fix-acl")
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    c.assert_never_two_serving()
