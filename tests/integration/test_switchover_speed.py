"""Back-to-back untargeted switchovers on a real ZooKeeper.

A loopback pair with priorities 0 and 1, the defaults an operator gets
(priority_delay 1 s, switchover.timeout 10 s). Measured before: 1.17, 8.89,
1.17, 8.93, 1.17 s: every move to the priority-1 node waited out its priority
delay, every move back waited out the old active's switchover back-off. The
bound below is generous on purpose (this is not a timing benchmark: chaos bench
measures); what it catches is either wait coming back.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import REPO, Cluster, wait_for
from tests.support.zookeeper import ZooKeeperServer

BOUND = 2.0  # seconds per switchover; the waits it guards against are 1 s and 10 s


@pytest.fixture
def cluster(
    zk: ZooKeeperServer, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Cluster]:
    extra = {"node": {"priority_delay": "1s"}, "switchover": {"timeout": "10s"}}
    c = Cluster(tmp_path / "c", zk.address, extra=extra)
    yield c
    c.stop()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(c.dump_logs())


def test_alternating_untargeted_switchovers_each_complete_quickly(cluster: Cluster) -> None:
    cluster.start()
    assert cluster.wait_active(timeout=20) == "mail1"
    wait_for(
        lambda: all(m["connected"] and m["healthy"] for m in cluster.status()["members"]),
        10,
        "both members connected and healthy",
    )
    took = []
    expected = "mail1"
    for _ in range(5):
        expected = "mail2" if expected == "mail1" else "mail1"
        t0 = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-m", "failoverd.cli", "-c", str(cluster.nodes["mail2"].config_path)]
            + ["switchover"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
            check=False,
        )
        took.append(time.monotonic() - t0)
        assert out.returncode == 0, out.stdout + out.stderr
        assert f"-> {expected} " in out.stdout, out.stdout
        # The old active must be a standby again before the next request, or that
        # request is refused ("no healthy standby") rather than slow.
        wait_for(
            lambda: all(m["role"] in ("active", "standby") for m in cluster.status()["members"]),
            10,
            "both settled",
        )
    print("untargeted switchovers took " + ", ".join(f"{t:.2f}" for t in took) + " s")
    assert all(t < BOUND for t in took), took
    cluster.assert_never_two_serving()
