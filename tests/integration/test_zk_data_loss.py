"""ZooKeeper loses the cluster's tree (docs/design.md, "When ZooKeeper loses its data";
docs/operations.md, "Backup and restore"), with real daemons on a real ZooKeeper:
epochs continue above every fence marker, and `failoverctl backup` / `restore`
bring back the epoch floor and the history."""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient

from failoverd.cli.backup import restore_backup
from failoverd.config import load_config
from failoverd.node.decision import next_epoch
from failoverd.zk.admin import AdminCoordinator
from failoverd.zk.znodes import Breadcrumb, encode
from tests.integration.cluster import Cluster, wait_for
from tests.support.zookeeper import ZooKeeperServer


def wipe(zk: ZooKeeperServer, c: Cluster) -> None:
    """What a ZooKeeper that lost its data shows: no tree for the cluster at all."""
    client = KazooClient(hosts=zk.address, auth_data=[("digest", c.credential)])
    client.start(timeout=10)
    try:
        client.delete(f"/failoverd/{c.cluster}", recursive=True)
    finally:
        client.stop()
        client.close()


def crash_active_and_fail_over(c: Cluster) -> None:
    """mail1 active at epoch 1; its daemon is SIGKILLed, mail2 fences it (mail1's
    marker: every epoch up to 1) and takes over at epoch 2."""
    c.start()
    assert c.wait_active(timeout=20) == "mail1"
    c.nodes["mail1"].kill()
    assert c.wait_active(timeout=30, other_than="mail1", via="mail2") == "mail2"
    marker = json.loads((c.state_dirs["mail1"] / "fence.marker").read_text())
    assert marker["epoch"] == 1
    assert c.status(via="mail2")["active"]["epoch"] == 2
    # A brand-new cluster is new, not lost (before the fix for the record being
    # written by the first status report, a racing node sometimes said otherwise).
    for node in c.nodes.values():
        assert "cluster_tree_lost" not in [e.get("event") for e in node.events()]


def planned_epochs(c: Cluster, node: str) -> list[int]:
    return [e["epoch"] for e in c.nodes[node].events() if e.get("event") == "fence_planned"]


def test_after_the_tree_is_lost_the_next_takeover_uses_an_epoch_above_the_fence_marker(
    zk: ZooKeeperServer, cluster: Cluster
) -> None:
    crash_active_and_fail_over(cluster)
    cluster.nodes["mail2"].stop()  # clean: its service stops, no daemon runs now
    wipe(zk, cluster)

    before = len(planned_epochs(cluster, "mail1"))
    cluster.nodes["mail1"].start()  # the fenced node, its marker at epoch 1
    assert cluster.wait_active(timeout=30, via="mail1") == "mail1"
    # mail1 published its marker's epoch in its member status, so the very first
    # takeover after the loss starts above it. (Before: epoch 1, refused by mail1's
    # own marker at the first resource start, and retried after a back-off.)
    assert planned_epochs(cluster, "mail1")[before:][0] == 2
    assert cluster.status(via="mail1")["active"]["epoch"] == 2
    events = [e["event"] for e in cluster.nodes["mail1"].events()]
    assert "resource_start_failed" not in events
    cluster.assert_never_two_serving()


def status_json(c: Cluster, via: str = "mail1") -> dict[str, Any]:
    out = c.ctl("status", "--json", via=via)
    return json.loads(out.stdout)


def history_json(c: Cluster) -> list[dict[str, Any]]:
    out = c.ctl("history", "--json", "--limit", "100", via="mail1")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_backup_wipe_restore_brings_back_the_epoch_floor_and_history(
    zk: ZooKeeperServer, cluster: Cluster, tmp_path: Path
) -> None:
    crash_active_and_fail_over(cluster)
    backup = tmp_path / "tree.json"
    done = cluster.ctl("backup", str(backup), via="mail1")
    assert done.returncode == 0, done.stderr
    assert "breadcrumb mail2 at epoch 2" in done.stdout
    before_status = status_json(cluster)
    before_history = history_json(cluster)
    assert any(h["event"] == "fenced" for h in before_history)

    # A restore over a live cluster is refused.
    refused = cluster.ctl("restore", str(backup), via="mail1")
    assert refused.returncode == 1
    assert "refused: daemons are connected" in refused.stderr

    cluster.nodes["mail2"].stop()
    wipe(zk, cluster)
    assert status_json(cluster)["active"] is None  # the tree is gone
    done = cluster.ctl("restore", str(backup), via="mail1")
    assert done.returncode == 0, done.stderr
    assert "breadcrumb: restored the epoch floor 2, not who was active" in done.stdout

    # Only the epoch comes back, as a floor naming nobody: status shows no active.
    assert before_status["active"]["epoch"] == 2
    assert status_json(cluster)["active"] is None
    assert history_json(cluster) == before_history

    # Again: nothing changes (the breadcrumb's epoch is not lower, entries are there).
    again = cluster.ctl("restore", str(backup), via="mail1")
    assert again.returncode == 0, again.stderr
    assert "kept the existing one (epoch 2 >= the backup's 2)" in again.stdout
    assert f"0 entries restored, {len(before_history)} already there" in again.stdout

    # The cluster carries on above the restored epoch, fencing every peer.
    cluster.start()
    new = cluster.wait_active(timeout=30, via="mail1")
    assert status_json(cluster)["active"]["epoch"] == 3
    calls = [
        json.loads(line) for line in (cluster.root / "fence-calls.jsonl").read_text().splitlines()
    ]
    assert calls[-1]["target"] == "mail2" and calls[-1]["by"] == new == "mail1"

    # An older backup never lowers the breadcrumb.
    cluster.nodes["mail2"].stop()  # the standby first, so nobody takes over again
    cluster.nodes["mail1"].stop()
    older = cluster.ctl("restore", str(backup), via="mail1")
    assert older.returncode == 0, older.stderr
    assert "kept the existing one (epoch 3 >= the backup's 2)" in older.stdout
    assert status_json(cluster)["active"]["epoch"] == 3
    cluster.assert_never_two_serving()


def test_restore_rejects_a_backup_of_another_cluster_and_garbage(
    cluster: Cluster, tmp_path: Path
) -> None:
    other = tmp_path / "other.json"
    other.write_text(
        json.dumps({"kind": "failoverd-backup", "v": 1, "cluster": "x", "history": []})
    )
    done = cluster.ctl("restore", str(other), via="mail1")
    assert done.returncode == 2
    assert f"{other}: a backup of cluster 'x', not of '{cluster.cluster}'" in done.stderr
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    done = cluster.ctl("restore", str(garbage), via="mail1")
    assert done.returncode == 2
    assert "not a failoverd backup" in done.stderr
    assert "Traceback" not in done.stderr


def test_restore_with_force_never_writes_a_breadcrumb_under_a_live_active(
    zk: ZooKeeperServer, cluster: Cluster, tmp_path: Path
) -> None:
    cluster.start()
    assert cluster.wait_active(timeout=20) == "mail1"
    wait_for(lambda: all(m["connected"] for m in cluster.status()["members"]), 10, "both up")
    backup = tmp_path / "tree.json"
    assert cluster.ctl("backup", str(backup), via="mail1").returncode == 0
    # Make the backup's breadcrumb look newer than the live one.
    data = json.loads(backup.read_text())
    crumb = json.loads(data["active"]["text"])
    data["active"]["text"] = json.dumps({**crumb, "node": "mail2", "epoch": 99})
    backup.write_text(json.dumps(data))
    done = cluster.ctl("restore", "--force", str(backup), via="mail1")
    assert done.returncode == 0, done.stderr
    assert "a daemon holds the lock, its breadcrumb is the truth" in done.stdout
    active = status_json(cluster)["active"]
    assert (active["node"], active["epoch"]) == ("mail1", 1)


@pytest.fixture
def own_zk(tmp_path: Path) -> Iterator[ZooKeeperServer]:
    """A server of this test's own, so it can lose its data."""
    from tests.support.zookeeper import free_port

    server = ZooKeeperServer(tmp_path / "zk", free_port())
    server.start()
    server.wait_serving()
    yield server
    server.stop()


def test_a_lost_tree_makes_the_next_active_fence_a_frozen_old_active(
    own_zk: ZooKeeperServer, tmp_path: Path
) -> None:
    c = Cluster(tmp_path / "c", own_zk.address)
    old = None
    try:
        c.start()
        old = c.wait_active(timeout=20)
        new = "mail2" if old == "mail1" else "mail1"
        wait_for(lambda: all(m["connected"] for m in c.status()["members"]), 10, "both up")
        # The standby has watched the active (it reads the members every few seconds)
        # and remembers its epoch in its state dir.
        record = c.state_dirs[new] / "cluster.joined"
        wait_for(
            lambda: record.exists() and json.loads(record.read_text())["seen_epoch"] == 1,
            15,
            "the standby to remember epoch 1",
        )
        # The active freezes with its service running, then ZooKeeper loses its data
        # (all of it: restarted on an empty data directory).
        fence_log = c.root / "fence-calls.jsonl"
        before = len(fence_log.read_text().splitlines()) if fence_log.exists() else 0
        c.nodes[old].signal(signal.SIGSTOP)
        own_zk.stop()
        shutil.rmtree(own_zk.workdir / "data")
        own_zk.start()
        own_zk.wait_serving()
        # The standby finds no tree, but it has been a member: the tree was lost, not
        # new. It recreates it without a breadcrumb, so its takeover fences every
        # peer. (Before: a clean "nobody was active" breadcrumb, no fence, and two
        # services running at once.)
        assert c.wait_active(timeout=40, other_than=old, via=new) == new
        c.assert_never_two_serving()
        calls = [json.loads(x) for x in fence_log.read_text().splitlines()[before:]]
        assert [(x["target"], x["by"], x["rc"]) for x in calls] == [(old, new, 0)]
        events = [e.get("event") for e in c.nodes[new].events()]
        assert "cluster_tree_lost" in events
        # The frozen node held epoch 1. The standby had seen it and remembered it
        # (membership.py), so the new active does not take epoch 1 a second time.
        assert c.status(via=new)["active"]["epoch"] == 2
    finally:
        if old is not None:
            c.nodes[old].signal(signal.SIGCONT)
        c.stop()


def test_restore_over_a_lost_tree_restores_only_the_epoch_floor_and_the_next_active_fences(
    zk: ZooKeeperServer, cluster: Cluster, tmp_path: Path
) -> None:
    """A backup names whoever was active when it was taken; by the time it is restored
    another node may have taken over and still be serving. So a restore over a lost
    tree writes only the epoch floor ("previous active unknown, epochs so far <= N"):
    the next active fences every peer and takes an epoch above N. (Before: the backup's
    mail1@1 came back, mail1 read it as "the previous active was this node", fenced
    nobody and started its service next to mail2's.)"""
    # 1. A backup while mail1 is active at epoch 1.
    cluster.start()
    assert cluster.wait_active(timeout=20) == "mail1"
    wait_for(lambda: all(m["connected"] for m in cluster.status()["members"]), 10, "both up")
    backup = tmp_path / "tree.json"
    done = cluster.ctl("backup", str(backup), via="mail1")
    assert done.returncode == 0, done.stderr
    assert "breadcrumb mail1 at epoch 1" in done.stdout
    # 2. A switchover to mail2 (epoch 2), which mail1 watches and remembers.
    out = cluster.ctl("switchover", "--to", "mail2", via="mail1")
    assert out.returncode == 0, out.stderr
    assert cluster.wait_active(timeout=30, other_than="mail1", via="mail2") == "mail2"
    assert cluster.status(via="mail2")["active"]["epoch"] == 2
    record = cluster.state_dirs["mail1"] / "cluster.joined"
    wait_for(
        lambda: json.loads(record.read_text())["seen_epoch"] == 2, 15, "mail1 to remember epoch 2"
    )
    # 3./4. The operator stops failoverd on mail1 (first here, so that mail1 cannot
    # take over meanwhile); mail2's daemon dies, its service keeps running; ZooKeeper
    # loses the tree; the operator restores the backup.
    cluster.nodes["mail1"].stop()
    cluster.nodes["mail2"].kill()
    mail2_events = [e["event"] for e in cluster.service_events() if e["node"] == "mail2"]
    assert mail2_events[-1] == "up"  # its service runs on without a daemon
    wipe(zk, cluster)
    restored = cluster.ctl("restore", str(backup), via="mail1")
    assert restored.returncode == 0, restored.stderr
    # 5. mail1 starts and takes over.
    fence_log = cluster.root / "fence-calls.jsonl"
    cluster.nodes["mail1"].start()
    assert cluster.wait_active(timeout=40, via="mail1") == "mail1"
    cluster.assert_never_two_serving()
    lines = fence_log.read_text().splitlines() if fence_log.exists() else []
    calls = [json.loads(x) for x in lines]
    assert [(x["target"], x["by"], x["rc"]) for x in calls] == [("mail2", "mail1", 0)]
    assert cluster.status(via="mail1")["active"]["epoch"] > 2
    # What restore said it did: the floor, not a node.
    assert "breadcrumb: restored the epoch floor 1, not who was active" in restored.stdout
    assert "restored mail1" not in restored.stdout


@pytest.mark.parametrize("existing", [None, Breadcrumb("mail2", 3, "t", True)])
def test_a_restored_floor_keeps_the_data_version_at_or_above_its_epoch(
    cluster: Cluster, existing: Breadcrumb | None
) -> None:
    """A reader that cannot decode the floor (releases before the form) takes the
    breadcrumb's data version as the epoch it cannot read (next_epoch: each promotion
    adds one to both). A floor written at version 0 would let such a reader take an
    epoch the backup's cluster had already used; so restore raises the version to at
    least the floor, in batches (here more than one)."""
    coord = AdminCoordinator(load_config(str(cluster.nodes["mail1"].config_path)))
    coord.start(timeout=5)
    try:
        coord.ensure_tree(5, lost_if_missing=True)  # a lost tree: no breadcrumb
        if existing is not None:
            coord.client.create(coord.active_path, encode(existing))
        saved = Breadcrumb("mail1", 1234, "2026-12-01T10:00:00.000Z", False)
        backup: dict[str, Any] = {
            "active": {"text": encode(saved).decode()},
            "control": None,
            "history": [],
        }
        said = restore_backup(coord, backup, force=False, timeout=10)
        assert said[0].startswith("breadcrumb: restored the epoch floor 1234"), said
        raw, version = coord.read_breadcrumb_bytes(5)
        crumb = Breadcrumb.decode(raw)
        assert (crumb.node, crumb.epoch, crumb.clean) == (None, 1234, None)
        assert version is not None and version >= 1234, version
        # A reader that finds it unreadable still goes above the floor.
        assert next_epoch(None, False, version) > 1234
        assert coord.client.exists(coord.lock_path) is None  # the guard lock is gone
    finally:
        coord.close()
