"""The checker through the real recording path: real services, real VIP, real client.

The unit tests (tests/chaos/unit/test_checker.py) feed the checker histories built by
hand; these make the lab itself record a split brain and a late write, by doing
by hand what a broken daemon would do, and assert that the checker catches them
from the files the services, the store, the client and the VIP watch wrote.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaos.faults import nemesis
from chaos.judge.checker import check
from chaos.judge.history import Expectation, load_history
from chaos.lab import netns
from chaos.lab.cluster import Cluster
from chaos.lab.network import Lab
from chaos.lab.vipwatch import VipWatch
from chaos.layout import VIP
from chaos.records import read_records


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    lab = Lab.create(tmp_path / "run")
    c = Cluster(lab)
    c.prepare_nodes()  # configs, store and flags folders; no ZooKeeper, no failoverd
    try:
        yield c
    finally:
        c.teardown()


def start_service(c: Cluster, node: str, epoch: int) -> None:
    """What failoverd's promotion does: the service with its epoch, then the VIP."""
    env = {**os.environ, "FAILOVERD_EPOCH": str(epoch), "FAILOVERD_NODE": node}
    n = c.nodes[node]
    p = subprocess.run(netns.exec_argv(n.ns, n.service_argv("start")), env=env, timeout=20)
    assert p.returncode == 0
    netns.sh(["ip", "-n", n.ns, "addr", "add", f"{VIP}/24", "dev", "eth0"])
    # What the vip resource's gratuitous ARP does: the client learns the new owner now.
    netns.sh(["ip", "-n", c.lab.ns("client"), "neigh", "flush", "all"])


def test_two_services_and_two_vips_at_once_are_caught(cluster: Cluster) -> None:
    c = cluster
    vips = VipWatch(c.lab)
    vips.start()
    start_service(c, "mail1", 1)
    c.start_client()
    assert c.wait_single_active(10, stable=0.3) == "mail1"
    c.lab.record("fault_start", fault="second active by hand")
    start_service(c, "mail2", 2)  # split brain: both serve, both hold the VIP
    deadline = time.monotonic() + 10
    while c.serving() != {"mail1", "mail2"} and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let the VIP watch poll both (it polls every 0.1 s)
    c.lab.record("fault_heal", fault="second active by hand")
    time.sleep(1.0)
    c.stop_client()
    vips.stop()
    verdict = check(load_history(c.lab.run_dir), Expectation("allowed", settle=5))
    found = {v.rule for v in verdict.violations}
    assert {"overlap", "vip_overlap"} <= found, verdict.violations
    [vip] = [v for v in verdict.violations if v.rule == "vip_overlap"]
    assert "mail1" in vip.message and "mail2" in vip.message


def test_a_service_frozen_mid_data_and_resumed_after_a_takeover_is_caught(
    cluster: Cluster,
) -> None:
    c = cluster
    start_service(c, "mail1", 1)
    c.start_client()
    assert c.wait_single_active(10, stable=0.3) == "mail1"
    c.lab.record("fault_start", fault="service frozen mid-DATA")
    # Scenario 28's nemesis: the next message's DATA is in, mail1's service is frozen
    # before it stored or answered it.
    resume = nemesis.freeze_service_mid_data(c, "mail1")
    assert not (c.run_dir / "flags" / "mail1.hold-data").exists()
    pid = nemesis.service_pid(c, "mail1")
    assert pid is not None
    assert Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    # The takeover the frozen service does not notice (no fencing: the broken case).
    netns.sh(["ip", "-n", c.lab.ns("mail1"), "addr", "del", f"{VIP}/24", "dev", "eth0"])
    start_service(c, "mail2", 2)
    deadline = time.monotonic() + 10
    while not any(r.get("epoch") == 2 for r in read_records(c.run_dir / "store/messages.jsonl")):
        assert time.monotonic() < deadline, "mail2 stored nothing"
        time.sleep(0.05)
    resume()  # woken: it stores the held message with epoch 1, after epoch 2's writes
    deadline = time.monotonic() + 10
    while not any(r.get("epoch") == 1 and r["t"] > 0 for r in late_writes(c)):
        assert time.monotonic() < deadline, "the resumed service wrote nothing"
        time.sleep(0.05)
    os.kill(pid, signal.SIGTERM)
    c.lab.record("fault_heal", fault="service frozen mid-DATA")
    time.sleep(1.0)
    c.stop_client()
    verdict = check(load_history(c.lab.run_dir), Expectation("required", settle=10))
    found = {v.rule for v in verdict.violations}
    assert {"stale_epoch", "overlap"} <= found, verdict.violations
    stale = next(v for v in verdict.violations if v.rule == "stale_epoch")
    assert "from mail1 written with epoch 1 after epoch 2" in stale.message


def late_writes(c: Cluster) -> list[dict]:
    """Store records written after the first epoch-2 write."""
    recs = read_records(c.run_dir / "store/messages.jsonl")
    first2 = next((k for k, r in enumerate(recs) if r.get("epoch") == 2), len(recs))
    return recs[first2:]
