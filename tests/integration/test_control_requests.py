"""Operator requests written straight into `control` (not through failoverctl), on a
real ZooKeeper with real daemons: whoever can write `control` must not be able to
switch failover off by naming a target that is not there."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient

from failoverd.zk.znodes import now_iso
from tests.integration.cluster import Cluster, wait_for
from tests.support.access import digest_auth
from tests.support.zookeeper import ZooKeeperServer

# Long enough that the request's own expiry cannot explain a takeover within WINDOW.
SWITCHOVER_TIMEOUT = 60.0
WINDOW = 10.0  # after the active stops: session 2 s, priority delay 0.2 s, start ~1 s


def write_request(c: Cluster, zk: ZooKeeperServer, kind: str, **fields: Any) -> dict[str, Any]:
    """Put a request into `control` with the nodes' own credential, as the audit did."""
    client = KazooClient(hosts=zk.address, auth_data=digest_auth(c.credential_file))
    client.start(timeout=10)
    try:
        path = f"/failoverd/{c.cluster}/control"
        raw, stat = client.get(path)
        control = json.loads(raw)
        request = {
            "id": str(uuid.uuid4()),
            "to": "ghost",
            "timeout": 3600,
            "requested_by": "mallory",
            "requested_at": now_iso(),
            **fields,
        }
        control[kind] = request
        client.set(path, json.dumps(control).encode(), version=stat.version)
        return request
    finally:
        client.stop()
        client.close()


def events(c: Cluster, name: str, event: str) -> list[dict[str, Any]]:
    return [e for e in c.nodes[name].events() if e.get("event") == event]


def test_a_switchover_to_a_ghost_does_not_keep_the_standby_from_taking_over(
    zk: ZooKeeperServer, tmp_path: Path
) -> None:
    c = Cluster(
        tmp_path / "c", zk.address, extra={"switchover": {"timeout": f"{SWITCHOVER_TIMEOUT:g}s"}}
    )
    try:
        c.start("mail1")
        assert c.wait_active(timeout=20, via="mail1") == "mail1"
        c.start("mail2")
        wait_for(lambda: all(m["connected"] for m in c.status()["members"]), 10, "both connected")
        req = write_request(c, zk, "switchover", to="ghost")
        wait_for(lambda: events(c, "mail2", "operator_request_seen"), 10, "mail2 to see it")

        # failoverctl shows the pending request, who wrote it and since when, and that
        # it is ignored: the daemons would not act on it.
        st = c.status()
        assert "switchover to ghost" in st["verdict"], st["verdict"]
        assert "mallory" in st["verdict"] and req["requested_at"] in st["verdict"]
        assert "ignored" in st["verdict"] and "not a configured member" in st["verdict"]
        assert st["verdict"].startswith("healthy"), st["verdict"]  # the active stays

        # The standby says so too, in `why` (as soon as it has published), and stays
        # eligible.
        def mail2_why() -> dict[str, Any] | None:
            row = next(m for m in c.status()["members"] if m["node"] == "mail2")
            return row if "ghost" in row["why"] else None

        row = wait_for(mail2_why, 5, "mail2's why to name the ghost request")
        assert row["eligible"] is True and "is ignored: ghost is not a configured" in row["why"]

        c.nodes["mail1"].stop()  # a clean stop: the lease is free at once
        stopped = time.monotonic()
        took = None
        while time.monotonic() - stopped < WINDOW:
            if c.active(via="mail2") == "mail2":
                took = time.monotonic() - stopped
                break
            time.sleep(0.1)
        row = next(m for m in c.status(via="mail2")["members"] if m["node"] == "mail2")
        decided = [e["reason"] for e in events(c, "mail2", "decided")]
        assert took is not None, (
            f"mail2 did not take over within {WINDOW:g}s of mail1's stop with a switchover "
            f"to 'ghost' pending; it publishes eligible={row['eligible']} "
            f"why={row['why']!r}; its last decision: {decided[-1:]}"
        )
        (ignored,) = [e for e in events(c, "mail2", "request_ignored") if e["id"] == req["id"]]
        assert ignored["kind"] == "switchover" and ignored["to"] == "ghost"
        assert "not a configured member" in ignored["reason"]
        assert not any("standing aside" in r for r in decided), decided
        c.assert_never_two_serving()
    finally:
        c.stop()


def test_a_switchover_written_with_a_forced_failover_never_promotes_the_sick_target(
    zk: ZooKeeperServer, make_cluster: Any, tmp_path: Path
) -> None:
    """The audit's other case, with three nodes: a switchover to healthy mail2 makes
    the live active step down, and a forced failover to mail3, which fails its
    health checks, written in the same breath, would hand it the freed lease. The
    daemons act on at most one of the two: mail2 takes over, mail3 never does."""
    flag = tmp_path / "sick"
    check = {
        "type": "command",
        "argv": ["sh", "-c", f'test ! -e {flag}-"$FAILOVERD_NODE"'],
        "timeout": "1s",
    }
    c = make_cluster(
        zk_hosts=zk.address,
        names=("mail1", "mail2", "mail3"),
        health_checks=[check],
        extra={"switchover": {"timeout": f"{SWITCHOVER_TIMEOUT:g}s"}},
    )
    Path(f"{flag}-mail3").touch()
    c.start("mail1")
    assert c.wait_active(timeout=20, via="mail1") == "mail1"
    c.start("mail2", "mail3")

    def settled() -> bool:
        rows = {m["node"]: m for m in c.status()["members"]}
        return (
            rows["mail2"]["eligible"]
            and rows["mail3"]["connected"]
            and not rows["mail3"]["healthy"]
        )

    wait_for(settled, 15, "mail2 eligible, mail3 connected and sick")
    client = KazooClient(hosts=zk.address, auth_data=digest_auth(c.credential_file))
    client.start(timeout=10)
    try:
        path = f"/failoverd/{c.cluster}/control"
        raw, stat = client.get(path)
        control = json.loads(raw)
        for kind, to in (("switchover", "mail2"), ("failover", "mail3")):
            control[kind] = {
                "id": str(uuid.uuid4()),
                "to": to,
                "timeout": 3600,
                "requested_by": "mallory",
                "requested_at": now_iso(),
            }
        client.set(path, json.dumps(control).encode(), version=stat.version)
    finally:
        client.stop()
        client.close()
    assert c.wait_active(timeout=WINDOW, other_than="mail1", via="mail2") == "mail2"
    promoted = {n: bool(events(c, n, "promoted")) for n in c.names}
    assert not promoted["mail3"], "mail3, which fails its health checks, was promoted"
    (ignored,) = [e for e in events(c, "mail3", "request_ignored") if e["kind"] == "failover"]
    assert ignored["code"] == "conflict", ignored
    c.assert_never_two_serving()


def test_a_request_older_than_switchover_timeout_is_expired_to_a_daemon_that_never_saw_it(
    zk: ZooKeeperServer, tmp_path: Path
) -> None:
    """A request's life counts from its own time, not from when a daemon first saw
    it: a daemon (re)started later does not give it a new life."""
    c = Cluster(tmp_path / "c", zk.address, extra={"switchover": {"timeout": "5s"}})
    try:
        c.start("mail1")
        assert c.wait_active(timeout=20, via="mail1") == "mail1"
        c.start("mail2")
        wait_for(lambda: all(m["eligible"] or m["node"] == "mail1" for m in c.status()["members"]),
                 10, "mail2 eligible")  # fmt: skip
        old = datetime.now(UTC) - timedelta(minutes=30)
        at = old.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        req = write_request(c, zk, "switchover", to="mail2", requested_at=at)
        wait_for(lambda: events(c, "mail1", "operator_request_seen"), 10, "mail1 to see it")
        time.sleep(2.0)  # a switchover to mail2 takes well under a second here
        assert not events(c, "mail2", "promoted"), "mail1 handed over for a stale request"
        assert c.active(via="mail1") == "mail1"
        (expired,) = [e for e in events(c, "mail1", "request_ignored") if e["id"] == req["id"]]
        assert expired["code"] == "expired", expired
    finally:
        c.stop()
