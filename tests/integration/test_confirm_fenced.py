"""The operator's levers against real daemons and ZooKeeper: confirm-fenced (the
operator's word that a node is down stands in for one fence, once), switchover
and failover --dry-run, switchover --at and --cancel."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from failoverd.config import load_config
from failoverd.zk.coordinator import Coordinator
from failoverd.zk.znodes import FenceConfirmation, now_iso
from tests.integration.cluster import PY, REPO, Cluster, wait_for
from tests.support.zookeeper import ZooKeeperServer


def started(c: Cluster) -> None:
    c.start("mail1")
    assert c.wait_active(timeout=20, via="mail1") == "mail1"
    c.start("mail2")
    wait_for(lambda: all(m["connected"] for m in c.status()["members"]), 10, "both connected")


def history(c: Cluster, via: str = "mail2") -> list[dict[str, Any]]:
    out = c.ctl("history", "--json", "--limit", "100", via=via)
    assert out.returncode == 0, out.stderr
    return [e for e in json.loads(out.stdout) if e]


def events(c: Cluster, event: str, via: str = "mail2") -> list[dict[str, Any]]:
    return [e for e in history(c, via) if e["event"] == event]


def stop_service_by_hand(c: Cluster, name: str) -> None:
    """What the operator checks before confirming: the node's services are down."""
    import subprocess

    subprocess.run(
        [PY, "-m", "chaos.services.loopback_smtp", "stop", "--name", name,
         "--dir", str(c.service_dir)],
        cwd=REPO, check=True,
    )  # fmt: skip


def connected(c: Cluster, name: str, via: str) -> bool:
    return any(m["node"] == name and m["connected"] for m in c.status(via)["members"])


def control_of(c: Cluster, via: str) -> tuple[bytes, int]:
    coord = Coordinator(load_config(str(c.nodes[via].config_path)))
    coord.start(timeout=5)
    try:
        raw, stat = coord.client.get(coord.control_path)
        return raw, stat.version
    finally:
        coord.close()


def test_confirm_fenced_lets_one_takeover_skip_one_fence(
    make_cluster: Any, zk: ZooKeeperServer
) -> None:
    c: Cluster = make_cluster(zk_hosts=zk.address)
    started(c)
    # Refused while the node talks to ZooKeeper: the active, and a live standby.
    out = c.ctl("confirm-fenced", "mail1", "--reason", "test")
    assert out.returncode == 1 and "mail1 is connected to ZooKeeper" in out.stderr, out.stderr
    out = c.ctl("confirm-fenced", "mail2", "--reason", "test")
    assert out.returncode == 1 and "mail2 is connected" in out.stderr, out.stderr

    # mail1's site is gone, with its power switch: every fence fails.
    (c.root / "fence-broken").touch()
    c.nodes["mail1"].kill()
    stop_service_by_hand(c, "mail1")
    wait_for(lambda: not connected(c, "mail1", "mail2"), 15, "mail1's session to expire")
    wait_for(lambda: events(c, "fence_failed"), 20, "mail2 to try fencing mail1, and fail")
    assert c.active() is None  # the standby rightly refuses
    out = c.ctl("failover", "--to", "mail2", "--dry-run")  # as fence readiness sees it
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "  mail1: fenced by mail2; its fence readiness: command: ready" in lines
    assert "it would proceed: mail2 would become active" in out.stdout

    out = c.ctl("confirm-fenced", "mail1", "--reason", "site power off, checked by phone")
    assert out.returncode == 0, out.stderr
    assert "skips fencing mail1 once" in out.stdout
    assert c.wait_active(timeout=30) == "mail2"
    c.assert_never_two_serving()

    [confirmed] = events(c, "fence_confirmed")
    assert "mail1 is down" in confirmed["reason"] and "checked by phone" in confirmed["reason"]
    assert confirmed["by"] and "via control" not in confirmed["by"]  # vouched, not claimed
    [skipped] = events(c, "fence_skipped")
    assert skipped["node"] == "mail2" and "mail1 not fenced: confirmed down" in skipped["reason"]
    assert c.status()["fence_confirmed"] is None  # consumed

    # The next takeover fences again: mail1 comes back as a standby, mail2 dies.
    c.nodes["mail1"].start()
    wait_for(lambda: connected(c, "mail1", "mail1"), 15, "mail1 back")
    failed_before = len(events(c, "fence_failed", via="mail1"))
    c.nodes["mail2"].kill()
    stop_service_by_hand(c, "mail2")
    wait_for(
        lambda: len(events(c, "fence_failed", via="mail1")) > failed_before,
        30,
        "mail1 to try fencing mail2, and fail",
    )
    # A confirmation for mail2's earlier term (well formed, but stale) is not used.
    coord = Coordinator(load_config(str(c.nodes["mail1"].config_path)))
    coord.start(timeout=5)
    try:
        control, version = coord.read_control(5)
        crumb, _, _ = coord.read_breadcrumb(5)
        assert crumb is not None and crumb.node == "mail2"
        stale = FenceConfirmation(
            "0f8fad5b-d9cb-469f-a165-70867728950e", "mail2", crumb.epoch - 1, "x", now_iso(), "old"
        )
        coord.write_control(replace(control, fence_confirmed=stale), version, 5)
    finally:
        coord.close()
    wait_for(
        lambda: any(
            e.get("event") == "fence_confirmation_ignored" and "earlier incident" in e["reason"]
            for e in c.nodes["mail1"].events()
        ),
        20,
        "mail1 to ignore the stale confirmation",
    )
    assert c.active(via="mail1") is None
    assert not [e for e in events(c, "fence_skipped", via="mail1") if e["node"] == "mail1"]
    # The operator's word for this incident does it.
    out = c.ctl("confirm-fenced", "mail2", "--reason", "checked", via="mail1")
    assert out.returncode == 0, out.stderr
    assert c.wait_active(timeout=30, via="mail1") == "mail1"
    c.assert_never_two_serving()


def test_a_confirmation_is_withdrawn_when_its_node_comes_back(
    make_cluster: Any, zk: ZooKeeperServer
) -> None:
    """The word was "mail1 is down". mail1 comes back (and may run its services
    again), then drops off once more: the next takeover fences it, and with a broken
    fencer refuses, instead of starting next to it on the old word."""
    c: Cluster = make_cluster(zk_hosts=zk.address)
    started(c)
    (c.root / "fence-broken").touch()
    c.nodes["mail1"].kill()
    stop_service_by_hand(c, "mail1")
    wait_for(lambda: not connected(c, "mail1", "mail2"), 15, "mail1's session to expire")
    wait_for(lambda: events(c, "fence_failed"), 20, "mail2 to try fencing mail1, and fail")
    # Maintenance holds mail2 back, so that mail1 is back before any takeover looks.
    out = c.ctl("maintenance", "on", "--reason", "test", via="mail2")
    assert out.returncode == 0, out.stderr
    out = c.ctl("confirm-fenced", "mail1", "--reason", "site power off", via="mail2")
    assert out.returncode == 0, out.stderr
    assert c.status("mail2")["fence_confirmed"] is not None

    c.nodes["mail1"].start()  # its site is back
    wait_for(lambda: events(c, "fence_confirmation_withdrawn"), 20, "the word to be withdrawn")
    [withdrawn] = events(c, "fence_confirmation_withdrawn")
    assert "mail1" in withdrawn["reason"] and "fences mail1 again" in withdrawn["reason"]
    assert c.status("mail2")["fence_confirmed"] is None

    # mail1 drops off again; the next takeover does not skip its fence.
    c.nodes["mail1"].kill()
    wait_for(lambda: not connected(c, "mail1", "mail2"), 15, "mail1's session to expire")
    failed_before = len(events(c, "fence_failed"))
    out = c.ctl("maintenance", "off", "--reason", "test", via="mail2")
    assert out.returncode == 0, out.stderr
    wait_for(
        lambda: len(events(c, "fence_failed")) > failed_before,
        30,
        "mail2 to try fencing mail1 again, and fail",
    )
    assert c.active(via="mail2") is None
    assert not events(c, "fence_skipped")
    c.assert_never_two_serving()


def test_dry_runs_write_nothing_and_say_what_would_happen(
    make_cluster: Any, zk: ZooKeeperServer
) -> None:
    c: Cluster = make_cluster(zk_hosts=zk.address)
    started(c)
    before = control_of(c, "mail2"), len(history(c))
    out = c.ctl("switchover", "--to", "mail2", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "dry run: switchover mail1 -> mail2 would proceed"
    assert "nothing was written" in out.stdout
    out = c.ctl("switchover", "--to", "mail9", "--dry-run")
    assert out.returncode == 1 and "unknown node 'mail9'" in out.stderr
    out = c.ctl("failover", "--to", "mail2", "--dry-run")
    assert out.returncode == 1 and "mail1 holds the lease" in out.stderr
    time.sleep(1.0)  # anything a daemon would record has had time to land
    assert (control_of(c, "mail2"), len(history(c))) == before
    assert c.active() == "mail1"


def test_a_scheduled_switchover_waits_for_its_time_and_can_be_withdrawn(
    make_cluster: Any, zk: ZooKeeperServer
) -> None:
    c: Cluster = make_cluster(zk_hosts=zk.address)
    started(c)
    # Withdrawn: a far one (HH:MM, the next such local time).
    out = c.ctl("switchover", "--to", "mail2", "--at", "03:00", "--reason", "window")
    assert out.returncode == 0, out.stderr
    pending = c.status()["scheduled_switchover"]
    assert pending["to"] == "mail2" and pending["reason"] == "window"
    out = c.ctl("status")
    assert "switchover scheduled at" in out.stdout and "to mail2" in out.stdout
    # Other operator changes to control leave it in place.
    assert c.ctl("maintenance", "on").returncode == 0
    assert c.ctl("maintenance", "off").returncode == 0
    assert c.status()["scheduled_switchover"] == pending
    out = c.ctl("switchover", "--cancel")
    assert out.returncode == 0, out.stderr
    assert c.status()["scheduled_switchover"] is None
    assert c.ctl("switchover", "--cancel").returncode == 1  # nothing left to withdraw
    wait_for(lambda: events(c, "switchover_cancelled"), 10, "the withdrawal in history")

    # Carried out: one a few seconds ahead, ISO 8601 with its offset.
    at = time.time() + 6.0
    iso = datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    out = c.ctl("switchover", "--to", "mail2", "--at", iso)
    assert out.returncode == 0, out.stderr
    while time.time() < int(at) - 0.5:  # ISO seconds: `at` rounded down
        assert c.active() == "mail1", "switched over before its time"
        time.sleep(0.5)
    assert c.wait_active(timeout=20, other_than="mail1") == "mail2"
    [promoted] = [e for e in events(c, "promoted") if e["node"] == "mail2"]
    promoted_at = datetime.fromisoformat(promoted["time"].replace("Z", "+00:00")).timestamp()
    assert promoted_at >= int(at)
    assert c.status()["scheduled_switchover"] is None
    scheduled = events(c, "switchover_scheduled")  # the withdrawn one, and this one
    assert len(scheduled) == 2 and all("via control" not in e["by"] for e in scheduled)
    [requested] = events(c, "switchover_requested")  # come due: the one who scheduled it
    assert requested["by"] == scheduled[0]["by"]
    assert not (c.root / "fence-calls.jsonl").exists()  # a clean handover
    c.assert_never_two_serving()
