"""The upgrade procedure (docs/upgrading.md, "The procedure") with the real previous
release: both nodes run release 0.1.0 (taken from git: PREVIOUS_RELEASE is its
commit), the standby is upgraded first, then a switchover, then the other node. Old
and new daemons share one tree throughout; nobody is fenced and no two services ever
run at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from tests.integration.cluster import REPO, Cluster, wait_for
from tests.support.zookeeper import ZooKeeperServer

PREVIOUS_RELEASE = "1e89c2d"  # 0.1.0: before the znode format rule


@pytest.fixture
def previous_release(tmp_path: Path) -> Path:
    """A checkout of the previous release's failoverd, from git. Only the daemon: the
    toy service and the fencer its nodes run are this checkout's test harness."""
    out = tmp_path / "release-0.1.0"
    out.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", PREVIOUS_RELEASE, "failoverd"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        pytest.skip(f"release {PREVIOUS_RELEASE} is not in this clone's git history")
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive.stdout, check=True)
    return out


def start_old(c: Cluster, name: str, release: Path) -> None:
    """Run `python -m failoverd.main` from the old release's tree: its directory comes
    first on sys.path, so the old failoverd is imported. The resource and fencing
    commands it starts (this checkout's `chaos.services` and `tests.support`) come
    from this checkout, second on the path."""
    node = c.nodes[name]

    def without_check_argv(cfg: dict[str, Any]) -> None:
        # 0.1.0 has no fencer check_argv and refuses unknown keys: the upgrade
        # starts from a config that release ran with.
        for fencer in cfg["fencing"]:
            fencer.pop("check_argv", None)

    c.edit_config(name, without_check_argv)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with open(node.log_path, "ab") as out:
        node.proc = subprocess.Popen(
            [sys.executable, "-m", "failoverd.main", "-c", str(node.config_path)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=release,
            start_new_session=True,
        )


def member_raw(zk: ZooKeeperServer, c: Cluster, name: str) -> dict[str, object]:
    client = KazooClient(hosts=zk.address, auth_data=[("digest", c.credential)])
    client.start(timeout=10)
    try:
        data, _ = client.get(f"/failoverd/{c.cluster}/members/{name}")
    except NoNodeError:
        return {}  # between an old daemon's exit and the new one's start
    finally:
        client.stop()
        client.close()
    return json.loads(data)


def ready(c: Cluster, via: str) -> bool:
    st = c.status(via=via)
    return all(m["connected"] and m["healthy"] for m in st["members"])


def test_standby_first_then_switchover_then_the_other_node(
    zk: ZooKeeperServer, cluster: Cluster, previous_release: Path
) -> None:
    start_old(cluster, "mail1", previous_release)
    assert cluster.wait_active(timeout=20) == "mail1"
    start_old(cluster, "mail2", previous_release)
    wait_for(lambda: ready(cluster, "mail2"), 15, "both old daemons up")
    assert "formats" not in member_raw(zk, cluster, "mail1")  # really the old release

    # 1. The standby first: the old active keeps serving meanwhile. The new
    # failoverctl closes the root the old release may have left open to anyone
    # (the new daemon refuses to run under it); the old daemons do not mind.
    assert cluster.nodes["mail2"].stop() == 0
    fixed = cluster.ctl("fix-acl", via="mail2")
    assert fixed.returncode == 0, fixed.stderr
    cluster.nodes["mail2"].start()
    wait_for(lambda: "formats" in member_raw(zk, cluster, "mail2"), 15, "new mail2")
    wait_for(lambda: ready(cluster, "mail2"), 15, "new mail2 a healthy standby")
    assert cluster.active() == "mail1"

    # 2. Switchover to the upgraded node: a clean handover, no fencing.
    done = cluster.ctl("switchover", "--to", "mail2", via="mail2")
    assert done.returncode == 0, done.stderr
    assert cluster.active() == "mail2"

    # 3. The other node. Meanwhile the old mail1, now a standby, has read the
    # breadcrumb and statuses the new mail2 wrote.
    old_events = [e.get("event") for e in cluster.nodes["mail1"].events()]
    assert "breadcrumb_unreadable" not in old_events
    assert cluster.nodes["mail1"].stop() == 0
    cluster.nodes["mail1"].start()
    wait_for(lambda: ready(cluster, "mail1"), 15, "new mail1 a healthy standby")

    st = cluster.status(via="mail1")
    assert st["active"]["node"] == "mail2" and st["active"]["epoch"] == 2
    assert member_raw(zk, cluster, "mail1")["formats"] == [1]
    assert not (cluster.root / "fence-calls.jsonl").exists()  # nobody was fenced
    cluster.assert_never_two_serving()


def rewrite_breadcrumb(zk: ZooKeeperServer, c: Cluster, **changes: object) -> None:
    client = KazooClient(hosts=zk.address, auth_data=[("digest", c.credential)])
    client.start(timeout=10)
    try:
        path = f"/failoverd/{c.cluster}/active"
        data, stat = client.get(path)
        client.set(path, json.dumps({**json.loads(data), **changes}).encode(), stat.version)
    finally:
        client.stop()
        client.close()


def fence_calls(c: Cluster) -> list[dict[str, object]]:
    log = c.root / "fence-calls.jsonl"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def test_real_daemons_accept_unknown_fields_and_treat_an_unknown_format_as_unsafe(
    zk: ZooKeeperServer, cluster: Cluster
) -> None:
    # mail1 hands over cleanly with nobody to take over; a newer release adds a
    # field to its clean breadcrumb (still format 1): mail2 takes over, no fence.
    cluster.start("mail1")
    assert cluster.wait_active(timeout=20, via="mail1") == "mail1"
    assert cluster.nodes["mail1"].stop() == 0
    rewrite_breadcrumb(zk, cluster, handed_over_to="anyone")
    cluster.start("mail2")
    assert cluster.wait_active(timeout=20, via="mail2") == "mail2"
    assert fence_calls(cluster) == []

    # The same clean breadcrumb in a format this release does not know (v=2): it
    # cannot be trusted, so the next active fences every peer first.
    assert cluster.nodes["mail2"].stop() == 0
    rewrite_breadcrumb(zk, cluster, v=2)
    cluster.start("mail1")
    assert cluster.wait_active(timeout=20, via="mail1") == "mail1"
    assert [(x["target"], x["by"]) for x in fence_calls(cluster)] == [("mail2", "mail1")]
    events = [e.get("event") for e in cluster.nodes["mail1"].events()]
    assert "breadcrumb_unreadable" in events
    cluster.assert_never_two_serving()
