"""A node whose watchdog device is not armed does not contend, with real daemons.

The finding this pins down: mail1 (preferred by priority) has a device driver with a
fixed timeout, so WDIOC_SETTIMEOUT fails and its device resets nothing within the
watchdog.timeout its peer's `lease-wait` waits out. Were it active and frozen (SIGSTOP),
mail2 would wait out its lease and promote next to it. So mail1 must not be active:
it stays a standby, not eligible, and says why; mail2, whose device is armed, takes
over and publishes {armed, timeout} in its member status.

Each node pets a file standing in for /dev/watchdog; the daemon runs under
tests/support/fakewatchdog.py, which answers the driver's ioctls for it.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from failoverd.config import load_config
from failoverd.node.daemon import MEMBERS_LEARN
from failoverd.zk.coordinator import Coordinator
from failoverd.zk.znodes import MemberStatus, WatchdogStatus
from tests.integration.cluster import PY, REPO, Cluster, wait_for
from tests.support.zookeeper import ZooKeeperServer

TIMEOUT = 2.0  # watchdog.timeout: pets every 0.5 s; lease-wait waits 2 + 2 + margin


def members(c: Cluster) -> dict[str, MemberStatus | None]:
    coord = Coordinator(load_config(str(c.nodes["mail2"].config_path)))
    coord.start(timeout=5)
    try:
        return coord.read_members(2)
    finally:
        coord.close()


def watched_cluster(
    root: Path, zk: ZooKeeperServer, fencing: list[dict[str, Any]] | None = None
) -> tuple[Cluster, dict[str, Path]]:
    """Two nodes, each petting a file standing in for its /dev/watchdog, under the
    fake driver (how it behaves: $FAKE_WATCHDOG when each node starts)."""
    c = Cluster(root, zk.address, fencing=fencing)
    device = {n: root / f"watchdog-{n}" for n in c.names}
    for name in c.names:
        device[name].write_bytes(b"")
        c.edit_config(
            name,
            lambda cfg, name=name: cfg.update(
                watchdog={"device": str(device[name]), "timeout": f"{TIMEOUT:g}s"}
            ),
        )
        c.nodes[name].module = "tests.support.fakewatchdog"
    return c, device


def test_a_node_whose_device_did_not_take_the_timeout_does_not_contend(
    zk: ZooKeeperServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    c, device = watched_cluster(tmp_path / "c", zk, fencing=[{"type": "lease-wait"}])
    try:
        why = (
            f"watchdog device {device['mail1']} not armed: "
            "it did not take timeout 2s (WDIOC_SETTIMEOUT: Operation not supported)"
        )
        c.nodes["mail1"].start(env={"FAKE_WATCHDOG": "fixed"})
        # Alone, with the lease free, mail1 declines it and says why.
        wait_for(
            lambda: any(
                e.get("event") == "decided" and e["reason"] == f"not contending: {why}"
                for e in c.nodes["mail1"].events()
            ),
            20,
            "mail1 to decline the free lease",
        )
        time.sleep(1.0)
        assert c.status(via="mail1")["lease_holder"] is None
        c.nodes["mail2"].start(env={"FAKE_WATCHDOG": "ok"})
        assert c.wait_active(timeout=20) == "mail2"
        seen = wait_for(
            lambda: (m := members(c)).get("mail1") and m.get("mail2") and m,
            10,
            "both member statuses",
        )
        mail1, mail2 = seen["mail1"], seen["mail2"]
        assert (mail1.role, mail1.eligible, mail1.why) == ("standby", False, why)
        assert mail1.watchdog == WatchdogStatus(False, None, why)
        assert mail2.role == "active" and mail2.watchdog == WatchdogStatus(True, TIMEOUT, "")
        # Both devices are petted all the same (closing mail1's would reset it).
        wait_for(lambda: device["mail1"].stat().st_size > 0, 5, "mail1 to pet its device")
        assert device["mail2"].stat().st_size > 0
        assert [e for e in c.nodes["mail1"].events() if e.get("event") == "promoted"] == []
        # lease-wait toward mail1 would be refused: fence-check says FAIL, not OK.
        check = c.ctl("fence-check", "mail1", via="mail2")
        assert check.returncode == 1, check.stdout + check.stderr
        assert check.stdout.startswith("FAIL"), check.stdout
        assert "mail1 published no armed watchdog device" in check.stdout, check.stdout
        c.assert_never_two_serving()
    finally:
        c.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(c.dump_logs())


def test_an_active_whose_device_goes_away_demotes_and_its_peer_takes_over(
    zk: ZooKeeperServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """mail1 is active with its device armed; then the device goes away (its writes
    fail: a driver unbound). mail1 demotes at once, mail2 takes over; mail1 stays out
    of contention until the device is back, and is eligible again after."""
    c, device = watched_cluster(tmp_path / "c", zk)
    gone = {n: c.root / f"gone-{n}" for n in c.names}
    try:
        for name in c.names:
            c.nodes[name].start(env={"FAKE_WATCHDOG": "ok", "FAKE_WATCHDOG_GONE": str(gone[name])})
        assert c.wait_active(timeout=20) == "mail1"
        wait_for(
            lambda: (m := members(c).get("mail2")) is not None and m.eligible,
            10,
            "mail2 to be an eligible standby",
        )
        gone["mail1"].touch()
        assert c.wait_active(timeout=20, other_than="mail1") == "mail2"
        petting = f"watchdog device {device['mail1']} not armed: petting it failed: No such device"
        demoted = [
            e
            for e in c.nodes["mail1"].events()
            if e.get("event") == "decided" and e["act"] == "demote"
        ]
        assert demoted and demoted[0]["reason"] == f"demoting: {petting}", demoted
        opening = f"cannot open {device['mail1']}: No such device"
        mail1 = wait_for(lambda: members(c).get("mail1"), 10, "mail1's member status")
        assert (mail1.role, mail1.eligible) == ("standby", False)
        assert mail1.why in (petting, f"watchdog device {device['mail1']} not armed: {opening}")
        gone["mail1"].unlink()
        wait_for(
            lambda: (m := members(c).get("mail1")) is not None and m.eligible,
            10,
            "mail1 to be armed and eligible again",
        )
        assert members(c)["mail1"].watchdog == WatchdogStatus(True, TIMEOUT, "")  # type: ignore[union-attr]
        assert c.active() == "mail2"
        c.assert_never_two_serving()
    finally:
        c.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(c.dump_logs())


def test_lease_wait_waits_out_a_frozen_active_that_published_its_armed_device(
    zk: ZooKeeperServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Today's lease-wait, through the daemons: mail2 remembers that mail1 published an
    armed device, so when mail1 freezes and its session (and member status) is gone,
    mail2 waits out T + watchdog.timeout + margin and promotes. The reset a real
    device would do is done by the test: the daemon is killed, the service stopped."""
    c, _ = watched_cluster(tmp_path / "c", zk, fencing=[{"type": "lease-wait"}])
    try:
        for name in c.names:
            c.nodes[name].start(env={"FAKE_WATCHDOG": "ok"})
        assert c.wait_active(timeout=20) == "mail1"
        wait_for(
            lambda: (m := members(c).get("mail2")) is not None and m.eligible,
            10,
            "mail2 to be an eligible standby",
        )
        # A standby re-reads its peers' status every MEMBERS_LEARN seconds: wait one
        # period past mail1's first status, so mail2 has surely seen mail1 armed. (With
        # 1 s, a loaded machine let mail2's only read predate mail1's status: lease-wait
        # then refused, the safe side, and the test timed out.)
        time.sleep(MEMBERS_LEARN + 1.0)
        # Verified ahead of need: mail1 published its device armed.
        check = c.ctl("fence-check", "mail1", via="mail2")
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.startswith("OK"), check.stdout
        paths = wait_for(lambda: members(c)["mail2"].fence_paths, 10, "mail2's fence_paths")  # type: ignore[union-attr]
        assert paths == {"mail1": {"lease-wait": "OK"}}
        mail1 = c.nodes["mail1"]
        mail1.signal(signal.SIGSTOP)
        # The watchdog device fires: everything on mail1 stops.
        mail1.kill()
        subprocess.run(
            [PY, "-m", "chaos.services.loopback_smtp", "stop", "--name", "mail1", "--dir",
             str(c.service_dir)],
            cwd=REPO,
            check=True,
        )  # fmt: skip
        assert c.wait_active(timeout=30, other_than="mail1") == "mail2"
        fenced = [
            e
            for e in c.nodes["mail2"].events()
            if e.get("event") == "fence_method_finished" and e.get("target") == "mail1"
        ]
        assert fenced and fenced[-1]["method"] == "lease-wait" and fenced[-1]["ok"], fenced
        assert fenced[-1]["reason"].startswith("waited out ")
        c.assert_never_two_serving()
    finally:
        c.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(c.dump_logs())
