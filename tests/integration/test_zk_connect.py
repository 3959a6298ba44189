"""kazoo's connect to a ZooKeeper server that drops packets is bounded (zk_connect.py)."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from kazoo.client import KazooState

from failoverd.config import load_config
from failoverd.zk.client import make_client
from tests.integration.cluster import Cluster
from tests.support.zookeeper import ZooKeeperServer

T = 4.0


@pytest.fixture
def black_hole() -> Iterator[str]:
    """host:port whose SYNs are dropped, as a partitioned server's are: a listener
    that never accepts, with its accept queue full (Linux then drops new SYNs)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fill = []
    for _ in range(3):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fill.append(s)
    yield f"127.0.0.1:{port}"
    for s in [*fill, lsock]:
        s.close()


def test_a_server_that_drops_packets_costs_a_connecting_client_its_share_of_t_not_all_of_it(
    zk: ZooKeeperServer, tmp_path: Path, black_hole: str
) -> None:
    """The standby of the ZooKeeper-minority case: its server went LOOKING, and the
    next one kazoo tried was the cut-off leader. Waiting the whole session timeout
    there (twice, as kazoo reshuffles) let its own session expire on the new leader.
    ZooKeeper's own client gives each server T / servers; so must we."""
    c = Cluster(tmp_path / "c", zk.address, cluster=f"k{uuid.uuid4().hex[:8]}")
    config = load_config(str(c.nodes["mail1"].config_path))
    zkc = replace(config.zookeeper, hosts=f"{black_hole},{zk.address}", session_timeout=T)
    client = make_client(replace(config, zookeeper=zkc))
    client.randomize_hosts = False  # the black hole first, every pass
    connected = []
    client.add_listener(
        lambda s: connected.append(time.monotonic()) if s == KazooState.CONNECTED else None
    )
    t0 = time.monotonic()
    try:
        client.start(timeout=3 * T)
        took = connected[0] - t0
    finally:
        client.stop()
        client.close()
    # Two servers: the black hole may cost T/2 = 2 s, not T = 4 s.
    assert took < 0.75 * T, f"connected only after {took:.2f}s"
