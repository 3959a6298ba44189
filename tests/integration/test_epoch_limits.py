"""One use of the fence key, or one hostile backup file, must not wedge the cluster's
epoch: no takeover writes an epoch its readers refuse (znodes.EPOCH_LIMIT), a node's
own floor far above what ZooKeeper shows is reported and not followed, fence-self
refuses an epoch far above anything it has seen, and restore refuses what the
daemon could not read. Real ZooKeeper, real daemons, fence-self over its CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from failoverd.config import load_config
from failoverd.fencing.marker import FenceMarker
from failoverd.zk.znodes import Breadcrumb, HistoryEntry, MemberStatus, encode
from tests.integration.cluster import REPO, Cluster, wait_for
from tests.support.access import digest_auth
from tests.support.zookeeper import ZooKeeperServer

PY = sys.executable
TOP = 2**53 - 1  # the largest epoch a reader accepts, and what --epoch took over ssh


# -- a marker at the top of the range on one node -------------------------------------


def node_client(c: Cluster, zk: ZooKeeperServer) -> KazooClient:
    client = KazooClient(hosts=zk.address, auth_data=digest_auth(c.credential_file))
    client.start(timeout=10)
    return client


def test_a_marker_at_the_top_of_the_range_does_not_make_a_takeover_write_an_undecodable_epoch(
    zk: ZooKeeperServer, make_cluster
) -> None:
    """mail2 was fenced (before this fix, over ssh) with --epoch 2^53-1 and publishes
    it as its fence_epoch. Whoever takes over next must neither take 2^53 (no reader
    decodes it) nor follow that marker: mail2 cannot serve until an operator clears
    it (its member status says so), and mail1 carries on from ZooKeeper's epoch."""
    c = make_cluster(zk_hosts=zk.address)
    FenceMarker(c.state_dirs["mail2"]).write(TOP, by="fence-self from 127.0.0.9")
    c.start()
    assert c.wait_active(timeout=20) == "mail1"
    wait_for(lambda: all(m["connected"] for m in c.status()["members"]), 10, "both connected")
    base = f"/failoverd/{c.cluster}"
    client = node_client(c, zk)
    try:

        def published() -> bool:
            raw, _ = client.get(f"{base}/members/mail2")
            return MemberStatus.decode(raw).fence_epoch == TOP

        wait_for(published, 10, "mail2 to publish its marker")
        # mail1 goes away cleanly, comes back: each of the two may take over next.
        c.nodes["mail1"].stop()
        c.nodes["mail1"].start()
        wait_for(lambda: client.exists(f"{base}/lock") is not None, 20, "a takeover")
        wait_for(lambda: c.active() is not None, 20, "an active node")
        raw, _ = client.get(f"{base}/active")
        crumb = Breadcrumb.decode(raw)  # raised ZnodeError: epoch 2^53 is outside 0..2^53
        assert crumb.epoch < 1_000_000, crumb
        assert c.active() == "mail1", "mail2 served although its own marker refuses the epoch"
        for name in client.get_children(f"{base}/members"):
            MemberStatus.decode(client.get(f"{base}/members/{name}")[0])
        mail2 = MemberStatus.decode(client.get(f"{base}/members/mail2")[0])
        assert not mail2.eligible and "fence marker" in mail2.why, mail2.why
        assert "operator" in mail2.why, mail2.why
        ignored = [e for e in c.nodes["mail1"].events() if e.get("event") == "epoch_floor_ignored"]
        assert ignored and ignored[-1]["level"] == "critical", ignored
        assert c.ctl("status", via="mail1").returncode in (0, 1)
        assert "Traceback" not in c.ctl("status", via="mail1").stderr
        c.assert_never_two_serving()
    finally:
        client.stop()
        client.close()


# -- fence-self: an epoch far above anything this node has seen ------------------------


def fence_self_over_ssh(c: Cluster, command: str) -> subprocess.CompletedProcess[str]:
    """What mail1's authorized_keys runs for a peer's `ssh mail1 COMMAND`."""
    cfg = str(c.nodes["mail1"].config_path)
    return subprocess.run(
        [PY, "-m", "failoverd.main", "-c", cfg, "fence-self", "--from-ssh"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "SSH_ORIGINAL_COMMAND": command, "SSH_CLIENT": "127.0.0.9 5 22"},
    )


def service_up(c: Cluster) -> bool:
    events = sorted(
        (e for e in c.service_events() if e["node"] == "mail1"),
        key=lambda e: float(e["t"]),  # type: ignore[arg-type]
    )
    return bool(events) and events[-1]["event"] == "up"


def write_seen(c: Cluster, seen: int) -> None:
    """mail1's membership record (what the daemon remembers: node/membership.py)."""
    config = load_config(str(c.nodes["mail1"].config_path))
    path = Path(config.node.state_dir) / "cluster.joined"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"v": 1, "cluster_path": f"/failoverd/{c.cluster}", "seen_epoch": seen})
    )


def test_fence_self_refuses_an_epoch_far_above_what_it_has_seen_and_stops_nothing(
    target: Cluster,
) -> None:
    marker = FenceMarker(load_config(str(target.nodes["mail1"].config_path)).node.state_dir)
    write_seen(target, 40)
    for huge in (TOP, 40 + 1_000_001):
        res = fence_self_over_ssh(target, f"fence-self --epoch {huge}")
        out = res.stdout + res.stderr
        assert res.returncode == 2, f"--epoch {huge} was accepted: {out}"
        assert "fence_self_refused" in out and f"REFUSED: epoch {huge}" in res.stdout, out
        assert service_up(target), f"a refused fence (--epoch {huge}) stopped the service"
        assert marker.fenced_epoch() is None, f"a refused fence wrote the marker: {huge}"
    # A node that missed a great many epochs (down for long) is still fenced.
    res = fence_self_over_ssh(target, f"fence-self --epoch {40 + 1_000_000}")
    assert res.returncode == 0, res.stdout + res.stderr
    wait_for(lambda: not service_up(target), 5, "the service to record its stop")
    assert marker.fenced_epoch() == 40 + 1_000_000


# -- restore of a hostile backup file ----------------------------------------------------


def hostile_backup(c: Cluster, path: Path, **change: object) -> Path:
    crumb = Breadcrumb("mail1", 3, "2026-12-01T10:00:00.000Z", False)
    entry = HistoryEntry("2026-12-01T10:00:00.000Z", "mail1", "promoted", 3, "fenced")
    data: dict[str, object] = {
        "kind": "failoverd-backup",
        "v": 1,
        "cluster": c.cluster,
        "path": f"/failoverd/{c.cluster}",
        "active": {"text": encode(crumb).decode()},
        "control": None,
        "history": [{"name": "entry-0000000000", "text": encode(entry).decode()}],
    }
    data.update(change)
    path.write_text(json.dumps(data))
    return path


def tree(c: Cluster, zk: ZooKeeperServer) -> dict[str, bytes | None]:
    client = node_client(c, zk)
    try:
        base = f"/failoverd/{c.cluster}"
        out: dict[str, bytes | None] = {}
        for name in ("active", "control"):
            got = client.exists(f"{base}/{name}")
            out[name] = None if got is None else client.get(f"{base}/{name}")[0]
        if client.exists(f"{base}/history"):
            for name in client.get_children(f"{base}/history"):
                out[f"history/{name}"] = client.get(f"{base}/history/{name}")[0]
        return out
    finally:
        client.stop()
        client.close()


AT = "2026-12-01T10:00:00.000Z"
TOP_CRUMB = Breadcrumb("mail1", TOP, AT, False)
FINE_ENTRY = HistoryEntry(AT, "mail1", "promoted", 3, "fenced")


def entries(*texts: str) -> dict[str, object]:
    return {"history": [{"name": f"entry-{i:010d}", "text": t} for i, t in enumerate(texts)]}


HOSTILE = {
    # An epoch the readers accept, but no takeover after it could be written.
    "breadcrumb at 2^53-1": ({"active": {"text": encode(TOP_CRUMB).decode()}}, "active"),
    "breadcrumb far above ZooKeeper's": (
        {"active": {"text": encode(replace(TOP_CRUMB, epoch=2_000_000)).decode()}},
        "active",
    ),
    "a garbage history entry": (
        entries(encode(FINE_ENTRY).decode(), '{"v":1,"epoch":"x"}'),
        "history[1] (entry-0000000001)",
    ),
    "a history entry at 2^53-1": (
        entries(encode(replace(FINE_ENTRY, epoch=TOP)).decode()),
        "history[0] (entry-0000000000)",
    ),
    "garbage control": ({"control": {"text": '{"v":1,"maintenance":"no"}'}}, "control"),
}


@pytest.mark.parametrize("what", list(HOSTILE))
def test_restore_refuses_a_hostile_backup_and_writes_nothing(
    zk: ZooKeeperServer, cluster: Cluster, tmp_path: Path, what: str
) -> None:
    cluster.start()
    cluster.wait_active(timeout=20)
    cluster.stop()
    before = tree(cluster, zk)
    change, named = HOSTILE[what]
    path = hostile_backup(cluster, tmp_path / "hostile.json", **change)
    done = cluster.ctl("restore", str(path), via="mail1", timeout=120)
    assert done.returncode == 2, f"{what}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    assert named in done.stderr and "Traceback" not in done.stderr, (what, done.stderr)
    assert tree(cluster, zk) == before, f"{what}: restore wrote to ZooKeeper"
    # The same file without the hostile part is restored.
    fine = cluster.ctl("restore", str(hostile_backup(cluster, tmp_path / "fine.json")), via="mail1")
    assert fine.returncode == 0, fine.stderr
