"""Two real daemons on a real ZooKeeper: election, takeover, lease, health, restart."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from kazoo.client import KazooClient

from tests.integration.cluster import Cluster, wait_for
from tests.support.access import digest_auth
from tests.support.zookeeper import Ensemble, ZooKeeperServer


def fence_calls(c: Cluster) -> list[dict[str, object]]:
    path = c.root / "fence-calls.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_two_nodes_elect_exactly_one_active_which_runs_its_service(
    zk: ZooKeeperServer, make_cluster
) -> None:
    c = make_cluster(zk_hosts=zk.address)
    c.start()
    active = c.wait_active(timeout=20)
    assert active == "mail1"  # priority 0 contends first
    wait_for(lambda: [i for i in c.serving() if i[0] == "mail1"], 10, "mail1's service up")
    st = c.status()
    assert st["active"]["node"] == "mail1" and st["active"]["clean"] is False
    standby = next(m for m in st["members"] if m["node"] == "mail2")
    assert standby["role"] == "standby" and standby["connected"]
    c.assert_never_two_serving()


def test_sigkill_of_active_daemon_is_fenced_then_taken_over(
    zk: ZooKeeperServer, make_cluster
) -> None:
    c = make_cluster(zk_hosts=zk.address)
    c.start()
    assert c.wait_active(timeout=20) == "mail1"
    wait_for(lambda: c.serving(), 10, "a service up")
    killed_at = time.time()
    c.nodes["mail1"].kill()  # the daemon dies; its service keeps running
    assert c.wait_active(timeout=20, other_than="mail1") == "mail2"
    mail2_up = wait_for(
        lambda: [i for i in c.serving() if i[0] == "mail2"], 10, "mail2's service up"
    )[0][1]
    calls = fence_calls(c)
    assert [(x["target"], x["rc"]) for x in calls] == [("mail1", 0)], calls
    c.assert_never_two_serving()
    takeover = mail2_up - killed_at
    print(f"takeover (kill -> peer's resources started): {takeover:.2f}s")
    assert takeover > c.session_timeout * 0.75  # nobody may start before the session can expire
    assert c.status()["active"]["epoch"] >= 2


def test_takeover_is_refused_when_every_fencer_fails(zk: ZooKeeperServer, make_cluster) -> None:
    c = make_cluster(zk_hosts=zk.address)
    c.start()
    assert c.wait_active(timeout=20) == "mail1"
    (c.root / "fence-broken").touch()
    c.nodes["mail1"].kill()
    wait_for(lambda: fence_calls(c), 15, "a fence attempt")
    # The standby must hold back: no active, mail1's orphaned service still the only one.
    time.sleep(2 * c.session_timeout)  # observe a period of time in which nothing may happen
    assert c.active() is None
    assert {i[0] for i in c.serving()} == {"mail1"}
    events = [e for e in c.nodes["mail2"].events() if e.get("event") == "fence_failed"]
    assert events and events[0]["target"] == "mail1"
    # Once fencing works again, the standby takes over after its back-off.
    (c.root / "fence-broken").unlink()
    assert c.wait_active(timeout=20) == "mail2"
    c.assert_never_two_serving()


def test_active_cut_from_zookeeper_stops_its_service_before_the_peer_starts(
    ensemble: Ensemble, make_cluster
) -> None:
    zk1, zk2, zk3 = ensemble.servers
    c = make_cluster(zk_hosts={"mail1": zk1.address, "mail2": f"{zk2.address},{zk3.address}"})
    c.start()
    assert c.wait_active(timeout=30, via="mail2") == "mail1"
    wait_for(lambda: c.serving(), 10, "a service up")
    zk1.pause()  # mail1's only server freezes: mail1 can no longer renew its lease
    try:
        assert c.wait_active(timeout=30, other_than="mail1", via="mail2") == "mail2"
        intervals = wait_for(lambda: [i for i in c.serving() if i[0] == "mail2"], 10, "mail2 up")
        mail1_runs = [i for i in c.serving() if i[0] == "mail1"]
        assert mail1_runs and all(down < intervals[0][1] for _, _, down in mail1_runs)
        wait_for(
            lambda: [
                e
                for e in c.nodes["mail1"].events()
                if e.get("event") == "demoted" and e.get("code") == "lease_lost"
            ],
            10,
            "mail1 to demote on its own lease clock",
        )
    finally:
        zk1.resume()
    c.assert_never_two_serving()


def test_unhealthy_active_hands_over_to_a_healthy_standby(
    zk: ZooKeeperServer, make_cluster, tmp_path: Path
) -> None:
    flag = tmp_path / "mail1-sick"
    check = {
        "type": "command",
        "argv": ["sh", "-c", f'test ! -e {flag}-"$FAILOVERD_NODE"'],
        "timeout": "1s",
    }
    c = make_cluster(zk_hosts=zk.address, health_checks=[check])
    c.start()
    assert c.wait_active(timeout=20) == "mail1"
    Path(f"{flag}-mail1").touch()
    assert c.wait_active(timeout=20, other_than="mail1") == "mail2"
    st = c.status()
    assert st["active"]["node"] == "mail2"
    # mail1 stopped cleanly, so mail2 did not need to fence it.
    assert fence_calls(c) == [] or all(x["target"] != "mail1" for x in fence_calls(c))
    c.assert_never_two_serving()


def test_restarted_active_daemon_stops_its_leftover_service_before_anything_else(
    zk: ZooKeeperServer, make_cluster
) -> None:
    c = make_cluster(zk_hosts=zk.address)
    c.start("mail1")
    assert c.wait_active(timeout=20) == "mail1"
    c.nodes["mail1"].kill()
    assert [i for i in c.serving() if i[2] >= time.time() - 0.5], "service keeps running"
    c.nodes["mail1"].start()
    # The new daemon stops the orphan at once, then re-acquires after the old session expires.
    wait_for(lambda: [e for e in c.service_events() if e["event"] == "down"], 10, "orphan stopped")
    assert c.wait_active(timeout=20) == "mail1"
    c.assert_never_two_serving()


def test_garbage_breadcrumb_is_read_as_unknown_active_and_every_peer_is_fenced(
    zk: ZooKeeperServer, make_cluster
) -> None:
    c = make_cluster(zk_hosts=zk.address)
    c.start("mail1")
    assert c.wait_active(timeout=20) == "mail1"
    client = KazooClient(hosts=zk.address, auth_data=digest_auth(c.credential_file))
    client.start()
    try:
        client.set(f"/failoverd/{c.cluster}/active", b"\x00garbage")
    finally:
        client.stop()
        client.close()
    c.start("mail2")
    wait_for(lambda: c.status()["members"][1]["connected"], 10, "mail2 connected")
    c.nodes["mail1"].kill()
    assert c.wait_active(timeout=20, other_than="mail1") == "mail2"
    assert [x["target"] for x in fence_calls(c)] == ["mail1"]
    st = c.status()
    assert st["active"]["epoch"] >= 2  # the epoch moved past the garbled one
    c.assert_never_two_serving()


def test_sigterm_on_active_hands_over_cleanly_without_fencing(
    zk: ZooKeeperServer, make_cluster
) -> None:
    c = make_cluster(zk_hosts=zk.address)
    c.start()
    # Whoever won the first election (mail1 by priority, unless its start-up was
    # slower than mail2's priority delay on a busy machine) hands over to the other.
    first = c.wait_active(timeout=20)
    assert first in ("mail1", "mail2")
    other = "mail2" if first == "mail1" else "mail1"
    t0 = time.monotonic()
    assert c.nodes[first].stop() == 0
    assert c.wait_active(timeout=20) == other
    assert time.monotonic() - t0 < c.session_timeout + 5
    assert fence_calls(c) == []
    c.assert_never_two_serving()


def test_killed_zookeeper_leader_causes_no_failover(ensemble: Ensemble, make_cluster) -> None:
    c = make_cluster(zk_hosts=ensemble.hosts)
    c.start()
    assert c.wait_active(timeout=30) == "mail1"
    leader = ensemble.leader()
    assert leader is not None
    leader.signal(signal.SIGKILL)
    time.sleep(3 * c.session_timeout)  # a period in which no failover may happen
    assert c.wait_active(timeout=20) == "mail1"
    assert [i[0] for i in c.serving()] == ["mail1"]


def test_a_daemon_names_a_missing_fencer_program_in_its_log_at_start(
    zk: ZooKeeperServer, tmp_path: Path
) -> None:
    # The same machine check as --check (failoverd/checks/preflight.py), for operators who
    # never ran it: `journalctl -p err` names the fencer before it is needed.
    c = Cluster(
        tmp_path / "c",
        zk.address,
        fencing=[{"type": "command", "argv": ["/nonexistent/pdu-off", "{node}"]}],
    )
    try:
        c.start("mail1")
        node = c.nodes["mail1"]
        found = wait_for(
            lambda: [e for e in node.events() if e.get("event") == "preflight_failed"],
            15,
            "preflight_failed in the log",
        )
        assert found[0]["level"] == "error"
        assert found[0]["at"] == "fencing[0].argv"
        assert found[0]["problem"] == "/nonexistent/pdu-off does not exist"
        assert c.wait_active(timeout=20) == "mail1"  # it runs regardless
    finally:
        c.stop()


def test_a_daemon_writing_to_the_journal_prefixes_each_line_with_its_priority(
    zk: ZooKeeperServer, tmp_path: Path
) -> None:
    # systemd connects stderr to the journal and names that stream in JOURNAL_STREAM
    # (device:inode); a plain file stands in for the journal's socket here.
    c = Cluster(
        tmp_path / "c",
        zk.address,
        fencing=[{"type": "command", "argv": ["/nonexistent/pdu-off", "{node}"]}],
    )
    node = c.nodes["mail1"]
    node.log_path.touch()
    st = node.log_path.stat()
    try:
        node.start(env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        wait_for(lambda: "promoted" in node.log_path.read_text(), 20, "mail1 promoted")
    finally:
        c.stop()
    lines = [line for line in node.log_path.read_text().splitlines() if line]
    by_event = {json.loads(line[3:])["event"]: line[:3] for line in lines}
    assert by_event["preflight_failed"] == "<3>"  # journalctl -p err shows it
    assert by_event["promoted"] == "<6>"
    assert all(line[:3] in ("<2>", "<3>", "<4>", "<6>", "<7>") for line in lines)
