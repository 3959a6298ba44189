"""A node whose resources will not stop (dirty) escalates; it does not rely on systemd
restarting the daemon (docs/design.md, "Restarts, crashes and nodes that will not stop").

What happens today, and what this test pins down with real daemons:

* the daemon stops petting both watchdogs the moment it is dirty, so a watchdog
  *device* resets the machine (here: a file standing in for /dev/watchdog stops
  growing) and systemd's watchdog alone would merely restart the daemon;
* it logs `stop_failed` (critical), stays out of contention, and retries the stop;
* the peer does not take over next to it: it must fence it first, and a fence that
  cannot stop the resources fails, so nobody starts a second service;
* once a retried stop works, the node is clean again and petting resumes.

A node with abandoned work pending (a start given up on that may still complete)
lets its device fire the same way, while still petting systemd's watchdog.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.cluster import PY, REPO, Cluster, wait_for
from tests.support.zookeeper import ZooKeeperServer

WATCHDOG_TIMEOUT = 2.0  # the daemon pets every timeout / 4


class StubbornCluster(Cluster):
    """Each node's stop refuses while ROOT/stop-fails-NODE exists; each node pets its
    own file standing in for /dev/watchdog, and systemd's watchdog. The daemons run
    under tests/support/fakewatchdog.py, whose driver arms that file: a node contends
    only with its device armed."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for node in self.nodes.values():
            node.module = "tests.support.fakewatchdog"

    def config_dict(self, name: str, priority: int) -> dict[str, Any]:
        cfg = super().config_dict(name, priority)
        res = cfg["resources"][0]
        flag = self.root / f"stop-fails-{name}"
        refuse = f'if [ -e {flag} ]; then echo "stop refused" >&2; exit 1; fi; exec "$@"'
        res["stop"] = ["sh", "-c", refuse, "stop", *res["stop"]]
        cfg["watchdog"] = {
            "systemd": True,
            "device": str(self.device(name)),
            "timeout": f"{WATCHDOG_TIMEOUT:g}s",
        }
        return cfg

    def device(self, name: str) -> Path:
        return self.root / f"watchdog-{name}"


def received(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out += sock.recv(4096).decode().splitlines()
        except BlockingIOError:
            return out


def events(c: Cluster, name: str, event: str) -> list[dict[str, object]]:
    return [e for e in c.nodes[name].events() if e.get("event") == event]


def test_dirty_active_stops_petting_its_watchdogs_and_is_fenced_not_joined(
    zk: ZooKeeperServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    c = StubbornCluster(tmp_path / "c", zk.address)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.setblocking(False)
    try:
        for name in c.names:
            c.device(name).write_bytes(b"")
        systemd = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "2000000"}
        c.nodes["mail1"].start(env=systemd)
        assert c.wait_active(timeout=20, via="mail1") == "mail1"
        c.nodes["mail2"].start()
        wait_for(
            lambda: any(
                m["node"] == "mail2" and m["role"] == "standby" and m["healthy"]
                for m in c.status()["members"]
            ),
            20,
            "mail2 to stand by",
        )
        wait_for(lambda: c.device("mail1").stat().st_size > 0, 5, "mail1 to pet its device")
        wait_for(lambda: "WATCHDOG=1" in received(sock), 5, "mail1 to pet systemd's watchdog")

        (c.root / "stop-fails-mail1").touch()
        cfg = str(c.nodes["mail1"].config_path)
        switchover = subprocess.Popen(
            [PY, "-m", "failoverd.cli", "-c", cfg, "switchover"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            failed = wait_for(lambda: events(c, "mail1", "stop_failed"), 15, "mail1 to go dirty")
            assert failed[0]["level"] == "critical" and failed[0]["self_fence"] is True
            petted = c.device("mail1").stat().st_size
            received(sock)  # drain what was sent before it went dirty
            # Three pet intervals later: not one more pet of either watchdog.
            time.sleep(3 * WATCHDOG_TIMEOUT / 4)
            assert c.device("mail1").stat().st_size == petted, "a dirty node kept petting"
            assert "WATCHDOG=1" not in received(sock), "a dirty node kept petting systemd"
            # The peer may not start next to it: its fence (fence-self on mail1) fails.
            wait_for(lambda: events(c, "mail2", "fence_failed"), 20, "mail2's fence to fail")
            calls = [json.loads(x) for x in (c.root / "fence-calls.jsonl").read_text().splitlines()]
            assert calls and all(x["target"] == "mail1" and x["rc"] != 0 for x in calls)
            assert c.active(via="mail2") is None
            assert events(c, "mail2", "promoted") == []
            c.assert_never_two_serving()
        finally:
            switchover.kill()
            switchover.wait()

        # The daemon retries the stop; once it works the node is clean and pets again.
        (c.root / "stop-fails-mail1").unlink()
        wait_for(
            lambda: events(c, "mail1", "resources_stopped_after_failure"),
            30,
            "mail1's retried stop",
        )
        wait_for(lambda: c.device("mail1").stat().st_size > petted, 5, "petting to resume")
        c.wait_active(timeout=30)
        c.assert_never_two_serving()
    finally:
        c.stop()
        sock.close()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(c.dump_logs())


# A start that hands the service to a detached helper that drops its environment (as
# Postfix's master does) and then hangs: killed at its 2 s timeout, the start is
# abandoned; the helper, which the sweep cannot find by its tag, brings the service
# up a second later, so the abandoned work stays pending for a few seconds more.
HANGING_START = """
setsid env -i PATH=$PATH sh -c 'sleep 3; exec "$@"' sh "$@" </dev/null >/dev/null 2>&1 &
exec sleep 60
"""


class AbandoningCluster(StubbornCluster):
    """mail1's start is abandoned (HANGING_START); each node pets its own device file."""

    def config_dict(self, name: str, priority: int) -> dict[str, Any]:
        cfg = super().config_dict(name, priority)
        if name == "mail1":
            res = cfg["resources"][0]
            res["start"] = ["sh", "-c", HANGING_START, "start", *res["start"]]
            res["timeout"] = "2s"
        return cfg


def test_a_node_with_abandoned_work_pending_stops_petting_its_watchdog_device(
    zk: ZooKeeperServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A peer that fences this node by lease-wait counts on its watchdog device: an
    abandoned start may still complete, so the node must let the device fire, as a
    dirty node does, until the work is confirmed gone."""
    c = AbandoningCluster(tmp_path / "c", zk.address)
    try:
        c.device("mail1").write_bytes(b"")
        c.nodes["mail1"].start()
        wait_for(lambda: c.device("mail1").stat().st_size > 0, 10, "mail1 to pet its device")
        wait_for(lambda: events(c, "mail1", "operation_abandoned"), 20, "mail1 to give up")
        petted = c.device("mail1").stat().st_size
        time.sleep(3 * WATCHDOG_TIMEOUT / 4)  # three pet intervals
        assert not events(c, "mail1", "abandoned_operations_gone"), "gone too soon to tell"
        grown = c.device("mail1").stat().st_size - petted
        assert grown == 0, f"petted its device {grown} times while abandoned work was pending"
        wait_for(lambda: events(c, "mail1", "abandoned_operations_gone"), 30, "the work gone")
        wait_for(lambda: c.device("mail1").stat().st_size > petted, 5, "petting to resume")
    finally:
        c.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(c.dump_logs())
