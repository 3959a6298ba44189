"""The lease across ZooKeeper stalls, with real daemons
and a real ZooKeeper server that is frozen (SIGSTOP) and thawed (SIGCONT).

A leader fsync stall or a GC pause shorter than T/2 must not cost a healthy active
its lease: round trips keep being sent on schedule, and an answer renews the lease
whenever it arrives, counted from its own send time. A stall of T must still make
the active stop before its session could expire.

Two views. The keeper alone, in this process, with every renewal watched: the old
keeper, which dropped late answers, renewed 1 to 12 ms *after* the lease had run
out in most stalls. Whether a daemon then demotes is a race with its main loop,
which looks 5 ms after the expiry; so the daemons run on a busy CPU (`busy_cpu`: a
competing real-time task takes 10 ms slices on the CPU they are pinned to, so their
threads wake up to 10 ms late, as on a loaded mail server). The lease margin exists
to cover such scheduling delay.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from failoverd.config import load_config
from failoverd.zk.coordinator import Coordinator
from failoverd.zk.lease import LocalLease
from failoverd.zk.lease_keeper import LeaseKeeper, renewal_interval
from tests.integration.cluster import Cluster, wait_for
from tests.support.zookeeper import ZooKeeperServer, free_port

T = 2.0  # session timeout; the lease margin is the default T/4
SHORT_STALL = 0.95  # just under T/2
STALLS = 8
GAP = 1.3  # between stalls; not a multiple of the renewal period, so phases vary


@pytest.fixture
def frozen_zk(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ZooKeeperServer]:
    """A server of this test's own: freezing the shared one would disturb other tests."""
    server = ZooKeeperServer(tmp_path / "zk", free_port())
    server.start()
    server.wait_serving()
    yield server
    server.resume()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(f"\n--- ZooKeeper log tail\n{server.log_tail()}")
    server.stop()


@pytest.fixture
def cluster(frozen_zk: ZooKeeperServer, tmp_path: Path, request: pytest.FixtureRequest):
    c = Cluster(tmp_path / "c", frozen_zk.address, session_timeout=T)
    yield c
    c.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(c.dump_logs())


# Busy for 10 ms, idle for 10 ms, at real-time priority on one CPU: every thread
# pinned to that CPU may wait up to 10 ms for it. Uses half of one core.
BUSY_LOOP = """
import os, time
os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
while True:
    end = time.monotonic() + 0.010
    while time.monotonic() < end:
        pass
    time.sleep(0.010)
"""
BUSY_CPU = 1


@pytest.fixture
def busy_cpu() -> Iterator[int]:
    if BUSY_CPU not in os.sched_getaffinity(0):
        pytest.skip(f"needs CPU {BUSY_CPU}")
    hog = subprocess.Popen(
        [sys.executable, "-c", BUSY_LOOP], preexec_fn=lambda: os.sched_setaffinity(0, {BUSY_CPU})
    )
    yield BUSY_CPU
    hog.kill()
    hog.wait()


def pin(c: Cluster, cpu: int) -> None:
    """Pin every thread of every daemon (threads made later inherit it)."""
    for node in c.nodes.values():
        assert node.proc is not None
        for tid in os.listdir(f"/proc/{node.proc.pid}/task"):
            os.sched_setaffinity(int(tid), {cpu})


def stall(server: ZooKeeperServer, seconds: float) -> float:
    """Freeze the server for `seconds` (the fault itself, not a synchronisation);
    returns the wall-clock time the freeze began."""
    began = time.time()
    server.pause()
    try:
        time.sleep(seconds)
    finally:
        server.resume()
    return began


def demotions(c: Cluster, name: str) -> list[dict[str, object]]:
    return [e for e in c.nodes[name].events() if e.get("event") == "demoted"]


class WatchedLease(LocalLease):
    """Records how much of the lease was left whenever an answer renewed it: zero
    means the lease had already run out (a daemon would have demoted, had its loop
    looked at that moment)."""

    def __init__(self, session_timeout: float, margin: float) -> None:
        super().__init__(session_timeout, margin)
        self.left_at_renewal: list[float] = []

    def renew(self, session: int, t_send: float, *args: object) -> bool:
        left = self.remaining()
        renewed = super().renew(session, t_send, *args)  # type: ignore[arg-type]
        if renewed:
            self.left_at_renewal.append(left)
        return renewed


def test_lease_never_runs_out_during_zookeeper_stalls_shorter_than_half_the_session_timeout(
    frozen_zk: ZooKeeperServer, cluster: Cluster
) -> None:
    """The keeper alone (the daemon's own LeaseKeeper and Coordinator, in this
    process), so that every renewal can be watched, not only the demotions."""
    config = load_config(str(cluster.nodes["mail1"].config_path))
    margin = config.zookeeper.lease_margin
    lost: list[float] = []
    keeper: list[LeaseKeeper] = []

    def on_event(event: str) -> None:  # as the daemon does: a reconnect renews at once
        if event == "zk_connected" and keeper:
            keeper[0].wake.set()

    coord = Coordinator(config, on_event)
    coord.start(timeout=5)
    lease = WatchedLease(T, margin)
    keeper.append(
        LeaseKeeper(coord, lease, renewal_interval(T), lambda: lost.append(time.monotonic()))
    )
    try:
        coord.ensure_tree(2)
        assert coord.try_acquire(lease, 2)
        keeper[0].start()
        wait_for(lambda: len(lease.left_at_renewal) >= 3, 5, "renewals")
        invalid: list[float] = []
        done = threading.Event()

        def sample() -> None:  # every 2 ms: was the lease ever invalid?
            while not done.wait(0.002):
                if not lease.valid():
                    invalid.append(time.monotonic())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for _ in range(STALLS):
            stall(frozen_zk, SHORT_STALL)
            time.sleep(GAP)
        done.set()
        sampler.join()
    finally:
        keeper[0].stop()
        coord.close()
    closest = min(lease.left_at_renewal)
    print(
        f"{STALLS} stalls of {SHORT_STALL}s at T={T}s: least lease left at a renewal "
        f"{closest:.3f}s; {len(invalid)} samples with the lease run out"
    )
    assert not lost
    assert closest > 0.0, "an answer came only after the lease had run out"
    assert not invalid


def test_active_never_demotes_for_zookeeper_stalls_shorter_than_half_the_session_timeout(
    frozen_zk: ZooKeeperServer, cluster: Cluster, busy_cpu: int
) -> None:
    cluster.start()
    active = cluster.wait_active(timeout=20)
    wait_for(lambda: cluster.serving(), 10, "the active's service up")
    pin(cluster, busy_cpu)
    epoch = cluster.status()["active"]["epoch"]
    for _ in range(STALLS):
        stall(frozen_zk, SHORT_STALL)
        time.sleep(GAP)  # let the next stall begin at another phase of the renewals
    lost = demotions(cluster, active)
    print(f"demotions in {STALLS} stalls of {SHORT_STALL}s at T={T}s: {len(lost)}")
    assert lost == [], lost
    assert cluster.wait_active(timeout=10) == active
    assert cluster.status()["active"]["epoch"] == epoch
    runs = [i for i in cluster.serving() if i[0] == active]
    assert len(runs) == 1, f"the active's service was restarted: {runs}"
    cluster.assert_never_two_serving()


def test_active_demotes_before_its_session_can_expire_when_zookeeper_stalls_for_t(
    frozen_zk: ZooKeeperServer, cluster: Cluster, busy_cpu: int
) -> None:
    cluster.start()
    active = cluster.wait_active(timeout=20)
    wait_for(lambda: cluster.serving(), 10, "the active's service up")
    pin(cluster, busy_cpu)
    began = stall(frozen_zk, T)
    lost = wait_for(lambda: demotions(cluster, active), 10, "the active to demote")
    assert lost[0]["code"] == "lease_lost", lost
    # The server expires the session T after the last packet it received, which was
    # before the freeze began: the service must be down by then.
    downs = [
        float(e["t"])  # type: ignore[arg-type]
        for e in cluster.service_events()
        if e["node"] == active and e["event"] == "down"
    ]
    assert downs, "the active's service was never stopped"
    print(f"service down {downs[0] - began:.3f}s after a {T}s stall began")
    assert downs[0] < began + T
    cluster.wait_active(timeout=30)
    cluster.assert_never_two_serving()
